//! The `wasp` command line: parses arguments, picks the subcommand, installs the panic hook,
//! and maps outcomes to exit codes (0 ok, 2 bad usage or config, 1 runtime failure).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use wasp::config;

/// jemalloc, tuned in `.cargo/config.toml`: with glibc's allocator an idle session cost about
/// a fifth more memory, most of it holes left by the allocations of its connect.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// wasp: keeps a pool of WhatsApp Web sessions online, with a terminal console.
#[derive(Debug, Parser)]
#[command(name = "wasp", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of the console when no subcommand is given.
    #[command(flatten)]
    tui: TuiArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The console (the default when no subcommand is given).
    Tui(TuiArgs),
    /// The console against the embedded simulator; needs no network.
    Demo(DemoArgs),
    /// The pool without a console: JSON log lines on stdout, HTTP endpoint.
    Headless(HeadlessArgs),
    /// The console on a pool running elsewhere (`wasp headless`, or a detached console).
    Attach(AttachArgs),
    /// The simulated WhatsApp server on its own.
    Sim(SimArgs),
    /// Validate a config file and print every problem with file:line:column.
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
    },
    /// Repeatable measurements (the pool, the simulator, the console), JSON out.
    Bench {
        #[command(subcommand)]
        what: wasp::bench::BenchCommand,
    },
}

/// Console options shared by `tui` and `demo`.
#[derive(Debug, Args, Clone)]
struct ConsoleArgs {
    /// A TOML keymap that overlays the embedded default keys.
    #[arg(long, value_name = "FILE")]
    keymap: Option<PathBuf>,
    /// Browse only: every operator action is refused.
    #[arg(long)]
    read_only: bool,
    /// Do not capture the mouse (keeps the terminal's own text selection).
    #[arg(long)]
    no_mouse: bool,
}

#[derive(Debug, Args)]
struct TuiArgs {
    /// The sessions file.
    #[arg(long, value_name = "FILE", default_value = "sessions.toml")]
    config: PathBuf,
    /// Colour theme from themes/ (dark, light, mono).
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,
    /// Draw with ASCII only (no Unicode blocks or glyphs).
    #[arg(long)]
    ascii: bool,
    /// Also serve the health/metrics endpoint on this address.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    #[command(flatten)]
    console: ConsoleArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// How many simulated sessions to run.
    #[arg(long, value_name = "N", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=5000))]
    sessions: u32,
    /// Inject scripted faults (conflict, drop, stall, 515, 503, logout) into random sessions
    /// every few seconds (the default in the demo).
    #[arg(long, overrides_with = "no_faults")]
    faults: bool,
    /// Run the demo without faults.
    #[arg(long, overrides_with = "faults")]
    no_faults: bool,
    /// Colour theme from themes/ (dark, light, mono).
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,
    /// Draw with ASCII only.
    #[arg(long)]
    ascii: bool,
    /// Serve the embedded simulator's admin API on a free loopback port and write its URL to
    /// `sim-admin-url` in the demo's data directory (for scripts and tests).
    #[arg(long)]
    sim_admin: bool,
    #[command(flatten)]
    console: ConsoleArgs,
}

impl DemoArgs {
    /// Faults are on unless `--no-faults` is the last of the two flags given.
    fn faults_on(&self) -> bool {
        self.faults || !self.no_faults
    }
}

#[derive(Debug, Args)]
struct AttachArgs {
    /// `http://host:port`, or the pool's socket file (or its data directory). Default: the
    /// local socket of --config's data directory, else the newest demo's.
    target: Option<String>,
    /// A file holding the pool's bearer token. Without one (and none beside a local socket)
    /// the console is read-only and shows no QR.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The sessions file whose data directory holds the local socket.
    #[arg(long, value_name = "FILE", default_value = "sessions.toml")]
    config: PathBuf,
    /// Colour theme from themes/ (dark, light, mono).
    #[arg(long, value_name = "NAME")]
    theme: Option<String>,
    /// Draw with ASCII only.
    #[arg(long)]
    ascii: bool,
    #[command(flatten)]
    console: ConsoleArgs,
}

