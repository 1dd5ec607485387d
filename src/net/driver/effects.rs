//! Executing the machine's effects, by resource: the socket (dial, close, ping), the store
//! (save, backup, wipe: on the blocking pool), timers, and metrics.

use std::collections::VecDeque;

use tokio::time::Instant;
use tracing::{Instrument, warn};

use super::{Background, Driver, Link, now};
use crate::net::link::{self, DialKeys, Endpoint, LinkScope};
use crate::session::{ConnId, Effect, Event};
use crate::wa::stanza::Cause;

impl Driver {
    /// Executes `effects` in order, and the effects the machine answers with after them.
    pub(super) async fn execute(&mut self, effects: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = effects.into();
        while let Some(effect) = queue.pop_front() {
            let more = match effect {
                Effect::Dial { conn } => self.dial(conn),
                Effect::Close { conn, .. } => self.close(conn).await,
                Effect::SendPing { conn } => {
                    self.ping(conn);
                    Vec::new()
                }
                Effect::SaveCredentials | Effect::BackupCredentials => {
                    self.store(effect).await;
                    Vec::new()
                }
                Effect::WipeCredentials { .. } => self.store(effect).await,
                Effect::ScheduleTimer { timer, at } => {
                    self.timers.schedule(timer, at);
                    Vec::new()
                }
                Effect::ShowQr { .. }
                | Effect::Record(_)
                | Effect::Disconnected { .. }
                | Effect::Reconnect { .. } => {
                    self.count(&effect);
                    Vec::new()
                }
            };
            queue.extend(more);
        }
    }

    // ----- the socket -----

    fn dial(&mut self, conn: ConnId) -> Vec<Effect> {
        if let Some(open) = self.link.conn() {
            // The machine guarantees this never happens; if it did, refusing the second
            // dial is the only safe answer.
            warn!(open, conn, "dial refused: a connection is still open");
            return Vec::new();
        }
        if let Some(gate) = &self.shared.gate
            && !gate.may_dial(&self.spec.id)
        {
            // Clustered and the lease is not (or no longer) ours: never dial. The cluster
            // stops this driver soon; meanwhile the machine sees a failed connect.
            warn!(
                conn,
                "dial refused: this node does not hold the session's lease"
            );
            return self.session.handle(
                now(),
                Event::Closed {
                    conn,
                    cause: Cause::Closed,
                },
            );
        }
        let (version, routing) = (self.version, self.routing.clone());
        let device = self.shared.endpoint.device.clone();
        let Some(creds) = self.ensure_credentials() else {
            return Vec::new();
        };
        let keys = match DialKeys::from_credentials(creds, &version, &device) {
            Ok(keys) => keys.with_routing(routing),
            Err(e) => {
                let cause = e.cause();
                return self.session.handle(now(), Event::Closed { conn, cause });
            }
        };
        let cancel = self.tasks_cancel.child_token();
        self.link = Link::Dialling {
            conn,
            cancel: cancel.clone(),
        };
        self.dial_started = Some(Instant::now());
        self.tasks.spawn(
            link::open(
                conn,
                Endpoint {
                    proxy: self.spec.proxy.clone(),
                    ..self.shared.endpoint.clone()
                },
                keys,
                self.session.policy().connect_timeout,
                self.shared.limiter.clone(),
                self.background_tx.clone(),
                LinkScope {
                    cancel,
                    tasks: self.tasks.clone(),
                },
            )
            .in_current_span(),
        );
        Vec::new()
    }

    async fn close(&mut self, conn: ConnId) -> Vec<Effect> {
        if self.link.conn() != Some(conn) {
            return Vec::new();
        }
        if let Link::Dialling { cancel, .. } = &self.link {
            cancel.cancel();
            self.link = Link::None;
            let cause = Cause::Closed;
            return self.session.handle(now(), Event::Closed { conn, cause });
        }
        self.close_link().await;
        Vec::new()
    }

    fn ping(&mut self, conn: ConnId) {
        let Link::Open {
            handle, conn: open, ..
        } = &self.link
        else {
            return;
        };
        if *open != conn {
            return;
        }
        let querier = handle.querier();
        let deadline = self.session.policy().keepalive_deadline;
        let tx = self.background_tx.clone();
        let cancel = self.tasks_cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                rtt = querier.ping(deadline) => {
                    let rtt = rtt.map_err(|_| ());
                    let _ = tx.send(Background::Ping { conn, rtt }).await;
                }
            }
        });
    }

    // ----- the store (never on an async worker) -----

    async fn store(&mut self, effect: Effect) -> Vec<Effect> {
        match effect {
            Effect::SaveCredentials => {
                let Some(creds) = self.creds.clone() else {
                    return Vec::new();
                };
                if let Some(Err(e)) = self.vault.run(move |v| v.save(&creds)).await {
                    warn!(error = %e, "could not save credentials");
                }
                Vec::new()
            }
            Effect::BackupCredentials => {
                let keys = self.shared.keys.clone();
                let done = self
                    .vault
                    .run(move |v| (v.backup(&keys), v.backup_info()))
                    .await;
                let Some((result, backups)) = done else {
                    self.shared.metrics.backups_failed.inc();
                    return Vec::new();
                };
                if let Err(e) = result {
                    self.shared.metrics.backups_failed.inc();
                    warn!(error = %e, "credential backup failed");
                } else {
                    self.shared.metrics.backups_written.inc();
                }
                self.session.handle(now(), Event::Backups(backups))
            }
            Effect::WipeCredentials { backup } => {
                let done = self
                    .vault
                    .run(move |v| (v.wipe(backup), v.backup_info()))
                    .await;
                self.creds = None;
                self.routing = None;
                self.prekeys.forget().await;
                let mut more = Vec::new();
                if let Some((result, backups)) = done {
                    if let Err(e) = result {
                        warn!(error = %e, "could not wipe credentials");
                    }
                    more.extend(self.session.handle(now(), Event::Backups(backups)));
                }
                let phone = self.phone();
                more.extend(self.session.handle(now(), Event::Phone { phone }));
                more
            }
            _ => Vec::new(),
        }
    }

    // ----- metrics -----

    fn count(&self, effect: &Effect) {
        let metrics = &self.shared.metrics;
        match effect {
            Effect::ShowQr { .. } => metrics.qr_shown.inc(),
            Effect::Disconnected { cause } => match cause {
                Cause::Conflict => metrics.conflicts.inc(),
                Cause::LoggedOut => metrics.logouts.inc(),
                _ => 0,
            },
            Effect::Reconnect { cause } => {
                metrics.reconnect(cause.name());
                0
            }
            _ => 0,
        };
    }
}
