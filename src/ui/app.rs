//! The console's event loop and terminal handling. The loop waits for the first of: terminal
//! input, a status batch, the 1 s tick, new log lines, room in the request channel; then drains
//! everything else already waiting (keys first) and draws once. Key presses draw at once;
//! status and log churn draws at most every `MIN_FRAME_GAP`, so a storm costs one frame.
//! Terminal setup is undone by a guard and by the panic hook; SIGTERM quits, SIGHUP (or a
//! terminal that can no longer be read or written) ends the run as `Exit::LostTerminal`, after
//! which nothing is written to the terminal again (`TerminalGuard::abandon`).

use std::collections::VecDeque;
use std::io::{self, Stdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::keymap::Keymap;
use super::link::{Exit, Order, PoolLink, PoolUpdate};
use super::logs::LogRing;
use super::model::{Model, Settings};
use super::theme::Theme;
use super::update::{Msg, Request, update};
use super::{UiError, UiOptions, view};

/// Least time between two frames drawn for status or log churn (input draws at once).
pub const MIN_FRAME_GAP: Duration = Duration::from_millis(50);
/// Countdowns move once a second.
pub const TICK: Duration = Duration::from_secs(1);
/// Most messages handled before a frame is forced out, so endless churn cannot starve drawing.
const DRAIN_LIMIT: usize = 10_000;

/// Whether our terminal setup is in force (so restoring never writes escape codes to a
/// stdout that is not a TUI, e.g. headless JSON logs).
static TERMINAL_ACTIVE: AtomicBool = AtomicBool::new(false);

/// Counters of one run of the loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    pub frames: u64,
    pub status_batches: u64,
    pub statuses: u64,
    /// Operator requests sent (the reads of a session's kept messages are not counted).
    pub requests_sent: u64,
}

impl LoopStats {
    /// Counts an operator request (reads of kept messages are not one).
    fn count(&mut self, request: &Request) {
        if request.order != Order::Recent {
            self.requests_sent += 1;
        }
    }
}

/// Raw mode, alternate screen and (optionally) mouse capture for as long as it lives.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    pub fn enter(mouse: bool) -> Result<TerminalGuard, UiError> {
        enable_raw_mode().map_err(UiError::TerminalSetup)?;
        TERMINAL_ACTIVE.store(true, Ordering::SeqCst);
        let setup = || -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
            let mut out = io::stdout();
            execute!(out, EnterAlternateScreen)?;
            if mouse {
                execute!(out, EnableMouseCapture)?;
            }
            let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
            terminal.hide_cursor()?;
            terminal.clear()?;
            Ok(terminal)
        };
        match setup() {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                let _ = restore_terminal();
                Err(UiError::TerminalSetup(e))
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Terminal<CrosstermBackend<Stdout>> {
        &mut self.terminal
    }

    /// Forgets the terminal without writing to it (it hung up): nothing is restored, now or
    /// by the panic hook. Stdin becomes a pipe nobody writes to: crossterm's input thread,
    /// still inside its read loop, would otherwise spin a core on the hung-up tty's EOF.
    pub fn abandon(self) {
        TERMINAL_ACTIVE.store(false, Ordering::SeqCst);
        std::mem::forget(self);
        quiet_stdin();
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = restore_terminal();
    }
}

/// Puts the read end of a pipe on stdin and keeps its write end open for the life of the
/// process, so every later read of stdin waits instead of seeing EOF (a detached console: its
/// terminal may hang up later).
pub fn quiet_stdin() {
    static QUIET: std::sync::OnceLock<std::io::PipeWriter> = std::sync::OnceLock::new();
    match std::io::pipe() {
        Ok((reader, writer)) => {
            if let Err(e) = rustix::stdio::dup2_stdin(&reader) {
                tracing::warn!(error = %e, "could not replace the hung-up terminal on stdin");
            }
            let _ = QUIET.set(writer);
        }
        Err(e) => tracing::warn!(error = %e, "could not replace the hung-up terminal on stdin"),
    }
}

/// Leaves raw mode, mouse capture and the alternate screen and shows the cursor, if our setup
/// is in force. Safe to call more than once.
pub fn restore_terminal() -> io::Result<()> {
    if !TERMINAL_ACTIVE.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let raw = disable_raw_mode();
    let screen = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    raw.and(screen)
}

/// Restores the terminal before the panic message is printed, so it is readable.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = restore_terminal();
        previous(info);
    }));
}

