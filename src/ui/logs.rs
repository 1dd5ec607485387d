//! The logs pane's source: a tracing `Layer` that formats each event into one line and keeps the
//! newest lines in a bounded ring shared with the console, counting the lines it had to drop.
//! It never writes to the terminal (the console owns it while running).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A line is cut after this many characters (a runaway Debug print must not fill the ring).
const MAX_LINE_CHARS: usize = 400;

/// One formatted log line.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Position in the stream of all lines ever pushed (survives eviction; anchors scrolling).
    pub seq: u64,
    /// Wall-clock time of day, UTC, `HH:MM:SS`.
    pub time: String,
    pub level: Level,
    /// The `session` field of the event or of the nearest enclosing span.
    pub session: Option<String>,
    pub target: String,
    pub text: String,
}

/// The bounded ring of log lines, shared by the tracing layer (writer) and the console
/// (reader). When full, the oldest line is dropped and counted.
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Inner>,
}

struct Inner {
    lines: Mutex<Ring>,
    capacity: usize,
    dropped: AtomicU64,
    notify: tokio::sync::Notify,
}

struct Ring {
    lines: VecDeque<LogLine>,
    next_seq: u64,
}

impl std::fmt::Debug for LogRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRing")
            .field("capacity", &self.inner.capacity)
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl LogRing {
    /// A ring keeping the newest `capacity` lines (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        LogRing {
            inner: Arc::new(Inner {
                lines: Mutex::new(Ring {
                    lines: VecDeque::with_capacity(capacity.min(4096)),
                    next_seq: 0,
                }),
                capacity,
                dropped: AtomicU64::new(0),
                notify: tokio::sync::Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding this lock cannot leave the ring inconsistent (every mutation is
        // a single push or pop), so a poisoned lock is still usable.
        self.inner
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a line, dropping (and counting) the oldest one when the ring is full.
    pub fn push(
        &self,
        time: impl Into<String>,
        level: Level,
        session: Option<String>,
        target: impl Into<String>,
        text: impl Into<String>,
    ) {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.lines.len() >= self.inner.capacity {
            ring.lines.pop_front();
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ring.lines.push_back(LogLine {
            seq,
            time: time.into(),
            level,
            session,
            target: target.into(),
            text: text.into(),
        });
        drop(ring);
        self.inner.notify.notify_one();
    }

    /// Lines dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `seq` the next pushed line will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Every line now held, oldest first (for freezing the pane).
    pub fn snapshot(&self) -> Vec<LogLine> {
        self.lock().lines.iter().cloned().collect()
    }

    /// Up to `max` of the newest lines that pass `keep` and have `seq <= upto` (all when
    /// `None`), oldest first.
    pub fn tail(
        &self,
        max: usize,
        upto: Option<u64>,
        keep: impl Fn(&LogLine) -> bool,
    ) -> Vec<LogLine> {
        let ring = self.lock();
        tail_of(ring.lines.iter(), max, upto, keep)
    }

    /// Resolves when a line was pushed since the last call (notifications coalesce).
    pub async fn changed(&self) {
        self.inner.notify.notified().await;
    }

    /// The tracing layer that writes into this ring.
    pub fn layer(&self) -> RingLayer {
        RingLayer { ring: self.clone() }
    }
}

/// The newest `max` lines of `lines` (oldest first) passing `keep`, at or before `upto`.
pub fn tail_of<'a>(
    lines: impl DoubleEndedIterator<Item = &'a LogLine>,
    max: usize,
    upto: Option<u64>,
    keep: impl Fn(&LogLine) -> bool,
) -> Vec<LogLine> {
    let mut out: Vec<LogLine> = lines
        .rev()
        .filter(|l| upto.is_none_or(|u| l.seq <= u))
        .filter(|l| keep(l))
        .take(max)
        .cloned()
        .collect();
    out.reverse();
    out
}

/// `HH:MM:SS` (UTC) of a wall-clock time.
pub fn time_of_day(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// A tracing layer formatting events into a `LogRing`. Add it to the registry in place of a
/// terminal writer while the console runs.
#[derive(Clone)]
pub struct RingLayer {
    ring: LogRing,
}

/// The `session` field remembered on a span.
struct SessionTag(String);

#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
    session: Option<String>,
}

impl LineVisitor {
    fn put(&mut self, field: &Field, value: &dyn std::fmt::Display) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value}");
            }
            "session" => self.session = Some(value.to_string()),
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, &format_args!("{value:?}"));
    }
}

impl<S> Layer<S> for RingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut visitor = LineVisitor::default();
        attrs.record(&mut visitor);
        if let (Some(session), Some(span)) = (visitor.session, ctx.span(id)) {
            span.extensions_mut().insert(SessionTag(session));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let mut visitor = LineVisitor::default();
        values.record(&mut visitor);
        if let (Some(session), Some(span)) = (visitor.session, ctx.span(id)) {
            let mut ext = span.extensions_mut();
            ext.remove::<SessionTag>();
            ext.insert(SessionTag(session));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = LineVisitor::default();
        event.record(&mut visitor);
        let session = visitor.session.take().or_else(|| {
            ctx.event_scope(event).and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|span| span.extensions().get::<SessionTag>().map(|t| t.0.clone()))
            })
        });
        let mut text = visitor.message;
        text.push_str(&visitor.fields);
        if text.chars().count() > MAX_LINE_CHARS {
            text = text.chars().take(MAX_LINE_CHARS - 1).collect();
            text.push('…');
        }
        let meta = event.metadata();
        self.ring.push(
            time_of_day(SystemTime::now()),
            *meta.level(),
            session,
            meta.target(),
            text.replace('\n', " "),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_become_lines_tagged_with_their_session_span() {
        let ring = LogRing::new(10);
        let subscriber = tracing_subscriber::registry().with(ring.layer());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", session = "sales-1");
            let _guard = span.enter();
            tracing::warn!(code = 440, "replaced elsewhere");
            tracing::info!(session = "other", "explicit field wins");
        });
        let lines = ring.snapshot();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].session.as_deref(), Some("sales-1"));
        assert_eq!(lines[0].level, Level::WARN);
        assert_eq!(lines[0].text, "replaced elsewhere code=440");
        assert_eq!(lines[1].session.as_deref(), Some("other"));
    }

    #[test]
    fn a_full_ring_drops_the_oldest_and_counts() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push("00:00:00", Level::INFO, None, "t", format!("line {i}"));
        }
        let texts: Vec<_> = ring.snapshot().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, ["line 2", "line 3", "line 4"]);
        assert_eq!(ring.dropped(), 2);
    }

    #[test]
    fn tail_filters_and_anchors() {
        let ring = LogRing::new(10);
        for i in 0..6 {
            let level = if i % 2 == 0 {
                Level::WARN
            } else {
                Level::DEBUG
            };
            ring.push("00:00:00", level, None, "t", format!("{i}"));
        }
        let warn = ring.tail(2, None, |l| l.level <= Level::WARN);
        assert_eq!(
            warn.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["2", "4"]
        );
        let before = ring.tail(2, Some(3), |_| true);
        assert_eq!(before.iter().map(|l| l.seq).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn time_of_day_is_utc_clock_time() {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 3 + 3600 * 13 + 61);
        assert_eq!(time_of_day(at), "13:01:01");
    }
}
