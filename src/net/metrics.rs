//! Process metrics in Prometheus form: counters and histograms the drivers update as things
//! happen, and a per-session state gauge filled from the status board at scrape time.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::session::status::{StateName, Status};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: String,
}

/// One session's message counts by what happened (`sent`, `delivered`, `read`, `failed`,
/// `received`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub session: String,
    pub event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabel {
    pub session: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub session: String,
    pub state: String,
}

/// Every metric wasp exports. Shared by `Arc`; each metric is internally atomic.
pub struct Metrics {
    registry: Registry,
    pub session_state: Family<StateLabels, Gauge>,
    pub reconnects: Family<CauseLabel, Counter>,
    pub conflicts: Counter,
    pub logouts: Counter,
    pub keepalive_rtt: Histogram,
    pub connect_duration: Histogram,
    pub qr_shown: Counter,
    pub backups_written: Counter,
    pub backups_failed: Counter,
    pub connects_rate_limited: Counter,
    pub connects: Counter,
    /// The most dials the rate limiter let start within any one second so far.
    pub connects_peak_per_second: Gauge,
    /// Received frames that did not decode as a node (skipped, the link goes on).
    pub undecodable_nodes: Counter,
    /// Acks sent for pushed stanzas (message, receipt, notification, call).
    pub acks_sent: Counter,
    /// One-time pre-keys uploaded to the server.
    pub prekeys_uploaded: Counter,
    /// Texts sent (stanza written), messages decrypted, decrypt failures (retry receipts
    /// sent), and stanzas the messenger's full queue dropped (left unacked for redelivery).
    pub messages_sent: Counter,
    pub messages_received: Counter,
    pub decrypt_failures: Counter,
    pub messages_dropped: Counter,
    /// Server acks whose `phash` differed from ours: device lists fetched again.
    pub device_list_refreshes: Counter,
    /// Per session: messages by event, outbox depth, and the send-to-delivered latency.
    pub session_messages: Family<MessageLabels, Counter>,
    pub outbox_depth: Family<SessionLabel, Gauge>,
    /// 1 while a session's end-to-end probe is overdue (`[probe]`), from the statuses.
    pub session_degraded: Family<SessionLabel, Gauge>,
    pub delivery_latency: Histogram,
    /// Webhook events delivered (2xx), tries that failed and will be retried, events
    /// dead-lettered, events that could not be queued, and the queue's depth.
    pub webhook_delivered: Counter,
    pub webhook_retried: Counter,
    pub webhook_dead: Counter,
    pub webhook_lost: Counter,
    pub webhook_queue_depth: Gauge,
    /// Serialises scrapes: the state gauge is rebuilt per scrape.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `wasp_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wasp");
        let session_state = Family::<StateLabels, Gauge>::default();
        let reconnects = Family::<CauseLabel, Counter>::default();
        let conflicts = Counter::default();
        let logouts = Counter::default();
        let keepalive_rtt = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let connect_duration = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        let qr_shown = Counter::default();
        let backups_written = Counter::default();
        let backups_failed = Counter::default();
        let connects_rate_limited = Counter::default();
        let connects = Counter::default();
        let connects_peak_per_second = Gauge::default();
        let undecodable_nodes = Counter::default();
        let acks_sent = Counter::default();
        let prekeys_uploaded = Counter::default();
        let messages_sent = Counter::default();
        let messages_received = Counter::default();
        let decrypt_failures = Counter::default();
        let messages_dropped = Counter::default();
        let device_list_refreshes = Counter::default();
        let session_messages = Family::<MessageLabels, Counter>::default();
        let outbox_depth = Family::<SessionLabel, Gauge>::default();
        let session_degraded = Family::<SessionLabel, Gauge>::default();
        registry.register(
            "session_degraded",
            "1 while the session's end-to-end probe did not arrive in time ([probe])",
            session_degraded.clone(),
        );
        let delivery_latency = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let webhook_delivered = Counter::default();
        let webhook_retried = Counter::default();
        let webhook_dead = Counter::default();
        let webhook_lost = Counter::default();
        let webhook_queue_depth = Gauge::default();
        registry.register(
            "webhook_queue_depth",
            "Webhook events queued and not yet delivered",
            webhook_queue_depth.clone(),
        );
        registry.register(
            "session_messages",
            "Messages per session by event: sent (server ack), delivered, read, failed, received",
            session_messages.clone(),
        );
        registry.register(
            "outbox_depth",
            "Messages queued in a session's outbox, not yet acked by the server",
            outbox_depth.clone(),
        );
        registry.register(
            "message_delivery_seconds",
            "Time from a message's send to its delivery receipt",
            delivery_latency.clone(),
        );
        for (name, help, counter) in [
            (
                "messages_sent",
                "Messages encrypted and sent",
                &messages_sent,
            ),
            (
                "messages_received",
                "Messages received and decrypted",
                &messages_received,
            ),
            (
                "decrypt_failures",
                "Messages that could not be decrypted (retry receipt sent)",
                &decrypt_failures,
            ),
            (
                "messages_dropped",
                "Stanzas dropped by a full messenger queue (redelivered later)",
                &messages_dropped,
            ),
            (
                "device_list_refreshes",
                "Device lists fetched again because a server ack's phash differed from ours",
                &device_list_refreshes,
            ),
            (
                "webhook_delivered",
                "Webhook events the receiver accepted (2xx)",
                &webhook_delivered,
            ),
            (
                "webhook_retried",
                "Webhook tries that failed (5xx, 408, 429, network, timeout) and are retried",
                &webhook_retried,
            ),
            (
                "webhook_dead",
                "Webhook events moved to the dead letters",
                &webhook_dead,
            ),
            (
                "webhook_lost",
                "Webhook events that could not be queued (missed or database failure)",
                &webhook_lost,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "undecodable_nodes",
            "Received frames that did not decode as a node and were skipped",
            undecodable_nodes.clone(),
        );
        registry.register(
            "acks_sent",
            "Acks sent for pushed messages, receipts, notifications and calls",
            acks_sent.clone(),
        );
        registry.register(
            "prekeys_uploaded",
            "One-time pre-keys uploaded to the server",
            prekeys_uploaded.clone(),
        );
        registry.register(
            "session_state",
            "1 for the state each session is in",
            session_state.clone(),
        );
        registry.register(
            "reconnects",
            "Reconnects by the cause of the disconnect",
            reconnects.clone(),
        );
        registry.register("conflicts", "440 conflicts received", conflicts.clone());
        registry.register("logouts", "401 logouts received", logouts.clone());
        registry.register(
            "keepalive_rtt_seconds",
            "Keepalive ping round-trip time",
            keepalive_rtt.clone(),
        );
        registry.register(
            "connect_duration_seconds",
            "Time from dial to online",
            connect_duration.clone(),
        );
        registry.register("qr_shown", "QR codes shown for pairing", qr_shown.clone());
        registry.register(
            "backups_written",
            "Credential backups written and verified",
            backups_written.clone(),
        );
        registry.register(
            "backups_failed",
            "Credential backups that failed",
            backups_failed.clone(),
        );
        registry.register(
            "connects_rate_limited",
            "Connects that waited for the global rate limit",
            connects_rate_limited.clone(),
        );
        registry.register("connects", "Dials started", connects.clone());
        registry.register(
            "connects_peak_per_second",
            "The most dials started within any one second",
            connects_peak_per_second.clone(),
        );
        Metrics {
            registry,
            session_state,
            reconnects,
            conflicts,
            logouts,
            keepalive_rtt,
            connect_duration,
            qr_shown,
            backups_written,
            backups_failed,
            connects_rate_limited,
            connects,
            connects_peak_per_second,
            messages_sent,
            messages_received,
            decrypt_failures,
            messages_dropped,
            device_list_refreshes,
            session_messages,
            outbox_depth,
            session_degraded,
            delivery_latency,
            webhook_delivered,
            webhook_retried,
            webhook_dead,
            webhook_lost,
            webhook_queue_depth,
            undecodable_nodes,
            acks_sent,
            prekeys_uploaded,
            scrape: Mutex::new(()),
        }
    }

