//! The console's model: every session's latest `Status` by id, the visible rows (filtered and
//! sorted), selection, marks, the open dialog, the logs pane's view state, and settings. Only
//! `update` mutates it; views read it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ratatui::layout::Rect;

pub use super::compose::{Compose, Field};
use super::filter::Filter;
use super::keymap::{Action, Keymap, Section};
use super::logs::{LogLine, LogRing};
use super::messages::Recent;
use super::qr::QrMatrix;
use super::theme::Theme;
use crate::session::Command;
use crate::session::status::{StateName, Status};

/// What the model is built with (fixed for a run).
#[derive(Debug, Clone)]
pub struct Settings {
    pub theme: Theme,
    pub keymap: Keymap,
    pub ascii: bool,
    pub read_only: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            theme: Theme::dark(),
            keymap: Keymap::defaults(),
            ascii: false,
            read_only: false,
        }
    }
}

/// One live node of the cluster as the header lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLine {
    pub node: String,
    /// Sessions it holds, by its last heartbeat.
    pub sessions: usize,
    /// How old its heartbeat was when the list was read.
    pub heartbeat_age: Duration,
    /// The node this console runs in (or is attached to).
    pub this: bool,
}

/// The pane that has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Table,
    Logs,
}

impl Pane {
    pub fn section(self) -> Section {
        match self {
            Pane::Table => Section::Table,
            Pane::Logs => Section::Logs,
        }
    }
}

/// The dialog or overlay in front of the panes, if any.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    /// Typing a filter (applied as typed); `before` is restored on Esc; `error` says why the
    /// text typed so far is not a filter (the last good one stays applied).
    Filter {
        input: String,
        before: String,
        error: Option<String>,
    },
    Help {
        scroll: u16,
    },
    Confirm(Confirm),
    /// The full-screen QR of the selected session.
    Qr,
    /// A message being written (`m`).
    Compose(Compose),
}

/// A destructive or bulk action waiting for the operator's word.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirm {
    /// Wipe credentials: the operator must type the session id (or, for several marked
    /// sessions, their count). `backup` (Tab toggles) takes one last backup first.
    Wipe {
        ids: Vec<String>,
        typed: String,
        backup: bool,
    },
    /// Any other operator action on marked rows (a command, or start/stop resolved per
    /// session when sent): shows the count, the confirm key sends.
    Bulk { action: Action, ids: Vec<String> },
    /// Clustered: move the session to the node whose name is typed.
    Move { id: String, typed: String },
    /// Pairing by phone number: the number being typed (`ui/pair_code.rs`).
    PairPhone { id: String, typed: String },
    /// Pairing by phone number: the code to enter on the phone, until it expires.
    PairCode {
        id: String,
        code: crate::wa::pair_code::LinkCode,
        expires_at: Instant,
    },
}

impl Confirm {
    /// What must be typed to confirm a wipe.
    pub fn wipe_word(ids: &[String]) -> String {
        match ids {
            [one] => one.clone(),
            many => many.len().to_string(),
        }
    }
}

/// Columns the table can be sorted by (`s` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Trouble first: failed, conflict, logged out, backoff, cooldown ... online last.
    State,
    Id,
    Label,
    Uptime,
    Conflicts,
    Attempt,
    /// Most recent event first.
    LastEvent,
}

impl SortKey {
    pub const ALL: [SortKey; 7] = [
        SortKey::State,
        SortKey::Id,
        SortKey::Label,
        SortKey::Uptime,
        SortKey::Conflicts,
        SortKey::Attempt,
        SortKey::LastEvent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::State => "state",
            SortKey::Id => "id",
            SortKey::Label => "label",
            SortKey::Uptime => "uptime",
            SortKey::Conflicts => "conflicts",
            SortKey::Attempt => "attempt",
            SortKey::LastEvent => "last event",
        }
    }

    pub fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }
}

