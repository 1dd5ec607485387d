//! The pre-key flow of one session on a live connection: after `<success>` ask the server how
//! many one-time pre-keys it holds, upload 812 when it has none and 50 when it has fewer than
//! 5, then send `passive active`; on an `encrypt` notification with a low count, refill.
//! Keys are written durably (`store::keys`, off the async workers) before they are sent, and
//! marked uploaded only when the server confirmed them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

use crate::net::conn::{ConnError, Querier};
use crate::net::driver::Shared;
use crate::net::metrics::Metrics;
use crate::session::policy::Policy;
use crate::store::keys::{KeyStore, KeysError};
use crate::wa::creds::Credentials;
use crate::wa::prekey::{self, PreKey};
use crate::wa::stanza;

/// Why a refill did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PreKeyError {
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("pre-key {what} for session {session} failed: {source}")]
    Conn {
        what: &'static str,
        session: String,
        #[source]
        source: ConnError,
    },
    #[error("the pre-key count answer for session {session} has no <count value>")]
    NoCount { session: String },
    #[error("the key database task for session {session} ended early")]
    Task { session: String },
}

/// What a session's pre-key work needs; cheap to clone into a task.
#[derive(Clone)]
pub struct PreKeys {
    pub session: String,
    pub store: Arc<KeyStore>,
    pub metrics: Arc<Metrics>,
    pub timeout: Duration,
    /// One upload at a time per session (login flow and a notification may overlap).
    pub busy: Arc<tokio::sync::Mutex<()>>,
    /// Uploads confirmed so far: a low count seen before the latest upload is stale and is
    /// asked again, so the login's count and a queued `encrypt` notification refill once.
    confirmed: Arc<AtomicU64>,
    /// The driver's tasks: pre-key work is cancelled and awaited with them at shutdown.
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl PreKeys {
    /// The pre-key work of session `id` in a pool.
    pub fn new(
        id: &str,
        shared: &Shared,
        policy: &Policy,
        (tasks, cancel): (TaskTracker, CancellationToken),
    ) -> Self {
        PreKeys {
            session: id.to_string(),
            store: shared.keys.clone(),
            metrics: shared.metrics.clone(),
            timeout: policy.query_timeout,
            busy: Arc::default(),
            confirmed: Arc::default(),
            tasks,
            cancel,
        }
    }

    /// Runs `work` as one of the driver's tasks, ended by its cancellation.
    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tasks.spawn(
            async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = work => {}
                }
            }
            .in_current_span(),
        );
    }

    /// After `<success>`: count, upload if needed, then `passive active`. Runs in the
    /// background; a failure is logged and does not end the session.
    pub fn after_login(&self, querier: Querier, creds: Arc<Credentials>) {
        let this = self.clone();
        self.spawn(async move {
            let seen = this.confirmed.load(Ordering::SeqCst);
            match this.count(&querier).await {
                Ok(count) => {
                    if let Err(e) = this.refill(&querier, &creds, count, seen).await {
                        warn!(error = %e, "pre-key upload failed");
                    }
                }
                Err(e) => warn!(error = %e, "pre-key count failed"),
            }
            let active = stanza::passive_active(&querier.next_id());
            if let Err(e) = querier.query(active, this.timeout).await {
                debug!(error = %e, "passive iq not answered");
            }
        });
    }

    /// On `<notification type="encrypt"><count value=N/>`: refill when `count` is low.
    pub fn on_low(&self, querier: Querier, creds: Arc<Credentials>, count: u32) {
        let this = self.clone();
        let seen = self.confirmed.load(Ordering::SeqCst);
        self.spawn(async move {
            if let Err(e) = this.refill(&querier, &creds, count, seen).await {
                warn!(error = %e, "pre-key refill failed");
            }
        });
    }

    async fn count(&self, querier: &Querier) -> Result<u32, PreKeyError> {
        let query = stanza::prekey_count_query(&querier.next_id());
        let answer = querier
            .query(query, self.timeout)
            .await
            .map_err(|source| self.conn_error("count", source))?;
        prekey::count_of(&answer).ok_or_else(|| PreKeyError::NoCount {
            session: self.session.clone(),
        })
    }

    /// Uploads the batch `server_count` calls for (none when the server has enough). When an
    /// upload was confirmed after the count was seen (`seen` is `confirmed` then), the
    /// server is asked again first.
    async fn refill(
        &self,
        querier: &Querier,
        creds: &Credentials,
        server_count: u32,
        seen: u64,
    ) -> Result<(), PreKeyError> {
        if prekey::wanted(server_count).is_none() {
            debug!(server_count, "pre-keys sufficient");
            return Ok(());
        }
        let _one_at_a_time = self.busy.lock().await;
        let server_count = if self.confirmed.load(Ordering::SeqCst) == seen {
            server_count
        } else {
            debug!(
                server_count,
                "pre-keys uploaded meanwhile; asking the count again"
            );
            self.count(querier).await?
        };
        let Some(n) = prekey::wanted(server_count) else {
            debug!(server_count, "pre-keys sufficient");
            return Ok(());
        };
        let keys = self
            .blocking(move |store, session| store.keys_to_upload(&session, n))
            .await?;
        let ids: Vec<u32> = keys.iter().map(|k| k.id).collect();
        let upload = prekey::upload(&querier.next_id(), creds, &keys);
        querier
            .query(upload, self.timeout)
            .await
            .map_err(|source| self.conn_error("upload", source))?;
        let uploaded = ids.len();
        self.blocking(move |store, session| store.mark_uploaded(&session, &ids))
            .await?;
        self.confirmed.fetch_add(1, Ordering::SeqCst);
        self.metrics.prekeys_uploaded.inc_by(uploaded as u64);
        info!(
            server_count,
            uploaded,
            first = keys.first().map(|k| k.id),
            "pre-keys uploaded"
        );
        Ok(())
    }

    /// Runs a key-database call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&KeyStore, String) -> Result<T, KeysError> + Send + 'static,
    ) -> Result<T, PreKeyError> {
        let store = self.store.clone();
        let session = self.session.clone();
        tokio::task::spawn_blocking(move || f(&store, session))
            .await
            .map_err(|_| PreKeyError::Task {
                session: self.session.clone(),
            })?
            .map_err(PreKeyError::from)
    }

    /// Removes the session's keys with its credentials (wipe, logout with wipe).
    pub async fn forget(&self) {
        if let Err(e) = self
            .blocking(|store, session| store.remove_session(&session))
            .await
        {
            warn!(error = %e, "could not remove the session's pre-keys");
        }
    }

    fn conn_error(&self, what: &'static str, source: ConnError) -> PreKeyError {
        PreKeyError::Conn {
            what,
            session: self.session.clone(),
            source,
        }
    }
}

/// The pre-key a peer's pkmsg names, removed from the store (the messaging issue calls this).
pub async fn take(
    store: Arc<KeyStore>,
    session: String,
    id: u32,
) -> Result<Option<PreKey>, KeysError> {
    let result = tokio::task::spawn_blocking(move || store.take_prekey(&session, id)).await;
    result.unwrap_or(Ok(None))
}
