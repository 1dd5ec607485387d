//! The live log feed: every log line, as the same JSON object headless runs print, fanned out
//! to followers (`GET /events`) through a bounded broadcast. A follower that falls behind
//! loses the oldest lines; the loss is counted, never waited for.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast::{self, error::RecvError};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::json::JsonLines;

/// Lines a follower may fall behind before it loses the oldest.
pub const FEED_LINES: usize = 1024;

/// A cloneable handle on the feed: the logging layer writes into it, followers read it.
#[derive(Clone, Debug)]
pub struct LogFeed {
    lines: broadcast::Sender<Arc<str>>,
    dropped: Arc<AtomicU64>,
}

/// What a follower gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    /// One log line (a JSON object, no trailing newline).
    Line(Arc<str>),
    /// The follower fell behind and lost this many lines.
    Missed(u64),
}

impl LogFeed {
    /// A feed keeping `capacity` lines for slow followers.
    pub fn new(capacity: usize) -> LogFeed {
        let (lines, _) = broadcast::channel(capacity.max(1));
        LogFeed {
            lines,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The process's feed. Like the tracing subscriber it hangs off, it is process-wide:
    /// the logger installed by `main` or the console writes it, the HTTP endpoint reads it.
    pub fn global() -> &'static LogFeed {
        static FEED: OnceLock<LogFeed> = OnceLock::new();
        FEED.get_or_init(|| LogFeed::new(FEED_LINES))
    }

    /// The tracing layer that writes every event into this feed (formatting is skipped
    /// while nobody follows).
    pub fn layer(&self) -> FeedLayer {
        FeedLayer {
            json: JsonLines::new(self.clone()),
            feed: self.clone(),
        }
    }

    /// Starts following: lines logged from now on.
    pub fn follow(&self) -> LogFollower {
        LogFollower {
            rx: self.lines.subscribe(),
            dropped: self.dropped.clone(),
        }
    }

    /// Lines lost by slow followers since the process started (summed over followers).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn has_followers(&self) -> bool {
        self.lines.receiver_count() > 0
    }
}

/// One follower of the feed.
#[derive(Debug)]
pub struct LogFollower {
    rx: broadcast::Receiver<Arc<str>>,
    dropped: Arc<AtomicU64>,
}

impl LogFollower {
    /// The next line, or how many were lost; `None` when the feed is gone.
    pub async fn next(&mut self) -> Option<FeedItem> {
        match self.rx.recv().await {
            Ok(line) => Some(FeedItem::Line(line)),
            Err(RecvError::Lagged(n)) => {
                self.dropped.fetch_add(n, Ordering::Relaxed);
                Some(FeedItem::Missed(n))
            }
            Err(RecvError::Closed) => None,
        }
    }
}

/// Writes one formatted line into the feed (`JsonLines` writes each event in one call).
pub struct FeedWriter<'a>(&'a LogFeed);

impl Write for FeedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let line = text.trim_end_matches('\n');
        if !line.is_empty() {
            // No follower: the line has nowhere to go, which is fine.
            let _ = self.0.lines.send(Arc::from(line));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFeed {
    type Writer = FeedWriter<'a>;

    fn make_writer(&'a self) -> FeedWriter<'a> {
        FeedWriter(self)
    }
}

/// The layer `LogFeed::layer` returns.
pub struct FeedLayer {
    json: JsonLines<LogFeed>,
    feed: LogFeed,
}

impl<S> Layer<S> for FeedLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.json.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.json.on_record(id, values, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.feed.has_followers() {
            self.json.on_event(event, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[tokio::test]
    async fn followers_get_json_lines_with_the_session() {
        let feed = LogFeed::new(16);
        let mut follower = feed.follow();
        let subscriber = tracing_subscriber::registry().with(feed.layer());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", session = "sales-1");
            let _entered = span.enter();
            tracing::info!(command = "reconnect", "operator command");
        });
        let Some(FeedItem::Line(line)) = follower.next().await else {
            panic!("expected a line");
        };
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["session"], "sales-1");
        assert_eq!(json["message"], "operator command");
        assert_eq!(json["fields"]["command"], "reconnect");
    }

    #[tokio::test]
    async fn a_slow_follower_loses_the_oldest_lines_and_they_are_counted() {
        let feed = LogFeed::new(4);
        let mut slow = feed.follow();
        let subscriber = tracing_subscriber::registry().with(feed.layer());
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..10 {
                tracing::info!(i, "line");
            }
        });
        assert_eq!(slow.next().await, Some(FeedItem::Missed(6)));
        assert_eq!(feed.dropped(), 6);
        let Some(FeedItem::Line(line)) = slow.next().await else {
            panic!("expected a line after the loss");
        };
        assert!(line.contains("\"i\":6"), "{line}");
    }

    #[test]
    fn nothing_is_formatted_while_nobody_follows() {
        let feed = LogFeed::new(4);
        let subscriber = tracing_subscriber::registry().with(feed.layer());
        tracing::subscriber::with_default(subscriber, || tracing::info!("unheard"));
        let mut late = feed.follow();
        assert!(late.rx.try_recv().is_err());
    }
}