/// Whether the locale says the terminal speaks UTF-8 (`LC_ALL`, `LC_CTYPE`, `LANG`, first set
/// wins). Without it the console draws ASCII.
pub fn unicode_supported() -> bool {
    if cfg!(windows) {
        return true;
    }
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

/// Runs the console on `terminal` until the operator quits or detaches, `cancel` fires, SIGTERM
/// or SIGHUP arrives, or the terminal fails. Pool updates come in on `link.updates`; operator
/// requests go out on `link.requests` (bounded: requests wait in order in the loop while it is
/// full, input keeps working).
pub async fn run<B>(
    terminal: &mut Terminal<B>,
    link: PoolLink,
    log_ring: LogRing,
    options: UiOptions,
    cancel: CancellationToken,
) -> Result<Exit, UiError>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
{
    let theme = Theme::resolve(options.theme.as_deref(), Theme::no_color_env())?;
    let keymap = Keymap::load(options.keymap_path.as_deref())?;
    let settings = Settings {
        theme,
        keymap,
        ascii: options.ascii,
        read_only: options.read_only,
    };
    let mut model = Model::new(settings, log_ring);
    let stop = cancel.child_token();
    let hung_up = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone(), hung_up.clone())?;
    let result = run_loop(
        terminal,
        &mut model,
        EventStream::new(),
        link.updates,
        link.requests,
        stop.clone(),
    )
    .await;
    // Ends the signal watcher.
    stop.cancel();
    match result {
        Ok(_) if hung_up.load(Ordering::SeqCst) => Ok(Exit::LostTerminal),
        Ok(_) if model.should_detach() => Ok(Exit::Detach),
        Ok(_) => Ok(Exit::Quit),
        // A terminal that cannot be read or written any more is gone (the link dropped).
        Err(UiError::Input(_) | UiError::Draw(_)) => Ok(Exit::LostTerminal),
        Err(e) => Err(e),
    }
}