/// How much trouble a state is in; lower sorts first.
pub fn severity(state: StateName) -> u8 {
    match state {
        StateName::Failed => 0,
        StateName::Conflict => 1,
        StateName::LoggedOut => 2,
        StateName::Backoff => 3,
        StateName::Cooldown => 4,
        StateName::Pairing => 5,
        StateName::Connecting => 6,
        StateName::Handshaking => 7,
        StateName::Stopped => 8,
        StateName::Online => 9,
    }
}

/// The logs pane's view state.
#[derive(Debug, Clone, PartialEq)]
pub struct LogsView {
    /// Keep the newest line at the bottom.
    pub follow: bool,
    /// When not following: the newest line shown (a `seq`).
    pub anchor: Option<u64>,
    /// Lines kept when the pane was frozen (new lines are not shown until thawed).
    pub frozen: Option<Vec<LogLine>>,
    /// Least severe level shown; `None` shows every level.
    pub min_level: Option<tracing::Level>,
    /// Only this session's lines.
    pub session: Option<String>,
}

impl LogsView {
    pub fn keeps(&self, line: &LogLine) -> bool {
        self.min_level.is_none_or(|min| line.level <= min)
            && self
                .session
                .as_ref()
                .is_none_or(|s| line.session.as_ref() == Some(s))
    }
}

/// A short message in the footer (an action's outcome, a refusal).
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub text: String,
    pub error: bool,
    pub until: Instant,
}

/// Fleet figures for the header, derived from the statuses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetStats {
    pub total: usize,
    /// Sessions per state, in `StateName::ALL` order.
    pub counts: [usize; 10],
    /// Transitions into `connecting` over the last minute, fleet-wide.
    pub connects_per_min: usize,
    /// Sum of every session's conflicts over the last hour.
    pub conflicts_per_hour: u64,
    /// Mean of the sessions' uptime shares.
    pub uptime_pct: f64,
}

impl FleetStats {
    pub fn compute<'a>(statuses: impl Iterator<Item = &'a Status>, now: Instant) -> FleetStats {
        let mut stats = FleetStats::default();
        let mut uptime = 0.0;
        let minute_ago = now.checked_sub(Duration::from_secs(60));
        for s in statuses {
            stats.total += 1;
            if let Some(i) = StateName::ALL.iter().position(|x| *x == s.state()) {
                stats.counts[i] += 1;
            }
            stats.conflicts_per_hour += u64::from(s.conflicts_1h);
            uptime += s.uptime_now(now);
            stats.connects_per_min += s
                .timeline
                .iter()
                .rev()
                .take_while(|e| minute_ago.is_none_or(|m| e.at > m))
                .filter(|e| e.state == StateName::Connecting)
                .count();
        }
        if stats.total > 0 {
            stats.uptime_pct = uptime / stats.total as f64;
        }
        stats
    }

    pub fn count(&self, state: StateName) -> usize {
        StateName::ALL
            .iter()
            .position(|x| *x == state)
            .map_or(0, |i| self.counts[i])
    }
}

/// The encoded QR of the selected pairing session (encoding is done once per QR text).
#[derive(Debug, Clone)]
pub struct QrCache {
    pub session: String,
    pub text: String,
    pub matrix: Result<QrMatrix, String>,
}

/// A remote pool that cannot be reached: since when and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreachable {
    pub since: std::time::SystemTime,
    pub why: String,
}

/// Everything the console shows.
#[derive(Debug)]
pub struct Model {
    pub(crate) sessions: HashMap<String, Status>,
    pub(crate) rows: Vec<String>,
    pub(crate) selected: Option<String>,
    pub(crate) offset: usize,
    pub(crate) marks: BTreeSet<String>,
    pub(crate) filter: Filter,
    pub(crate) sort: SortKey,
    pub(crate) sort_desc: bool,
    pub(crate) focus: Pane,
    pub(crate) mode: Mode,
    pub(crate) logs: LogsView,
    pub(crate) settings: Settings,
    pub(crate) flash: Option<Flash>,
    /// Requests sent and not yet answered by a status change, by (session, command).
    pub(crate) pending: HashMap<(String, Command), Instant>,
    pub(crate) viewport: Rect,
    pub(crate) quit: bool,
    /// The operator asked to detach (leave the pool running).
    pub(crate) detach: bool,
    /// The pool cannot be reached (remote pools only); cleared by the next whole fleet.
    pub(crate) unreachable: Option<Unreachable>,
    pub(crate) qr: Option<QrCache>,
    pub(crate) ring: LogRing,
    /// Clustered: the live nodes (empty when alone).
    pub(crate) nodes: Vec<NodeLine>,
    /// The newest messages of each session.
    pub(crate) messages: Recent,
    /// Sessions whose kept messages are to be read (the loop sends `Order::Recent`).
    pub(crate) to_load: Vec<String>,
}

