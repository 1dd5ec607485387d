//! The console's update function: `update(&mut Model, Msg, now) -> Vec<Request>`. Pure (no
//! terminal, no clock, no channels): key and mouse events, status batches and ticks change the
//! model and yield the requests to send to the pool, so key sequences are tested without a
//! terminal.

use std::time::{Duration, Instant};

use crossterm::event::{KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::dialog::{LineKey, edit_line};
use super::filter::Filter;
use super::keymap::{Action, Key, Section};
use super::layout::{layout, visible_rows};
pub use super::link::{Order, PoolUpdate, Request};
use super::logs::LogLine;
use super::model::{Confirm, Mode, Model, Pane, Unreachable};
use super::{compose, moving, pair_code};
use crate::session::Command;
use crate::session::status::{StateName, Status};

/// How long a sent request blocks an identical one for the same session, unless a status
/// change answers it first.
const PENDING_FOR: Duration = Duration::from_secs(10);

/// Everything that can change the model.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// A batch of status snapshots from the pool (already coalesced by the loop).
    Statuses(Vec<Status>),
    /// Something else the pool said: the whole fleet, an outage, a refusal.
    Pool(PoolUpdate),
    /// Once a second: countdowns move, messages expire.
    Tick,
}

/// Applies one message; returns the requests for the pool.
pub fn update(model: &mut Model, msg: Msg, now: Instant) -> Vec<Request> {
    let requests = match msg {
        Msg::Key(key) if key.kind != KeyEventKind::Release => on_key(model, key, now),
        Msg::Key(_) => Vec::new(),
        Msg::Mouse(mouse) => {
            on_mouse(model, mouse);
            Vec::new()
        }
        Msg::Resize(w, h) => {
            model.viewport = Rect::new(0, 0, w, h);
            Vec::new()
        }
        Msg::Statuses(batch) | Msg::Pool(PoolUpdate::Changed(batch)) => {
            model.apply(batch);
            Vec::new()
        }
        Msg::Pool(PoolUpdate::Fleet(fleet)) => {
            model.replace_all(fleet);
            Vec::new()
        }
        Msg::Pool(PoolUpdate::Unreachable { since, why }) => {
            model.unreachable = Some(Unreachable { since, why });
            Vec::new()
        }
        Msg::Pool(PoolUpdate::Refused(text)) => {
            model.refuse(text, now);
            Vec::new()
        }
        Msg::Pool(PoolUpdate::Answered(text)) => {
            model.say(text, now);
            Vec::new()
        }
        Msg::Pool(PoolUpdate::PairCode {
            session,
            code,
            expires_at,
        }) => {
            pair_code::shown(model, session, code, expires_at);
            Vec::new()
        }
        Msg::Pool(PoolUpdate::Nodes(nodes)) => {
            model.nodes = nodes;
            Vec::new()
        }
        Msg::Pool(PoolUpdate::Messages(lines)) => {
            model.messages.merge(lines);
            Vec::new()
        }
        Msg::Tick => {
            if model.flash.as_ref().is_some_and(|f| f.until <= now) {
                model.flash = None;
            }
            model
                .pending
                .retain(|_, at| now.duration_since(*at) < PENDING_FOR);
            Vec::new()
        }
    };
    keep_selection_visible(model);
    model.refresh_qr();
    model.want_messages();
    requests
}

fn on_key(model: &mut Model, key: KeyEvent, now: Instant) -> Vec<Request> {
    let key = Key::from_event(&key);
    let keymap = &model.settings.keymap;
    let section = match model.mode {
        Mode::Normal => model.focus.section(),
        _ => Section::Dialog,
    };
    let action = keymap.action(section, key);
    match &mut model.mode {
        Mode::Normal => match action {
            Some(action) => on_action(model, action, now),
            None => Vec::new(),
        },
        Mode::Filter { .. } => {
            on_filter_key(model, key, action);
            Vec::new()
        }
        Mode::Help { scroll } => {
            match action {
                Some(Action::Up) => *scroll = scroll.saturating_sub(1),
                Some(Action::Down) => *scroll = scroll.saturating_add(1),
                Some(Action::PageUp) => *scroll = scroll.saturating_sub(10),
                Some(Action::PageDown) => *scroll = scroll.saturating_add(10),
                Some(Action::Cancel | Action::Confirm | Action::Help | Action::Quit) => {
                    model.mode = Mode::Normal;
                }
                _ => {}
            }
            Vec::new()
        }
        Mode::Qr => {
            if matches!(
                action,
                Some(Action::Cancel | Action::Confirm | Action::Quit)
            ) {
                model.mode = Mode::Normal;
            }
            Vec::new()
        }
        Mode::Confirm(_) => on_confirm_key(model, key, action, now),
        Mode::Compose(_) => compose::on_key(model, key, action, now),
    }
}

