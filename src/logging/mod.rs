//! Logging: a daily rolling text file under `<data_dir>/logs/` for the console, one JSON
//! object per line on stdout for headless runs, and in both the live feed `GET /events`
//! streams. `WASP_LOG` overrides the configured level.

mod feed;
mod json;

pub use feed::{FEED_LINES, FeedItem, FeedLayer, LogFeed, LogFollower};
pub use json::JsonLines;

use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::{Layer, SubscriberExt};
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
        .map_err(|source| LoggingError::OpenFile {
            path: dir.clone(),
            source,
        })?;
    private_files(&dir);
    let (writer, worker) = tracing_appender::non_blocking(appender);
    Ok((writer, LogGuard { _worker: worker }))
}

/// Makes the log files in `dir` readable by the owner only (the appender creates them with
/// the process umask; `main` sets 0077 so files made on later rotations are private too).
fn private_files(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&files[0]),
            0o600,
            "the console log is the user's alone"
        );
        assert_eq!(mode(&logs), 0o700);
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
