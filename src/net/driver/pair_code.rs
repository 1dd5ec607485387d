//! Pairing by phone-number code on the driver's open pairing socket: on the operator's
//! request, `companion_hello` with a fresh code (the code goes back to the requester only,
//! never to the board or a log line); on the phone's `primary_hello`, `companion_finish`
//! with the key bundle and the derived adv secret, after which `pair-success` completes
//! as with a QR. PBKDF2 (131072 rounds, twice per pairing) runs on the blocking pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Background, Driver, Link, now};
use crate::session::ConnId;
use crate::session::status::{QrView, StateName};
use crate::wa::creds::SecretKey;
use crate::wa::node::Node;
use crate::wa::pair_code::{self, CompanionCode, LinkCode};

/// A code handed to the operator: the 8 characters and when they stop working (when the
/// pairing socket's QR refs run out).
#[derive(Clone, PartialEq, Eq)]
pub struct CodeShown {
    pub code: LinkCode,
    pub expires_at: Instant,
}

impl std::fmt::Debug for CodeShown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeShown")
            .field("code", &self.code)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The answer to a code request: the code, or why not in one sentence.
pub type CodeReply = oneshot::Sender<Result<CodeShown, String>>;

/// What the background steps of a code pairing report to the driver.
pub(crate) enum CodeStep {
    /// The server answered `companion_hello` (with its ref) or refused it.
    Hello {
        conn: ConnId,
        result: Result<CompanionCode, String>,
        expires_at: Instant,
        reply: CodeReply,
    },
    /// `companion_finish` is built: the adv secret to keep, the iq to send.
    Finish {
        conn: ConnId,
        result: Result<(SecretKey, Node), String>,
    },
    /// The server's answer to `companion_finish`; `previous` is the QR's adv secret, put
    /// back when the finish was refused so the QR still pairs.
    Finished {
        conn: ConnId,
        refused: Option<u16>,
        previous: SecretKey,
    },
}

/// When the code stops working: the current ref's end plus the refs still to come.
fn lifetime(qr: &QrView) -> Instant {
    let left = qr.count.saturating_sub(qr.index);
    qr.expires_at + crate::session::NEXT_QR_TTL * left
}