fn on_filter_key(model: &mut Model, key: Key, action: Option<Action>) {
    let Mode::Filter {
        input,
        before,
        error,
    } = &mut model.mode
    else {
        return;
    };
    match edit_line(input, key, action) {
        LineKey::Edited => {}
        LineKey::Action(action) => match action {
            Action::Cancel => {
                let before = std::mem::take(before);
                model.mode = Mode::Normal;
                model.filter = Filter::parse(&before).unwrap_or_default();
                model.refresh_rows();
                return;
            }
            Action::Confirm => {
                if error.is_none() {
                    model.mode = Mode::Normal;
                }
                return;
            }
            _ => return,
        },
        LineKey::Nothing => return,
    }
    match Filter::parse(input) {
        Ok(filter) => {
            *error = None;
            model.filter = filter;
            model.refresh_rows();
        }
        Err(e) => *error = Some(e.to_string()),
    }
}

fn on_confirm_key(
    model: &mut Model,
    key: Key,
    action: Option<Action>,
    now: Instant,
) -> Vec<Request> {
    let Mode::Confirm(confirm) = &mut model.mode else {
        return Vec::new();
    };
    match confirm {
        Confirm::Wipe {
            ids,
            typed: word,
            backup,
        } => {
            let LineKey::Action(action) = edit_line(word, key, action) else {
                return Vec::new();
            };
            match action {
                Action::Cancel => {
                    model.mode = Mode::Normal;
                    model.say("wipe cancelled", now);
                }
                Action::ToggleBackup => *backup = !*backup,
                Action::Confirm => {
                    let expected = Confirm::wipe_word(ids);
                    if *word == expected {
                        let ids = std::mem::take(ids);
                        let command = Command::WipeCredentials { backup: *backup };
                        model.mode = Mode::Normal;
                        model.marks.clear();
                        return send(model, &ids, |_| command, now);
                    }
                    let cancel = model
                        .settings
                        .keymap
                        .control_hint(Section::Dialog, Action::Cancel);
                    model.refuse(format!("type {expected} exactly to wipe, or {cancel}"), now);
                }
                _ => {}
            }
        }
        Confirm::Move { .. } => return moving::on_key(model, key, action, now),
        Confirm::PairPhone { .. } | Confirm::PairCode { .. } => {
            return pair_code::on_key(model, key, action, now);
        }
        Confirm::Bulk { action: bulk, ids } => match action {
            Some(Action::Confirm) => {
                let ids = std::mem::take(ids);
                let bulk = *bulk;
                model.mode = Mode::Normal;
                model.marks.clear();
                return send(model, &ids, |s| resolve(bulk, s), now);
            }
            Some(Action::Cancel) => {
                model.mode = Mode::Normal;
                model.say("cancelled; the rows stay marked", now);
            }
            _ => {}
        },
    }
    Vec::new()
}