impl Model {
    pub fn new(settings: Settings, ring: LogRing) -> Model {
        Model {
            sessions: HashMap::new(),
            rows: Vec::new(),
            selected: None,
            offset: 0,
            marks: BTreeSet::new(),
            filter: Filter::default(),
            sort: SortKey::State,
            sort_desc: false,
            focus: Pane::Table,
            mode: Mode::Normal,
            logs: LogsView {
                follow: true,
                anchor: None,
                frozen: None,
                min_level: None,
                session: None,
            },
            settings,
            flash: None,
            pending: HashMap::new(),
            viewport: Rect::new(0, 0, 80, 24),
            quit: false,
            detach: false,
            unreachable: None,
            qr: None,
            ring,
            nodes: Vec::new(),
            messages: Recent::default(),
            to_load: Vec::new(),
        }
    }

    /// Merges a batch of statuses (newest wins per session), then refreshes the visible rows
    /// once: a batch of thousands costs one filter and sort.
    pub fn apply(&mut self, statuses: Vec<Status>) {
        for status in statuses {
            match self.sessions.get_mut(&status.id) {
                Some(old) => {
                    if old.state() != status.state() || old.since != status.since {
                        self.pending.retain(|(s, _), _| *s != status.id);
                    }
                    *old = status;
                }
                None => {
                    self.sessions.insert(status.id.clone(), status);
                }
            }
        }
        self.refresh_rows();
        self.refresh_qr();
    }

    /// Takes the whole fleet: sessions not in it are gone (marks on them too), the pool is
    /// reachable again.
    pub fn replace_all(&mut self, fleet: Vec<Status>) {
        let ids: std::collections::HashSet<&str> = fleet.iter().map(|s| s.id.as_str()).collect();
        self.sessions.retain(|id, _| ids.contains(id.as_str()));
        self.marks.retain(|id| ids.contains(id.as_str()));
        self.messages.retain(|id| ids.contains(id));
        self.unreachable = None;
        self.apply(fleet);
    }

    /// Recomputes the visible rows from the filter and sort, keeping the selection on the
    /// same session when it is still visible.
    pub(crate) fn refresh_rows(&mut self) {
        let old_index = self.selected_index();
        let mut rows: Vec<&Status> = self
            .sessions
            .values()
            .filter(|s| self.filter.matches(s))
            .collect();
        let key = self.sort;
        // Ties are broken by id, so an unstable sort gives the same order.
        rows.sort_unstable_by(|a, b| {
            let ord = match key {
                SortKey::State => severity(a.state()).cmp(&severity(b.state())),
                SortKey::Id => std::cmp::Ordering::Equal,
                SortKey::Label => a.label.cmp(&b.label),
                SortKey::Uptime => a.uptime_pct.total_cmp(&b.uptime_pct),
                SortKey::Conflicts => b.conflicts_1h.cmp(&a.conflicts_1h),
                SortKey::Attempt => b.attempt.cmp(&a.attempt),
                SortKey::LastEvent => last_event(b).cmp(&last_event(a)),
            };
            ord.then_with(|| a.id.cmp(&b.id))
        });
        if self.sort_desc {
            rows.reverse();
        }
        self.rows = rows.into_iter().map(|s| s.id.clone()).collect();
        let still_visible = self
            .selected
            .as_ref()
            .is_some_and(|id| self.rows.iter().any(|r| r == id));
        if !still_visible {
            self.selected = if self.rows.is_empty() {
                None
            } else {
                let i = old_index.unwrap_or(0).min(self.rows.len() - 1);
                Some(self.rows[i].clone())
            };
        }
    }

