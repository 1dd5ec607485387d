//! The console's event loop on a `TestBackend` with made-up input: the channels a test feeds
//! and a run bounded by a minute of virtual time (tests start the clock paused).

use std::future::Future;
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasp::ui::{LogRing, LoopStats, Model, PoolUpdate, Request, Settings, run_loop};

/// Sends terminal events into the loop.
pub type Events = UnboundedSender<std::io::Result<Event>>;

/// What the test holds while the loop runs: input, statuses, the pool's end of the
/// requests, and the cancel token.
pub struct Hands {
    pub events: Events,
    pub statuses: mpsc::Sender<PoolUpdate>,
    pub requests: mpsc::Receiver<Request>,
    pub cancel: CancellationToken,
}

/// What the loop runs on: a terminal, a model and the loop's ends of the channels.
pub struct Rig {
    pub terminal: Terminal<TestBackend>,
    pub model: Model,
    event_rx: Option<UnboundedReceiver<std::io::Result<Event>>>,
    status_rx: Option<mpsc::Receiver<PoolUpdate>>,
    request_tx: Option<mpsc::Sender<Request>>,
    cancel: CancellationToken,
}

/// A `w` x `h` rig with default settings; the channels hold `statuses` batches and
/// `requests` requests.
pub fn rig(w: u16, h: u16, statuses: usize, requests: usize) -> (Rig, Hands) {
    let (events, event_rx) = unbounded();
    let (status_tx, status_rx) = mpsc::channel(statuses);
    let (request_tx, request_rx) = mpsc::channel(requests);
    let cancel = CancellationToken::new();
    let rig = Rig {
        terminal: Terminal::new(TestBackend::new(w, h)).unwrap(),
        model: Model::new(Settings::default(), LogRing::new(10)),
        event_rx: Some(event_rx),
        status_rx: Some(status_rx),
        request_tx: Some(request_tx),
        cancel: cancel.clone(),
    };
    let hands = Hands {
        events,
        statuses: status_tx,
        requests: request_rx,
        cancel,
    };
    (rig, hands)
}

impl Rig {
    /// Runs the loop (once per rig) beside `driver`, until both end; fails the test rather
    /// than hanging it when that takes more than a minute of virtual time.
    pub async fn run<T>(&mut self, driver: impl Future<Output = T>) -> (LoopStats, T) {
        let run = run_loop(
            &mut self.terminal,
            &mut self.model,
            self.event_rx.take().expect("the rig runs once"),
            self.status_rx.take().expect("the rig runs once"),
            self.request_tx.take().expect("the rig runs once"),
            self.cancel.clone(),
        );
        let (stats, value) =
            tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(run, driver) })
                .await
                .expect("the loop finished within a minute of virtual time");
        (stats.unwrap(), value)
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        self.terminal.backend().to_string()
    }
}

/// Cancels the loop after `after` of virtual time.
pub async fn stop_after(cancel: CancellationToken, after: Duration) {
    tokio::time::sleep(after).await;
    cancel.cancel();
}

pub fn press(events: &Events, code: KeyCode) {
    let key = KeyEvent::new(code, KeyModifiers::NONE);
    events.unbounded_send(Ok(Event::Key(key))).unwrap();
}

pub fn type_keys(events: &Events, text: &str) {
    for c in text.chars() {
        press(events, KeyCode::Char(c));
    }
}

/// The paused tokio clock as a std `Instant` (what the loop reads).
pub fn clock() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