fn on_action(model: &mut Model, action: Action, now: Instant) -> Vec<Request> {
    match action {
        Action::Quit => model.quit = true,
        Action::Detach => model.detach = true,
        Action::Help => model.mode = Mode::Help { scroll: 0 },
        Action::FocusNext | Action::ToggleLogs => {
            model.focus = match model.focus {
                Pane::Table => Pane::Logs,
                Pane::Logs => Pane::Table,
            };
        }
        Action::Up => move_by(model, -1),
        Action::Down => move_by(model, 1),
        Action::PageUp => move_by(model, -(page(model) as isize)),
        Action::PageDown => move_by(model, page(model) as isize),
        Action::Top => move_by(model, isize::MIN / 2),
        Action::Bottom => move_by(model, isize::MAX / 2),
        Action::Mark => {
            if let Some(id) = model.selected.clone() {
                if !model.marks.remove(&id) {
                    model.marks.insert(id);
                }
                move_by(model, 1);
            }
        }
        Action::MarkAll => {
            let rows = model.rows.clone();
            model.marks.extend(rows);
            model.say(format!("{} rows marked", model.marks.len()), now);
        }
        Action::ClearMarks => model.marks.clear(),
        Action::Filter => {
            let text = model.filter.text.clone();
            model.mode = Mode::Filter {
                input: text.clone(),
                before: text,
                error: None,
            };
        }
        Action::ClearFilter => {
            if !model.filter.is_empty() {
                model.filter = Filter::default();
                model.refresh_rows();
            }
        }
        Action::Sort => {
            model.sort = model.sort.next();
            model.refresh_rows();
        }
        Action::SortReverse => {
            model.sort_desc = !model.sort_desc;
            model.refresh_rows();
        }
        Action::ShowQr => {
            let pairing = model
                .selected_status()
                .is_some_and(|s| s.state() == StateName::Pairing && s.qr().is_some());
            if pairing {
                model.mode = Mode::Qr;
            } else {
                let pair = model
                    .settings
                    .keymap
                    .hint(Section::Table, Action::Run(Command::Pair));
                model.say(
                    format!("no QR: the selected session is not pairing ({pair} starts pairing)"),
                    now,
                );
            }
        }
        Action::Follow => {
            model.logs.follow = !model.logs.follow;
            if model.logs.follow {
                model.logs.anchor = None;
            } else {
                model.logs.anchor = kept_lines(model).last().copied();
            }
        }
        Action::Freeze => {
            if model.logs.frozen.take().is_none() {
                model.logs.frozen = Some(model.ring.snapshot());
                let freeze = model.settings.keymap.hint(Section::Logs, Action::Freeze);
                model.say(format!("logs frozen ({freeze} to thaw)"), now);
            }
        }
        Action::LevelFilter => {
            use tracing::Level;
            model.logs.min_level = match model.logs.min_level {
                None => Some(Level::DEBUG),
                Some(Level::DEBUG) => Some(Level::INFO),
                Some(Level::INFO) => Some(Level::WARN),
                Some(Level::WARN) => Some(Level::ERROR),
                Some(_) => None,
            };
        }
        Action::SessionFilter => {
            model.logs.session = match model.logs.session {
                Some(_) => None,
                None => model.selected.clone(),
            };
        }
        Action::Run(_) | Action::StartStop => return operator(model, action, now),
        Action::Move => moving::ask(model, now),
        Action::PairCode => pair_code::ask(model, now),
        Action::Message => compose::open(model, now),
        // Dialog keys mean nothing outside a dialog.
        Action::Confirm | Action::Cancel | Action::ToggleBackup | Action::ClearInput => {}
    }
    Vec::new()
}

/// The command an operator action means for one session: start/stop starts a stopped or
/// failed session and stops any other.
fn resolve(action: Action, status: Option<&Status>) -> Command {
    match (action, status.map(|s| s.state())) {
        (Action::Run(command), _) => command,
        (_, Some(StateName::Stopped | StateName::Failed)) => Command::Connect,
        _ => Command::Disconnect,
    }
}

/// An operator action on the marked rows (confirmed first, with their count) or on the
/// selected row. A destructive command asks for the session id to be typed.
fn operator(model: &mut Model, action: Action, now: Instant) -> Vec<Request> {
    if model.settings.read_only {
        model.refuse(
            format!("read-only mode: {} is disabled", action.verb()),
            now,
        );
        return Vec::new();
    }
    let marked: Vec<String> = model
        .marks
        .iter()
        .filter(|id| model.sessions.contains_key(*id))
        .cloned()
        .collect();
    let ids = if marked.is_empty() {
        match model.selected.clone() {
            Some(id) => vec![id],
            None => {
                model.refuse("no session selected", now);
                return Vec::new();
            }
        }
    } else {
        marked
    };
    if let Action::Run(Command::WipeCredentials { backup }) = action {
        model.mode = Mode::Confirm(Confirm::Wipe {
            ids,
            typed: String::new(),
            backup,
        });
        return Vec::new();
    }
    if !model.marks.is_empty() {
        model.mode = Mode::Confirm(Confirm::Bulk { action, ids });
        return Vec::new();
    }
    send(model, &ids, |s| resolve(action, s), now)
}

/// Builds one request per session, skipping those with the same request still pending.
fn send(
    model: &mut Model,
    ids: &[String],
    command_for: impl Fn(Option<&Status>) -> Command,
    now: Instant,
) -> Vec<Request> {
    let mut requests = Vec::with_capacity(ids.len());
    let mut skipped = 0usize;
    for id in ids {
        let command = command_for(model.sessions.get(id));
        let key = (id.clone(), command);
        if model
            .pending
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < PENDING_FOR)
        {
            skipped += 1;
            continue;
        }
        model.pending.insert(key, now);
        requests.push(Request::run(id.clone(), command));
    }
    let verb = requests
        .first()
        .and_then(Request::command)
        .map_or("request", |c| c.name())
        .to_string();
    let text = match (requests.len(), skipped) {
        (0, _) => format!(
            "already requested for {}; waiting for the pool",
            ids.join(", ")
        ),
        (1, 0) => format!("{verb} sent for {}", requests[0].session),
        (n, 0) => format!("{verb} sent for {n} sessions (the pool staggers them)"),
        (n, k) => format!("{verb} sent for {n} sessions; {k} already pending"),
    };
    if requests.is_empty() {
        model.refuse(text, now);
    } else {
        model.say(text, now);
    }
    requests
}

