//! `wasp bench`: repeatable measurements, JSON out, one subcommand per measurement (clap
//! refuses unknown ones and unknown flags). Each measurement's code lives in its own file:
//! `sim_idle.rs` (the simulator's cost per idle connection), `frame.rs` (building and drawing
//! one console frame for a large fleet), `attach::bench` (the event path of an attached
//! console), `messages.rs` (texts both ways through a pool and the simulator, with faults),
//! `soak.rs` (a pool under a seeded random fault plan), and the pool's own figures with
//! `wasp sim` in another process: `idle.rs`, `connect.rs`, `storm.rs`, `restore.rs` (their
//! paired fleet: `fleet.rs`). `child.rs` runs `wasp sim` as its own process.

use clap::Subcommand;

mod child;
pub mod connect;
pub mod fleet;
mod frame;
pub mod idle;
pub mod messages;
pub mod restore;
mod sim_idle;
pub mod soak;
pub mod storm;
mod traffic;

/// The measurements of `wasp bench`.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// The simulator's RSS and CPU per idle connection (`wasp sim` as its own process).
    SimIdle(sim_idle::SimIdleArgs),
    /// Building and drawing one console frame for a large fleet.
    Frame(frame::FrameArgs),
    /// The event path of an attached console against the in-process one.
    Attach(AttachArgs),
    /// Texts both ways through a pool and `wasp sim`, optionally with faults.
    Messages(messages::MessagesArgs),
    /// A pool under a seeded random fault plan, judged from the simulator's side.
    Soak(soak::SoakArgs),
    /// This process's pool with N sessions online and idle: client RSS per session and CPU.
    Idle(idle::IdleArgs),
    /// N sessions dialling at once, rate limit off: all-online time, p50/p99 connect.
    Connect(connect::ConnectArgs),
    /// N sessions dropped at once by the simulator, reconnecting under a limit of R/s.
    Storm(storm::StormArgs),
    /// N sessions on disk: the time until all are loaded and queued.
    Restore(restore::RestoreArgs),
    /// Pairs a fleet for the pool measurements (run by them as a child process).
    #[command(hide = true)]
    Prepare(fleet::PrepareArgs),
}

/// The options of `wasp bench attach`.
#[derive(Debug, Clone, clap::Args)]
pub struct AttachArgs {
    /// Sessions in the fleet (at most 5,000).
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=5000))]
    pub sessions: u64,
    /// Rounds of events to time.
    #[arg(long, value_name = "R", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rounds: u64,
}

/// Runs one measurement; returns the exit code (0 done, 1 failed).
pub async fn run(command: BenchCommand) -> u8 {
    match command {
        BenchCommand::SimIdle(args) => print_json("sim-idle", sim_idle::run(&args).await),
        BenchCommand::Frame(args) => {
            println!("{}", frame::run(&args).to_json());
            0
        }
        BenchCommand::Attach(args) => print_json(
            "attach",
            crate::attach::bench::event_path(args.sessions as usize, args.rounds as usize).await,
        ),
        BenchCommand::Messages(args) => messages::main(&args).await,
        BenchCommand::Soak(args) => soak::run(&args).await,
        BenchCommand::Idle(args) => print_json("idle", idle::run(&args, None).await),
        BenchCommand::Connect(args) => print_json("connect", connect::run(&args, None).await),
        BenchCommand::Storm(args) => print_json("storm", storm::run(&args, None).await),
        BenchCommand::Restore(args) => print_json("restore", restore::run(&args, None).await),
        BenchCommand::Prepare(args) => print_json("prepare", fleet::prepare(&args).await),
    }
}

/// Prints a JSON report (exit 0) or the error (exit 1).
fn print_json(name: &str, result: Result<serde_json::Value, String>) -> u8 {
    match result {
        Ok(report) => {
            println!("{report}");
            0
        }
        Err(e) => {
            eprintln!("wasp bench {name}: {e}");
            1
        }
    }
}
