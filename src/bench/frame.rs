//! `wasp bench frame [--sessions N] [--width W] [--height H] [--iterations I]`: building and
//! drawing one console frame for a fleet of N sample sessions (`ui::bench_frame`).

use crate::ui::{FrameBench, bench_frame};

/// The options of `wasp bench frame`.
#[derive(Debug, Clone, clap::Args)]
pub struct FrameArgs {
    /// Sessions in the sample fleet.
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sessions: u64,
    /// Terminal width in columns.
    #[arg(long, value_name = "W", default_value_t = 200,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub width: u16,
    /// Terminal height in rows.
    #[arg(long, value_name = "H", default_value_t = 60,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub height: u16,
    /// Frames to time.
    #[arg(long, value_name = "I", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub iterations: u64,
}

pub(super) fn run(args: &FrameArgs) -> FrameBench {
    bench_frame(
        args.sessions as usize,
        args.width,
        args.height,
        args.iterations as usize,
    )
}