impl Driver {
    /// The operator asks for a code for `phone`: only while this session shows QR refs on an
    /// open socket.
    pub(super) fn request_code(&mut self, phone: &str, reply: CodeReply) {
        let id = self.spec.id.clone();
        let digits = match pair_code::phone_digits(phone) {
            Ok(digits) => digits,
            Err(e) => {
                let _ = reply.send(Err(format!("session {id}: {e}")));
                return;
            }
        };
        let status = self.session.status(now());
        let (Some(qr), Link::Open { conn, handle, .. }, Some(creds)) =
            (status.qr(), &self.link, &self.creds)
        else {
            let why = if status.state() == StateName::Pairing {
                format!("session {id} is still connecting: ask again once it shows a QR")
            } else {
                format!("session {id} is not pairing: start pairing first (pair)")
            };
            let _ = reply.send(Err(why));
            return;
        };
        let expires_at = lifetime(qr);
        let (conn, querier) = (*conn, handle.querier());
        let (noise, device) = (creds.noise.public, self.shared.endpoint.device.clone());
        let timeout = self.session.policy().query_timeout;
        let (tx, cancel) = (self.background_tx.clone(), self.tasks_cancel.clone());
        self.tasks.spawn(async move {
            let mut pairing = CompanionCode::new(digits, LinkCode::random());
            let iq_id = querier.next_id();
            let work = async {
                let (built, hello) = tokio::task::spawn_blocking(move || {
                    let hello = pairing.hello(&iq_id, &noise, &device);
                    (pairing, hello)
                })
                .await
                .map_err(|_| "the code could not be derived".to_string())?;
                pairing = built;
                let answer = querier.query(hello, timeout).await.map_err(|e| {
                    format!("the server refused the request for a pairing code: {e}")
                })?;
                pairing.take_answer(&answer).map_err(|e| e.to_string())?;
                Ok(pairing)
            };
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                result = work => result,
            };
            let step = CodeStep::Hello {
                conn,
                result,
                expires_at,
                reply,
            };
            let _ = tx.send(Background::Code(Box::new(step))).await;
        });
    }

    /// The phone's `primary_hello` arrived: build `companion_finish` off the runtime.
    pub(super) fn on_primary_hello(&mut self, conn: ConnId, node: &Node) {
        let (Some((code_conn, pairing)), Some(creds)) = (&self.code, &self.creds) else {
            warn!("primary_hello arrived but no pairing code was requested");
            return;
        };
        if *code_conn != conn {
            return;
        }
        let hello = match pair_code::parse_primary_hello(node) {
            Ok(hello) => hello,
            Err(e) => {
                warn!(error = %e, "primary_hello refused");
                return;
            }
        };
        let Link::Open { handle, .. } = &self.link else {
            return;
        };
        let (pairing, identity, iq_id) =
            (pairing.clone(), creds.identity.clone(), handle.next_id());
        let (tx, cancel) = (self.background_tx.clone(), self.tasks_cancel.clone());
        self.tasks.spawn(async move {
            let built = tokio::task::spawn_blocking(move || {
                pairing
                    .finish(&iq_id, &identity, &hello)
                    .map_err(|e| e.to_string())
            });
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                built = built => built.unwrap_or_else(|_| Err("the key bundle could not be built".into())),
            };
            let _ = tx
                .send(Background::Code(Box::new(CodeStep::Finish { conn, result })))
                .await;
        });
    }

    /// Carries a background step of a code pairing on.
    pub(super) fn on_code_step(&mut self, step: CodeStep) {
        match step {
            CodeStep::Hello {
                conn,
                result,
                expires_at,
                reply,
            } => {
                let answer = match result {
                    Ok(_) if self.link.conn() != Some(conn) => {
                        Err("the pairing socket closed before the code was confirmed".into())
                    }
                    Ok(pairing) => {
                        let shown = CodeShown {
                            code: pairing.code.clone(),
                            expires_at,
                        };
                        let left = expires_at.saturating_duration_since(now()).as_secs();
                        info!(
                            expires_in_s = left,
                            "pairing code issued (shown to the requester only)"
                        );
                        self.code = Some((conn, pairing));
                        Ok(shown)
                    }
                    Err(why) => {
                        warn!(%why, "no pairing code");
                        Err(format!("session {}: {why}", self.spec.id))
                    }
                };
                let _ = reply.send(answer);
            }
            CodeStep::Finish { conn, result } => {
                if self.link.conn() != Some(conn) {
                    return;
                }
                let (adv, finish) = match result {
                    Ok(built) => built,
                    Err(why) => {
                        warn!(%why, "companion_finish not sent");
                        self.code = None;
                        return;
                    }
                };
                let (Some(creds), Link::Open { handle, .. }) =
                    (self.creds.as_mut().map(Arc::make_mut), &self.link)
                else {
                    return;
                };
                // The phone authenticates pair-success with the derived secret, not the QR's.
                let previous = std::mem::replace(&mut creds.adv_secret, adv);
                let querier = handle.querier();
                let timeout: Duration = self.session.policy().query_timeout;
                let (tx, cancel) = (self.background_tx.clone(), self.tasks_cancel.clone());
                self.tasks.spawn(async move {
                    let refused = tokio::select! {
                        _ = cancel.cancelled() => return,
                        answer = querier.query(finish, timeout) => match answer {
                            Ok(_) => None,
                            Err(crate::net::conn::ConnError::IqError { code, .. }) => Some(code),
                            Err(_) => Some(0),
                        },
                    };
                    let step = CodeStep::Finished {
                        conn,
                        refused,
                        previous,
                    };
                    let _ = tx.send(Background::Code(Box::new(step))).await;
                });
            }
            CodeStep::Finished {
                conn,
                refused,
                previous,
            } => {
                if self.link.conn() != Some(conn) {
                    return;
                }
                self.code = None;
                match refused {
                    None => info!("the phone accepted the pairing code; waiting for pair-success"),
                    Some(code) => {
                        if let Some(creds) = self.creds.as_mut().map(Arc::make_mut) {
                            creds.adv_secret = previous;
                        }
                        warn!(
                            code,
                            "the server refused companion_finish: the code typed on the phone was \
                         not the one shown; ask for a new code"
                        );
                    }
                }
            }
        }
    }
}