#[derive(Debug, Args)]
struct HeadlessArgs {
    /// The sessions file.
    #[arg(long, value_name = "FILE", default_value = "sessions.toml")]
    config: PathBuf,
    /// Serve the health/metrics endpoint here (overrides [http] listen).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// WebSocket address to serve the protocol on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address of the admin HTTP API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    admin: SocketAddr,
    /// File keeping the simulator's keys and devices between runs.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Refuse logins and registrations claiming an older client version (405).
    #[arg(long, value_name = "V", default_value_t = wasp::sim::strict::DEFAULT_MIN_VERSION)]
    min_version: wasp::wa::payload::ClientVersion,
    /// How long a pushed stanza may wait for its ack ("20s", "300ms").
    #[arg(long, value_name = "DUR", default_value = "20s", value_parser = wasp::config::parse_duration)]
    ack_timeout: std::time::Duration,
    /// Push no traffic after login (offline queue, notifications, receipts, history).
    #[arg(long)]
    no_pushes: bool,
    /// Never end the stream for unacknowledged stanzas.
    #[arg(long)]
    no_ack_check: bool,
    /// Accept any device name in a registration.
    #[arg(long)]
    no_device_check: bool,
    /// Serve `wss://` with a certificate made at start; its CA's PEM goes to --ca-file (a
    /// client trusts it with `[server] ca_file`) and into the ready line.
    #[arg(long)]
    tls: bool,
    /// Where --tls writes the CA's PEM (default: the temporary directory).
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_file: Option<PathBuf>,
}

impl SimArgs {
    /// The switches these flags ask for (strict unless turned off).
    fn strictness(&self) -> wasp::sim::Strictness {
        let strict = wasp::sim::Strictness::default();
        wasp::sim::Strictness {
            pushes: !self.no_pushes,
            ack_timeout: self.ack_timeout,
            max_unacked: if self.no_ack_check {
                0
            } else {
                strict.max_unacked
            },
            min_version: self.min_version,
            check_device_name: !self.no_device_check,
            prekeys: strict.prekeys,
        }
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    // Files and directories wasp creates (credentials, logs, the data dir) are the user's
    // alone, whatever the code path that creates them.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    // Each session holds a socket and a lock file: the default soft limit (often 1,024) is
    // too small for a pool of a few hundred. `start` refuses a config that does not fit.
    if let Err(e) = wasp::descriptors::raise() {
        eprintln!("wasp: {e}");
    }
    // A panic has already printed its sentence (hook above); it is a runtime failure.
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(error)) => {
            eprintln!("wasp: {error:#}");
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}

/// Exit code 2: bad usage or config.
fn usage_failure() -> ExitCode {
    ExitCode::from(2)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Tui(cli.tui));
    Ok(match command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Tui(args) => {
            let options = ui_options(args.theme, args.ascii, args.console);
            ExitCode::from(runtime()?.block_on(wasp::console::tui(
                &args.config,
                args.http,
                options,
            )))
        }
        Command::Demo(args) => {
            let faults = args.faults_on();
            let options = ui_options(args.theme, args.ascii, args.console);
            ExitCode::from(runtime()?.block_on(wasp::console::demo(
                args.sessions,
                faults,
                args.sim_admin,
                options,
            )))
        }
        Command::Attach(args) => {
            let options = ui_options(args.theme, args.ascii, args.console);
            ExitCode::from(runtime()?.block_on(wasp::attach::run(
                args.target.as_deref(),
                args.token_file.as_deref(),
                &args.config,
                options,
            )))
        }
        Command::Headless(args) => ExitCode::from(runtime()?.block_on(async {
            // The guard flushes the log writer when dropped: keep it for the whole run.
            let _guard = match wasp::logging::init_json_stdout("info") {
                Ok(guard) => Some(guard),
                Err(e) => {
                    eprintln!("wasp headless: {e}");
                    None
                }
            };
            wasp::runner::headless(&args.config, args.http).await
        })),
        Command::Sim(args) => {
            let strict = args.strictness();
            let tls_ca = args
                .tls
                .then(|| args.ca_file.unwrap_or_else(wasp::sim::cli::default_ca_file));
            ExitCode::from(runtime()?.block_on(wasp::sim::cli::run(
                args.listen,
                args.admin,
                args.state,
                strict,
                tls_ca,
            )))
        }
        Command::Bench { what } => ExitCode::from(runtime()?.block_on(wasp::bench::run(what))),
    })
}