/// SIGTERM ends the run; SIGHUP ends it too and sets `hung_up`.
#[cfg(unix)]
fn watch_signals(stop: CancellationToken, hung_up: Arc<AtomicBool>) -> Result<(), UiError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(UiError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(UiError::Signal)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => stop.cancel(),
            _ = hup.recv() => {
                hung_up.store(true, Ordering::SeqCst);
                stop.cancel();
            }
            _ = stop.cancelled() => {}
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn watch_signals(_stop: CancellationToken, _hung_up: Arc<AtomicBool>) -> Result<(), UiError> {
    Ok(())
}

fn draw<B>(terminal: &mut Terminal<B>, model: &Model, stats: &mut LoopStats) -> Result<(), UiError>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
{
    let now = tokio::time::Instant::now().into_std();
    terminal
        .draw(|frame| view::draw(frame, model, now))
        .map_err(|e| UiError::Draw(Box::new(e)))?;
    stats.frames += 1;
    Ok(())
}

/// What one handled message asks of the next frame.
#[derive(Default)]
struct Dirty {
    /// Input or a tick: draw now.
    urgent: bool,
    /// Churn: draw, at most every `MIN_FRAME_GAP`.
    churn: bool,
}

/// The loop itself, over any terminal backend and any input stream (tests pass a
/// `TestBackend` and a stream of made-up events).
pub async fn run_loop<B, S>(
    terminal: &mut Terminal<B>,
    model: &mut Model,
    mut events: S,
    mut pool_updates: mpsc::Receiver<PoolUpdate>,
    request_tx: mpsc::Sender<Request>,
    cancel: CancellationToken,
) -> Result<LoopStats, UiError>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = io::Result<Event>> + Unpin,
{
    let mut stats = LoopStats::default();
    let mut outbox: VecDeque<Request> = VecDeque::new();
    let mut events_open = true;
    let mut pool_open = true;
    let ring = model.ring().clone();
    let now = || tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(now() + TICK, TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let size = terminal.size().map_err(|e| UiError::Draw(Box::new(e)))?;
    update(
        model,
        Msg::Resize(size.width, size.height),
        now().into_std(),
    );
    draw(terminal, model, &mut stats)?;
    let mut last_draw = now();
    let mut deferred: Option<tokio::time::Instant> = None;

    loop {
        let mut dirty = Dirty::default();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            event = events.next(), if events_open => {
                on_event(model, event, &mut events_open, &mut outbox, &mut dirty)?;
            }
            batch = pool_updates.recv(), if pool_open => {
                on_pool_update(model, batch, &mut pool_open, &mut stats, &mut dirty);
            }
            _ = tick.tick() => {
                update(model, Msg::Tick, now().into_std());
                dirty.urgent = true;
            }
            permit = request_tx.reserve(), if !outbox.is_empty() => match permit {
                Ok(permit) => {
                    if let Some(request) = outbox.pop_front() {
                        stats.count(&request);
                        permit.send(request);
                    }
                }
                Err(_) => pool_gone(model, &mut outbox),
            },
            _ = ring.changed() => dirty.churn = true,
            _ = sleep_until(deferred), if deferred.is_some() => dirty.urgent = true,
        }
        // Everything else already waiting, keys first, then one frame for all of it.
        for _ in 0..DRAIN_LIMIT {
            tokio::select! {
                biased;
                event = events.next(), if events_open => {
                    on_event(model, event, &mut events_open, &mut outbox, &mut dirty)?;
                }
                batch = pool_updates.recv(), if pool_open => {
                    on_pool_update(model, batch, &mut pool_open, &mut stats, &mut dirty);
                }
                _ = std::future::ready(()) => break,
            }
        }
        // The selected session's kept messages, read once (after the requests already queued).
        outbox.extend(model.take_loads().into_iter().map(|session| Request {
            session,
            order: Order::Recent,
        }));
        flush(model, &request_tx, &mut outbox, &mut stats);
        if model.should_quit() || model.should_detach() {
            break;
        }
        if dirty.urgent || (dirty.churn && now() >= last_draw + MIN_FRAME_GAP) {
            draw(terminal, model, &mut stats)?;
            last_draw = now();
            deferred = None;
        } else if dirty.churn && deferred.is_none() {
            deferred = Some(last_draw + MIN_FRAME_GAP);
        }
    }
    flush(model, &request_tx, &mut outbox, &mut stats);
    if !outbox.is_empty() {
        tracing::warn!(
            unsent = outbox.len(),
            "console closed with operator requests not yet sent"
        );
    }
    Ok(stats)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

fn on_event(
    model: &mut Model,
    event: Option<io::Result<Event>>,
    open: &mut bool,
    outbox: &mut VecDeque<Request>,
    dirty: &mut Dirty,
) -> Result<(), UiError> {
    let now = tokio::time::Instant::now().into_std();
    let msg = match event {
        None => {
            *open = false;
            return Ok(());
        }
        Some(Err(e)) => return Err(UiError::Input(e)),
        Some(Ok(Event::Key(key))) => Msg::Key(key),
        Some(Ok(Event::Mouse(mouse))) => Msg::Mouse(mouse),
        Some(Ok(Event::Resize(w, h))) => Msg::Resize(w, h),
        Some(Ok(_)) => return Ok(()),
    };
    outbox.extend(update(model, msg, now));
    dirty.urgent = true;
    Ok(())
}

fn on_pool_update(
    model: &mut Model,
    batch: Option<PoolUpdate>,
    open: &mut bool,
    stats: &mut LoopStats,
    dirty: &mut Dirty,
) {
    let now = tokio::time::Instant::now().into_std();
    match batch {
        Some(PoolUpdate::Changed(batch)) if batch.is_empty() => {}
        Some(update_msg) => {
            if let PoolUpdate::Changed(batch) | PoolUpdate::Fleet(batch) = &update_msg {
                stats.status_batches += 1;
                stats.statuses += batch.len() as u64;
            }
            update(model, Msg::Pool(update_msg), now);
            dirty.churn = true;
        }
        None => {
            *open = false;
            model.refuse("the pool stopped publishing statuses", now);
            dirty.urgent = true;
        }
    }
}

/// Sends what the channel takes now; the rest waits for the `reserve` arm.
fn flush(
    model: &mut Model,
    tx: &mpsc::Sender<Request>,
    outbox: &mut VecDeque<Request>,
    stats: &mut LoopStats,
) {
    while let Some(request) = outbox.pop_front() {
        let read = request.order == Order::Recent;
        match tx.try_send(request) {
            Ok(()) => stats.requests_sent += u64::from(!read),
            Err(TrySendError::Full(request)) => {
                outbox.push_front(request);
                return;
            }
            Err(TrySendError::Closed(request)) => {
                outbox.push_front(request);
                pool_gone(model, outbox);
                return;
            }
        }
    }
}

fn pool_gone(model: &mut Model, outbox: &mut VecDeque<Request>) {
    let lost = outbox.len();
    outbox.clear();
    model.refuse(
        format!("the pool is not taking requests; {lost} not sent"),
        tokio::time::Instant::now().into_std(),
    );
}
