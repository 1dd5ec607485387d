//! Logging: a daily rolling text file under `<data_dir>/logs/` for the console, one JSON
//! object per line on stdout for headless runs, and in both the live feed `GET /events`
//! streams. `WASP_LOG` overrides the configured level.

mod feed;

pub use feed::{FEED_LINES, FeedItem, FeedLayer, LogFeed, LogFollower};

use std::fmt::Debug;
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

/// The environment variable whose value, when set, replaces the configured level.
pub const LEVEL_ENV: &str = "WASP_LOG";
/// Daily log files kept before the oldest is deleted.
pub const LOG_FILES_KEPT: usize = 14;

/// Keeps the background log writer alive; dropping it flushes what is buffered.
#[must_use = "logs are lost when the guard is dropped"]
#[derive(Debug)]
pub struct LogGuard {
    _worker: WorkerGuard,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot create the log directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open a log file in {path}: {source}")]
    OpenFile {
        path: PathBuf,
        #[source]
        source: tracing_appender::rolling::InitError,
    },
    #[error(
        "log level \"{directives}\" is not valid (try \"info\" or \"wasp=debug,warn\"): {source}"
    )]
    BadLevel {
        directives: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a logger is already installed in this process")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// The filter for `level` ("info", or directives such as "wasp=debug,warn"), unless
/// `WASP_LOG` is set and not empty, in which case that wins.
pub fn env_filter(level: &str) -> Result<EnvFilter, LoggingError> {
    filter_from(std::env::var(LEVEL_ENV).ok(), level)
}

/// The filter for `level` unless `overriding` holds non-empty directives.
fn filter_from(overriding: Option<String>, level: &str) -> Result<EnvFilter, LoggingError> {
    let directives = overriding
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| level.to_string());
    EnvFilter::try_new(&directives).map_err(|source| LoggingError::BadLevel { directives, source })
}

/// A non-blocking writer to `<data_dir>/logs/wasp.YYYY-MM-DD.log`, rolled daily, keeping
/// the last `LOG_FILES_KEPT` files. The directory is created (mode 0700 on Unix).
pub fn file_writer(data_dir: &Path) -> Result<(NonBlocking, LogGuard), LoggingError> {
    let dir = data_dir.join("logs");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|source| LoggingError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("wasp")
        .filename_suffix("log")
        .max_log_files(LOG_FILES_KEPT)
        .build(&dir)
        .map_err(|source| LoggingError::OpenFile { path: dir, source })?;
    let (writer, worker) = tracing_appender::non_blocking(appender);
    Ok((writer, LogGuard { _worker: worker }))
}

/// Installs the process-wide logger for the console: `extra` (the console's log pane), text
/// lines (no colour) in the daily file under `<data_dir>/logs/`, and the live feed. Nothing
/// goes to the terminal. A log file that cannot be opened is skipped (the pane and the feed
/// still work); the guard is `None` then.
pub fn init_file_logging<L>(
    data_dir: &Path,
    level: &str,
    extra: L,
) -> Result<Option<LogGuard>, LoggingError>
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    let filter = env_filter(level)?;
    let (text, guard) = match file_writer(data_dir) {
        Ok((writer, guard)) => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer),
            ),
            Some(guard),
        ),
        Err(_) => (None, None),
    };
    tracing_subscriber::registry()
        .with(extra)
        .with(text)
        .with(LogFeed::global().layer())
        .with(filter)
        .try_init()
        .map_err(LoggingError::AlreadyInstalled)?;
    Ok(guard)
}

/// Installs the process-wide logger for headless runs: one JSON object per line on stdout
/// (see `JsonLines`), and the live feed.
pub fn init_json_stdout(level: &str) -> Result<LogGuard, LoggingError> {
    let filter = env_filter(level)?;
    let (writer, worker) = tracing_appender::non_blocking(std::io::stdout());
    tracing_subscriber::registry()
        .with(JsonLines::new(writer))
        .with(LogFeed::global().layer())
        .with(filter)
        .try_init()
        .map_err(LoggingError::AlreadyInstalled)?;
    Ok(LogGuard { _worker: worker })
}