fn ui_options(theme: Option<String>, ascii: bool, console: ConsoleArgs) -> wasp::ui::UiOptions {
    let defaults = wasp::ui::UiOptions::default();
    wasp::ui::UiOptions {
        theme,
        ascii: ascii || defaults.ascii,
        read_only: console.read_only,
        keymap_path: console.keymap,
        mouse: !console.no_mouse,
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `wasp check-config FILE`: every problem on stderr (exit 2) or a one-line summary on
/// stdout (exit 0).
fn check_config(file: &Path) -> ExitCode {
    let name = config::escape_controls(&file.display().to_string());
    match config::load(file) {
        Ok(config) => {
            // The limit the pool would run under: start raises the soft limit to the hard.
            let fits = wasp::descriptors::current().and_then(|limit| {
                wasp::descriptors::Budget::of(&config, config.http.is_some()).check(limit.hard)
            });
            if let Err(e) = fits {
                eprintln!("{name}: {e}");
                return usage_failure();
            }
            if let Some(var) = config.webhook.as_ref().and_then(|w| w.missing_secret()) {
                eprintln!(
                    "{name}: secret_env in [webhook] names the variable {var}, which is not set: put the signing secret in it or remove secret_env"
                );
                return usage_failure();
            }
            println!("{}", summary(&name, &config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for line in errors.lines() {
                eprintln!("{line}");
            }
            usage_failure()
        }
    }
}

/// "sessions.toml: ok, 3 sessions (2 autostart), data dir ./wasp-data"
fn summary(file: &str, config: &config::Config) -> String {
    let count = config.sessions.len();
    let noun = if count == 1 { "session" } else { "sessions" };
    let mut line = format!(
        "{file}: ok, {count} {noun} ({} autostart), data dir {}",
        config.autostart_count(),
        config.storage.data_dir.display()
    );
    if let Some(http) = &config.http {
        line.push_str(&format!(", http {}", http.listen));
    }
    if let Some(cluster) = &config.cluster {
        line.push_str(&format!(", cluster node {}", cluster.node_id));
    }
    if let Some(url) = config.webhook.as_ref().and_then(|w| w.url.as_ref()) {
        line.push_str(&format!(", webhook {}:{}", url.host, url.port));
    }
    line
}

/// A panic prints one sentence instead of a backtrace (the log file has the details).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%message, location = %place, "panic");
        eprintln!(
            "wasp stopped on an internal error ({message}{place}); this is a bug, please report it."
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_faults(args: &[&str]) -> bool {
        let cli = Cli::try_parse_from(["wasp", "demo"].iter().chain(args)).unwrap();
        match cli.command {
            Some(Command::Demo(demo)) => demo.faults_on(),
            other => panic!("not the demo: {other:?}"),
        }
    }

    #[test]
    fn demo_faults_are_on_by_default_and_the_last_flag_wins() {
        assert!(demo_faults(&[]));
        assert!(demo_faults(&["--faults"]));
        assert!(!demo_faults(&["--no-faults"]));
        assert!(!demo_faults(&["--faults", "--no-faults"]));
        assert!(demo_faults(&["--no-faults", "--faults"]));
    }
}
