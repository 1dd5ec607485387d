//! Frame cost measurement for `wasp bench` and docs/benchmarks.md: build a model of N sample
//! sessions and time drawing whole frames (widgets built and rendered into a test backend,
//! which diffs like a real terminal but writes nothing).

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::logs::LogRing;
use super::model::{Model, Settings};
use super::sample::sample_fleet;
use super::update::{Msg, update};
use super::view;

/// Timings of `iterations` frames.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameBench {
    pub sessions: usize,
    pub width: u16,
    pub height: u16,
    pub iterations: usize,
    /// A tick frame: one second later, every countdown changes.
    pub tick: Stats,
    /// A storm frame: every session's status replaced in one batch, then one frame.
    pub storm: Stats,
    /// The merge part of a storm frame alone (`Model::apply`: insert, filter, sort).
    pub apply: Stats,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    pub min: Duration,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).copied().unwrap_or_default()
        };
        Stats {
            min: at(0.0),
            median: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        serde_json::json!({
            "min_us": us(self.min),
            "median_us": us(self.median),
            "p99_us": us(self.p99),
            "max_us": us(self.max),
        })
    }
}

impl FrameBench {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bench": "ui_frame",
            "sessions": self.sessions,
            "width": self.width,
            "height": self.height,
            "iterations": self.iterations,
            "tick_frame": self.tick.json(),
            "storm_frame": self.storm.json(),
            "storm_apply": self.apply.json(),
        })
    }
}

/// Times `iterations` tick frames and `iterations` storm frames of a `width` x `height`
/// console showing `sessions` sample sessions.
pub fn bench_frame(sessions: usize, width: u16, height: u16, iterations: usize) -> FrameBench {
    let start = Instant::now();
    let ring = LogRing::new(1000);
    for i in 0..200 {
        ring.push(
            "12:00:00",
            tracing::Level::INFO,
            Some(format!("s{:04}", i % 50 + 1)),
            "wasp",
            format!("sample line {i}"),
        );
    }
    let mut model = Model::new(Settings::default(), ring);
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|never| match never {});
    update(&mut model, Msg::Resize(width, height), start);
    update(
        &mut model,
        Msg::Statuses(sample_fleet(sessions, start)),
        start,
    );

    let mut now = start;
    let mut frame = |model: &Model, now: Instant| {
        let t = Instant::now();
        let _ = terminal.draw(|f| view::draw(f, model, now));
        t.elapsed()
    };
    frame(&model, now);

    let mut tick = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        now += Duration::from_secs(1);
        update(&mut model, Msg::Tick, now);
        tick.push(frame(&model, now));
    }
    let mut storm = Vec::with_capacity(iterations);
    let mut apply = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        now += Duration::from_secs(1);
        let batch = sample_fleet(sessions, now);
        let t = Instant::now();
        update(&mut model, Msg::Statuses(batch), now);
        let applied = t.elapsed();
        apply.push(applied);
        storm.push(applied + frame(&model, now));
    }
    FrameBench {
        sessions,
        width,
        height,
        iterations,
        tick: Stats::of(tick),
        storm: Stats::of(storm),
        apply: Stats::of(apply),
    }
}
