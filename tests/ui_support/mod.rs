//! Helpers shared by the console's tests: a fixed fleet, a fixed log ring, key messages,
//! scripted steps, drawing a model onto a `TestBackend`, and (in `harness`) the event loop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod harness;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tracing::Level;
use wasp::session::status::{StateName, Status, TimelineEntry};
use wasp::ui::{LogRing, Model, Msg, Settings, Theme, sample_fleet, update};

/// A ring with a few lines of every level, fixed times.
pub fn ring() -> LogRing {
    let ring = LogRing::new(500);
    let lines = [
        (Level::INFO, Some("s0002"), "pairing: QR ref 1/6 shown"),
        (
            Level::WARN,
            Some("s0006"),
            "stream error: conflict (440), replaced elsewhere",
        ),
        (
            Level::INFO,
            Some("s0001"),
            "backoff: retry in 14s, attempt 3/20 (closed 428)",
        ),
        (Level::DEBUG, Some("s0010"), "keepalive answered in 142ms"),
        (
            Level::ERROR,
            Some("s0008"),
            "failed: client outdated (405); set the client version",
        ),
        (Level::INFO, None, "rate limit: 5 connects/s, burst 10"),
        (Level::TRACE, Some("s0010"), "frame in: 57 bytes"),
        (Level::INFO, Some("s0011"), "online after 850ms"),
    ];
    for (i, (level, session, text)) in lines.into_iter().enumerate() {
        ring.push(
            format!("12:00:{:02}", i * 3),
            level,
            session.map(String::from),
            "wasp::session",
            text,
        );
    }
    ring
}

pub fn settings() -> Settings {
    Settings::default()
}

pub fn mono() -> Settings {
    Settings {
        theme: Theme::mono(),
        ..Settings::default()
    }
}

/// A model of the sample fleet of `n` sessions at `now`, laid out for `w` x `h`.
pub fn fleet(n: usize, now: Instant, settings: Settings, w: u16, h: u16) -> Model {
    let mut model = Model::new(settings, ring());
    update(&mut model, Msg::Resize(w, h), now);
    update(&mut model, Msg::Statuses(sample_fleet(n, now)), now);
    model
}

/// One scripted step on a model.
pub enum Step<'a> {
    /// A message (`key('W')`, `code(KeyCode::Enter)`, `Msg::Tick`).
    Send(Msg),
    /// Text typed key by key.
    Type(&'a str),
    /// Select a session by id.
    Select(&'a str),
}

/// The sample fleet of `n` sessions at `now`, laid out for `w` x `h`, after `steps`.
pub fn fleet_after(
    n: usize,
    now: Instant,
    settings: Settings,
    (w, h): (u16, u16),
    steps: Vec<Step>,
) -> Model {
    let mut model = fleet(n, now, settings, w, h);
    for step in steps {
        match step {
            Step::Send(msg) => {
                update(&mut model, msg, now);
            }
            Step::Type(text) => {
                type_text(&mut model, text, now);
            }
            Step::Select(id) => model.select(id),
        }
    }
    model
}

pub fn draw(model: &Model, now: Instant) -> Terminal<TestBackend> {
    let area = model.viewport();
    let mut terminal = Terminal::new(TestBackend::new(area.width, area.height)).unwrap();
    terminal
        .draw(|f| wasp::ui::view::draw(f, model, now))
        .unwrap();
    terminal
}

pub fn key(c: char) -> Msg {
    let mods = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Msg::Key(KeyEvent::new(KeyCode::Char(c), mods))
}

pub fn code(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Types `text` key by key; returns every request produced.
pub fn type_text(model: &mut Model, text: &str, now: Instant) -> Vec<wasp::ui::Request> {
    text.chars()
        .flat_map(|c| update(model, key(c), now))
        .collect()
}

/// A session in `state` with a short timeline, for targeted tests.
pub fn session(id: &str, state: StateName, now: Instant) -> Status {
    let mut s = Status::new(id, format!("Line {id}"), now - Duration::from_secs(120));
    s.phase = wasp::ui::sample::phase_of(state, now);
    s.since = now - Duration::from_secs(30);
    s.timeline.push(TimelineEntry {
        at: s.since,
        state,
        cause: state.as_str().into(),
        code: None,
        detail: String::new(),
    });
    s
}

/// The fixed "now" of a test: a day ahead of the real clock, so every "some minutes ago" in
/// the sample fleet exists even on a machine that booted a minute ago (Instant counts from
/// boot on Linux), and snapshots come out the same everywhere.
pub fn t0() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Clusters the model's fleet over two nodes: even rows on `node-a` (this one), odd on
/// `node-b`, and the node list with their heartbeats.
pub fn cluster(model: &mut Model, now: Instant) {
    let mut statuses: Vec<Status> = model.statuses().cloned().collect();
    statuses.sort_by(|a, b| a.id.cmp(&b.id));
    let mut counts = [0usize; 2];
    for (i, status) in statuses.iter_mut().enumerate() {
        counts[i % 2] += 1;
        status.owner = Some(["node-a", "node-b"][i % 2].to_string());
    }
    let nodes = vec![
        wasp::ui::NodeLine {
            node: "node-a".into(),
            sessions: counts[0],
            heartbeat_age: Duration::from_millis(1_200),
            this: true,
        },
        wasp::ui::NodeLine {
            node: "node-b".into(),
            sessions: counts[1],
            heartbeat_age: Duration::from_secs(4),
            this: false,
        },
    ];
    update(model, Msg::Statuses(statuses), now);
    update(model, Msg::Pool(wasp::ui::PoolUpdate::Nodes(nodes)), now);
}