/// A layer writing each event as one JSON object per line:
/// `{"time":..,"level":"info","session":"sales-1"|null,"target":..,"message":..,"fields":{..}}`.
/// `session` comes from the event's own `session` field or the nearest span that has one.
#[derive(Debug)]
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub fn new(make_writer: W) -> Self {
        JsonLines { make_writer }
    }
}

/// The `session` field of a span, stored in its extensions.
struct SessionField(String);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(session), Some(span)) = (fields.session, ctx.span(id)) {
            span.extensions_mut().replace(SessionField(session));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let (Some(session), Some(span)) = (fields.session, ctx.span(id)) {
            span.extensions_mut().replace(SessionField(session));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let session = fields.session.or_else(|| {
            ctx.event_scope(event)?.find_map(|span| {
                span.extensions()
                    .get::<SessionField>()
                    .map(|found| found.0.clone())
            })
        });
        let mut time = String::new();
        // Formatting into a String cannot fail; an empty time is the worst outcome.
        let _ = SystemTime.format_time(&mut Writer::new(&mut time));
        let metadata = event.metadata();
        let line = serde_json::json!({
            "time": time,
            "level": metadata.level().as_str().to_ascii_lowercase(),
            "session": session,
            "target": metadata.target(),
            "message": fields.message.unwrap_or_default(),
            "fields": fields.others,
        });
        let mut text = line.to_string();
        text.push('\n');
        // A log line that cannot be written has nowhere else to go.
        let _ = self
            .make_writer
            .make_writer_for(metadata)
            .write_all(text.as_bytes());
    }
}

/// Collects an event's or span's fields into JSON values.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    session: Option<String>,
    others: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        match (field.name(), value) {
            ("message", serde_json::Value::String(text)) => self.message = Some(text),
            ("session", serde_json::Value::String(text)) => self.session = Some(text),
            ("session", other) => self.session = Some(other.to_string()),
            (name, value) => {
                self.others.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put(field, serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects written bytes so a test can read them back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    fn json_lines(captured: &Captured) -> Vec<serde_json::Value> {
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn json_lines_carry_the_session_of_the_enclosing_span() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", session = "sales-1");
            let _entered = span.enter();
            tracing::warn!(attempt = 3, cause = "conflict", "reconnecting");
        });
        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "warn");
        assert_eq!(line["session"], "sales-1");
        assert_eq!(line["message"], "reconnecting");
        assert_eq!(line["fields"]["attempt"], 3);
        assert_eq!(line["fields"]["cause"], "conflict");
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }

    #[test]
    fn json_lines_without_a_session_say_null() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(sessions = 3_u64, "pool started");
        });
        let lines = json_lines(&captured);
        assert_eq!(lines[0]["session"], serde_json::Value::Null);
        assert_eq!(lines[0]["fields"]["sessions"], 3);
    }

    #[test]
    fn an_event_field_named_session_wins_over_the_span() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("pool", session = "outer");
            let _entered = span.enter();
            tracing::info!(session = "inner", "picked");
        });
        assert_eq!(json_lines(&captured)[0]["session"], "inner");
    }

    #[test]
    fn file_writer_creates_the_log_directory_and_writes_there() {
        let data_dir = tempfile::tempdir().unwrap();
        let (writer, guard) = file_writer(data_dir.path()).unwrap();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer),
        );
        tracing::subscriber::with_default(subscriber, || tracing::info!("hello from the test"));
        drop(guard); // flushes the background writer
        let logs = data_dir.path().join("logs");
        let files: Vec<_> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("wasp.") && name.ends_with(".log"),
            "{name}"
        );
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("hello from the test"), "{text}");
    }

    #[test]
    fn a_bad_level_is_an_error_naming_it() {
        let error = filter_from(None, "wasp=loud").unwrap_err();
        assert!(error.to_string().contains("\"wasp=loud\""), "{error}");
        assert!(filter_from(None, "wasp=debug,warn").is_ok());
    }

    #[test]
    fn wasp_log_overrides_the_configured_level() {
        let error = filter_from(Some("nonsense=loud".into()), "info").unwrap_err();
        assert!(error.to_string().contains("nonsense=loud"), "{error}");
        // An empty override is ignored.
        assert!(filter_from(Some("  ".into()), "info").is_ok());
        let filter = filter_from(Some("debug".into()), "error").unwrap();
        assert_eq!(filter.to_string(), "debug");
    }
}
