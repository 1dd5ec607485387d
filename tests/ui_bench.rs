//! The console's frame-cost measurement, run on demand (it times, it does not judge):
//! `cargo test --test ui_bench -- --ignored --nocapture`. The figure goes to docs/benchmarks.md;
//! `wasp bench` can call `wasp::ui::bench_frame` the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use wasp::ui::bench_frame;

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn frame_cost_with_5000_sessions_at_200x60() {
    let report = bench_frame(5000, 200, 60, 200);
    println!("{}", report.to_json());
}