    /// Re-encodes the QR when the selected session shows a new one.
    pub(crate) fn refresh_qr(&mut self) {
        let Some(status) = self.selected_status() else {
            self.qr = None;
            return;
        };
        let Some(view) = status.qr() else {
            self.qr = None;
            return;
        };
        if self
            .qr
            .as_ref()
            .is_some_and(|c| c.session == status.id && c.text == view.text.as_str())
        {
            return;
        }
        self.qr = Some(QrCache {
            session: status.id.clone(),
            text: view.text.as_str().to_string(),
            matrix: if view.text.as_str().is_empty() {
                Err("the QR is shown only to a console holding the token".to_string())
            } else {
                QrMatrix::encode(view.text.as_str()).map_err(|e| e.to_string())
            },
        });
    }

    pub fn status(&self, id: &str) -> Option<&Status> {
        self.sessions.get(id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Every session, in no particular order.
    pub fn statuses(&self) -> impl Iterator<Item = &Status> {
        self.sessions.values()
    }

    /// The ids shown in the table, in order.
    pub fn rows(&self) -> &[String] {
        &self.rows
    }

    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    pub fn selected_status(&self) -> Option<&Status> {
        self.selected.as_ref().and_then(|id| self.sessions.get(id))
    }

    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected.as_ref()?;
        self.rows.iter().position(|r| r == id)
    }

    /// Selects a session by id (it need not be visible).
    pub fn select(&mut self, id: &str) {
        if self.sessions.contains_key(id) {
            self.selected = Some(id.to_string());
            self.refresh_qr();
        }
    }

    pub fn marks(&self) -> &BTreeSet<String> {
        &self.marks
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn focus(&self) -> Pane {
        self.focus
    }

    pub fn filter_text(&self) -> &str {
        &self.filter.text
    }

    pub fn sort(&self) -> (SortKey, bool) {
        (self.sort, self.sort_desc)
    }

    pub fn logs_view(&self) -> &LogsView {
        &self.logs
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn theme(&self) -> &Theme {
        &self.settings.theme
    }

    pub fn flash(&self) -> Option<&Flash> {
        self.flash.as_ref()
    }

    pub fn ring(&self) -> &LogRing {
        &self.ring
    }

    pub fn qr_cache(&self) -> Option<&QrCache> {
        self.qr.as_ref()
    }

    /// The table's first visible row.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The terminal size the model lays itself out for (mouse hits, page sizes).
    pub fn viewport(&self) -> Rect {
        self.viewport
    }

    /// Whether the operator asked to quit.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Whether the operator asked to detach.
    pub fn should_detach(&self) -> bool {
        self.detach
    }

    /// The outage of a remote pool, if it cannot be reached now.
    /// Whether the console offers `action` now: the move only when clustered (footer, help
    /// and the read-only list leave it out otherwise).
    pub fn offers(&self, action: Action) -> bool {
        action != Action::Move || !self.nodes.is_empty()
    }

    /// Clustered: the live nodes with their heartbeats; empty when alone.
    pub fn nodes(&self) -> &[NodeLine] {
        &self.nodes
    }

    pub fn unreachable(&self) -> Option<&Unreachable> {
        self.unreachable.as_ref()
    }

    pub(crate) fn say(&mut self, text: impl Into<String>, now: Instant) {
        self.flash = Some(Flash {
            text: text.into(),
            error: false,
            until: now + Duration::from_secs(4),
        });
    }

    pub(crate) fn refuse(&mut self, text: impl Into<String>, now: Instant) {
        self.flash = Some(Flash {
            text: text.into(),
            error: true,
            until: now + Duration::from_secs(6),
        });
    }
}

/// When the session last changed: its newest timeline entry, else when it entered its state.
pub fn last_event(s: &Status) -> Instant {
    s.timeline.last().map_or(s.since, |e| e.at.max(s.since))
}