    /// Counts one message `event` of `session`.
    pub fn message(&self, session: &str, event: &str) {
        self.session_messages
            .get_or_create(&MessageLabels {
                session: session.to_string(),
                event: event.to_string(),
            })
            .inc();
    }

    /// Sets the outbox depth of `session`.
    pub fn set_outbox_depth(&self, session: &str, depth: u32) {
        self.outbox_depth
            .get_or_create(&SessionLabel {
                session: session.to_string(),
            })
            .set(i64::from(depth));
    }

    /// Counts one reconnect caused by `cause` (a `Cause::name()`).
    pub fn reconnect(&self, cause: &str) {
        self.reconnects
            .get_or_create(&CauseLabel {
                cause: cause.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition, with the state gauge taken from `statuses`.
    pub fn render(&self, statuses: &[Status]) -> String {
        let _guard = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.session_state.clear();
        self.session_degraded.clear();
        for status in statuses {
            self.session_degraded
                .get_or_create(&SessionLabel {
                    session: status.id.clone(),
                })
                .set(i64::from(status.outbox.degraded));
            for state in StateName::ALL {
                self.session_state
                    .get_or_create(&StateLabels {
                        session: status.id.clone(),
                        state: state.as_str().to_string(),
                    })
                    .set(i64::from(status.state() == state));
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn render_has_state_gauge_and_counters() {
        let m = Metrics::new();
        m.reconnect("closed");
        m.reconnect("closed");
        m.conflicts.inc();
        let mut s = Status::new("sales-1", "Sales", Instant::now());
        s.phase = crate::session::status::Phase::Online {
            since: Instant::now(),
        };
        let text = m.render(&[s]);
        assert!(text.contains("wasp_session_state{session=\"sales-1\",state=\"online\"} 1"));
        assert!(text.contains("wasp_session_state{session=\"sales-1\",state=\"backoff\"} 0"));
        assert!(text.contains("wasp_reconnects_total{cause=\"closed\"} 2"));
        assert!(text.contains("wasp_conflicts_total 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