/// Table rows or log lines in one page of the focused pane.
fn page(model: &Model) -> usize {
    let areas = layout(model.viewport, model);
    match model.focus {
        Pane::Table => visible_rows(areas.table),
        Pane::Logs => usize::from(areas.logs.height.saturating_sub(2)).max(1),
    }
}

fn move_by(model: &mut Model, delta: isize) {
    match model.focus {
        Pane::Table => move_selection(model, delta),
        Pane::Logs => scroll_logs(model, delta),
    }
}

fn move_selection(model: &mut Model, delta: isize) {
    if model.rows.is_empty() {
        return;
    }
    let last = model.rows.len() as isize - 1;
    let from = model.selected_index().map_or(0, |i| i as isize);
    let to = from.saturating_add(delta).clamp(0, last) as usize;
    model.selected = Some(model.rows[to].clone());
}

fn keep_selection_visible(model: &mut Model) {
    let rows = visible_rows(layout(model.viewport, model).table).max(1);
    let max_offset = model.rows.len().saturating_sub(rows);
    if let Some(i) = model.selected_index() {
        if i < model.offset {
            model.offset = i;
        } else if i >= model.offset + rows {
            model.offset = i + 1 - rows;
        }
    }
    model.offset = model.offset.min(max_offset);
}

/// The `seq`s of the lines the logs pane can show (frozen copy or live ring, filtered).
fn kept_lines(model: &Model) -> Vec<u64> {
    let keep = |l: &LogLine| model.logs.keeps(l);
    match &model.logs.frozen {
        Some(lines) => lines.iter().filter(|l| keep(l)).map(|l| l.seq).collect(),
        None => model
            .ring
            .tail(usize::MAX, None, keep)
            .into_iter()
            .map(|l| l.seq)
            .collect(),
    }
}

/// Moves the logs pane by `delta` lines (negative: older). Reaching the newest line of a live
/// pane resumes following.
fn scroll_logs(model: &mut Model, delta: isize) {
    let seqs = kept_lines(model);
    let Some(newest) = seqs.len().checked_sub(1) else {
        return;
    };
    let height = usize::from(layout(model.viewport, model).logs.height.saturating_sub(2));
    let current = match (model.logs.follow, model.logs.anchor) {
        (false, Some(anchor)) => seqs.iter().rposition(|s| *s <= anchor).unwrap_or(0),
        _ => newest,
    };
    let lowest = height.saturating_sub(1).min(newest);
    let target = (current as isize)
        .saturating_add(delta)
        .clamp(lowest as isize, newest as isize) as usize;
    if target == newest && model.logs.frozen.is_none() && delta > 0 {
        model.logs.follow = true;
        model.logs.anchor = None;
    } else {
        model.logs.follow = false;
        model.logs.anchor = Some(seqs[target]);
    }
}

fn on_mouse(model: &mut Model, mouse: MouseEvent) {
    if model.mode != Mode::Normal {
        return;
    }
    let areas = layout(model.viewport, model);
    let at = Position::new(mouse.column, mouse.row);
    let in_table = areas.table.contains(at);
    let in_logs = areas.logs.contains(at);
    match mouse.kind {
        MouseEventKind::Down(MouseButton::Left) if in_table => {
            model.focus = Pane::Table;
            let first_row = areas.table.y + 2;
            if mouse.row >= first_row {
                let index = model.offset + usize::from(mouse.row - first_row);
                if let Some(id) = model.rows.get(index).cloned() {
                    model.selected = Some(id);
                }
            }
        }
        MouseEventKind::Down(MouseButton::Left) if in_logs => model.focus = Pane::Logs,
        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
            let delta = if mouse.kind == MouseEventKind::ScrollUp {
                -3
            } else {
                3
            };
            if in_logs {
                scroll_logs(model, delta);
            } else if in_table {
                move_selection(model, delta);
            }
        }
        _ => {}
    }
}
