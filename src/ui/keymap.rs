//! Keymap as data: the embedded default bindings (`keymap-default.toml`), a user TOML file that
//! overlays them, key lookup per pane, and the descriptions the help screen and footer show.

use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;

pub use super::key::Key;
use crate::session::Command;

/// The embedded default keymap.
pub const DEFAULT_KEYMAP: &str = include_str!("keymap-default.toml");

/// Everything a key can do: the console's own vocabulary (moves, filters, dialogs, toggles)
/// and every operator command by its name. Names are the `run` values of the keymap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    /// Leave the console, keep the pool running (`wasp attach` comes back to it).
    Detach,
    Help,
    FocusNext,
    ToggleLogs,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Start a stopped or failed session, stop any other (resolved per session when sent).
    StartStop,
    /// Clustered: move the selected session to a node named in a dialog.
    Move,
    /// Pair the selected session by phone number: type the number, get the code.
    PairCode,
    /// Write a message from the selected session (number and text in a dialog), or one test
    /// message from each marked session.
    Message,
    ShowQr,
    Mark,
    MarkAll,
    ClearMarks,
    Filter,
    ClearFilter,
    Sort,
    SortReverse,
    Follow,
    Freeze,
    LevelFilter,
    SessionFilter,
    /// Dialogs: send, keep or close.
    Confirm,
    /// Dialogs: cancel, restore or close.
    Cancel,
    /// The wipe dialog: take one last backup first, or not.
    ToggleBackup,
    /// Dialogs that take text: clear what was typed.
    ClearInput,
    /// An operator command for the selected session (or every marked one).
    Run(Command),
}

impl Action {
    /// The action a keymap `run` value names: the console's own (snake_case) or an operator
    /// command's name (`reset-cooldown`; `reset_cooldown` is read the same).
    pub fn from_name(name: &str) -> Option<Action> {
        Some(match name {
            "quit" => Action::Quit,
            "detach" => Action::Detach,
            "help" => Action::Help,
            "focus_next" => Action::FocusNext,
            "toggle_logs" => Action::ToggleLogs,
            "up" => Action::Up,
            "down" => Action::Down,
            "page_up" => Action::PageUp,
            "page_down" => Action::PageDown,
            "top" => Action::Top,
            "bottom" => Action::Bottom,
            "start_stop" => Action::StartStop,
            "move" => Action::Move,
            "pair_code" => Action::PairCode,
            "message" => Action::Message,
            "show_qr" => Action::ShowQr,
            "mark" => Action::Mark,
            "mark_all" => Action::MarkAll,
            "clear_marks" => Action::ClearMarks,
            "filter" => Action::Filter,
            "clear_filter" => Action::ClearFilter,
            "sort" => Action::Sort,
            "sort_reverse" => Action::SortReverse,
            "follow" => Action::Follow,
            "freeze" => Action::Freeze,
            "level_filter" => Action::LevelFilter,
            "session_filter" => Action::SessionFilter,
            "confirm" => Action::Confirm,
            "cancel" => Action::Cancel,
            "toggle_backup" => Action::ToggleBackup,
            "clear_input" => Action::ClearInput,
            other => Action::Run(other.replace('_', "-").parse().ok()?),
        })
    }

    /// The one-word label the footer shows next to the key.
    pub fn label(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Detach => "detach",
            Action::Help => "help",
            Action::FocusNext => "focus",
            Action::ToggleLogs => "logs",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::StartStop => "start/stop",
            Action::Move => "move",
            Action::PairCode => "code",
            Action::Message => "message",
            Action::ShowQr => "QR",
            Action::Mark => "mark",
            Action::MarkAll => "mark all",
            Action::ClearMarks => "unmark",
            Action::Filter => "filter",
            Action::ClearFilter => "clear",
            Action::Sort => "sort",
            Action::SortReverse => "reverse",
            Action::Follow => "follow",
            Action::Freeze => "freeze",
            Action::LevelFilter => "level",
            Action::SessionFilter => "session",
            Action::Confirm => "confirm",
            Action::Cancel => "cancel",
            Action::ToggleBackup => "backup",
            Action::ClearInput => "clear",
            Action::Run(command) => command.label(),
        }
    }

    /// What an operator action is called in messages (`reconnect`, `start/stop`).
    pub fn verb(self) -> &'static str {
        match self {
            Action::Run(command) => command.name(),
            other => other.label(),
        }
    }

    /// Whether the action changes a session (refused in read-only mode).
    pub fn is_operator(self) -> bool {
        matches!(
            self,
            Action::Run(_) | Action::StartStop | Action::Move | Action::PairCode | Action::Message
        )
    }

    /// Whether the footer lists this action (moves are implied and would crowd it out).
    pub fn in_footer(self) -> bool {
        !matches!(
            self,
            Action::Up
                | Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Top
                | Action::Bottom
                | Action::ClearFilter
                | Action::SortReverse
                | Action::MarkAll
                | Action::ClearMarks
                | Action::FocusNext
        )
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
        let name = String::deserialize(deserializer)?;
        Action::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown action `{name}`: use a console action or a command ({})",
                Command::names().join(", ")
            ))
        })
    }
}

/// Where a binding applies: everywhere, or while a pane has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Global,
    Table,
    Logs,
    /// The dialogs and overlays: confirmations, the filter being typed, help and the QR.
    Dialog,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::Global => "Everywhere",
            Section::Table => "Session table",
            Section::Logs => "Logs pane",
            Section::Dialog => "Dialogs (where text is typed, only keys that type nothing act)",
        }
    }
}

/// One action with its keys and the sentence the help screen shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub keys: Vec<Key>,
    pub action: Action,
    pub desc: String,
}

/// The bindings of every section, defaults overlaid by the user's file.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    pub global: Vec<Binding>,
    pub table: Vec<Binding>,
    pub logs: Vec<Binding>,
    pub dialog: Vec<Binding>,
}

/// A keymap file that cannot be used; the message names the file and the place.
#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error("keymap {path} could not be read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("keymap {path} is not a valid keymap: {message}")]
    Parse { path: String, message: String },
    #[error("keymap {path}, line {line}, column {column}: {message}")]
    BadKey {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    #[serde(default)]
    global: Vec<Entry>,
    #[serde(default)]
    table: Vec<Entry>,
    #[serde(default)]
    logs: Vec<Entry>,
    #[serde(default)]
    dialog: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    on: Vec<Spanned<String>>,
    run: Action,
    desc: Option<String>,
}

impl Keymap {
    /// The embedded defaults.
    pub fn defaults() -> Keymap {
        let mut map = Keymap {
            global: Vec::new(),
            table: Vec::new(),
            logs: Vec::new(),
            dialog: Vec::new(),
        };
        // Proven invariant: the embedded file is parsed by `keymap::tests::defaults_parse`
        // (and every test that builds a model), so this cannot fail in a released binary.
        #[allow(clippy::expect_used)]
        map.overlay(DEFAULT_KEYMAP, "<embedded defaults>")
            .expect("the embedded keymap parses");
        map
    }

    /// The defaults overlaid by the file at `path`, if any.
    pub fn load(path: Option<&Path>) -> Result<Keymap, KeymapError> {
        let mut map = Keymap::defaults();
        if let Some(path) = path {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| KeymapError::Read {
                path: shown.clone(),
                source,
            })?;
            map.overlay(&text, &shown)?;
        }
        Ok(map)
    }

    /// Applies a keymap file on top of this one (see the header of `keymap-default.toml`).
    pub fn overlay(&mut self, text: &str, path: &str) -> Result<(), KeymapError> {
        let file: KeymapFile = toml::from_str(text).map_err(|e| KeymapError::Parse {
            path: path.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        for (section, entries) in [
            (Section::Global, file.global),
            (Section::Table, file.table),
            (Section::Logs, file.logs),
            (Section::Dialog, file.dialog),
        ] {
            for entry in entries {
                let mut keys = Vec::new();
                for spanned in &entry.on {
                    let key = Key::parse(spanned.get_ref()).map_err(|message| {
                        let (line, column) = line_col(text, spanned.span().start);
                        KeymapError::BadKey {
                            path: path.to_string(),
                            line,
                            column,
                            message,
                        }
                    })?;
                    keys.push(key);
                }
                self.bind(section, entry.run, keys, entry.desc);
            }
        }
        Ok(())
    }

    fn bind(&mut self, section: Section, action: Action, keys: Vec<Key>, desc: Option<String>) {
        let list = self.section_mut(section);
        for binding in list.iter_mut() {
            binding.keys.retain(|k| !keys.contains(k));
        }
        match list.iter_mut().find(|b| b.action == action) {
            Some(binding) => {
                binding.keys = keys;
                if let Some(desc) = desc {
                    binding.desc = desc;
                }
            }
            None => list.push(Binding {
                keys,
                action,
                desc: desc.unwrap_or_else(|| match action {
                    Action::Run(command) => command.description().to_string(),
                    other => other.label().to_string(),
                }),
            }),
        }
    }

    pub fn section(&self, section: Section) -> &[Binding] {
        match section {
            Section::Global => &self.global,
            Section::Table => &self.table,
            Section::Logs => &self.logs,
            Section::Dialog => &self.dialog,
        }
    }

    fn section_mut(&mut self, section: Section) -> &mut Vec<Binding> {
        match section {
            Section::Global => &mut self.global,
            Section::Table => &mut self.table,
            Section::Logs => &mut self.logs,
            Section::Dialog => &mut self.dialog,
        }
    }

    /// The action of `key` in a pane: the pane's own bindings first, then the global ones.
    pub fn action(&self, pane: Section, key: Key) -> Option<Action> {
        [pane, Section::Global]
            .into_iter()
            .flat_map(|s| self.section(s))
            .find(|b| b.keys.contains(&key))
            .map(|b| b.action)
    }

    /// The first key bound to `action` in a pane (or globally), for hints such as `? help`.
    pub fn key_for(&self, pane: Section, action: Action) -> Option<Key> {
        self.keys_for(pane, action).next()
    }

    /// The first key bound to `action` that types nothing (`enter`, `esc`, `ctrl-u`): the
    /// one that acts in a dialog taking text.
    pub fn control_key_for(&self, pane: Section, action: Action) -> Option<Key> {
        self.keys_for(pane, action).find(|k| !k.types_text())
    }

    /// `key_for` as text, or `unbound` when the user file took every key away.
    pub fn hint(&self, pane: Section, action: Action) -> String {
        self.key_for(pane, action)
            .map_or_else(|| "unbound".to_string(), |k| k.to_string())
    }

    /// `control_key_for` as text, or `unbound`.
    pub fn control_hint(&self, pane: Section, action: Action) -> String {
        self.control_key_for(pane, action)
            .map_or_else(|| "unbound".to_string(), |k| k.to_string())
    }

    fn keys_for(&self, pane: Section, action: Action) -> impl Iterator<Item = Key> + '_ {
        [pane, Section::Global]
            .into_iter()
            .flat_map(|s| self.section(s))
            .filter(move |b| b.action == action)
            .flat_map(|b| b.keys.iter().copied())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;

    fn key(text: &str) -> Key {
        Key::parse(text).unwrap()
    }

    #[test]
    fn defaults_parse_and_follow_the_spec() {
        let map = Keymap::defaults();
        for (k, action) in [
            ("r", Action::Run(Command::ReconnectNow)),
            ("c", Action::Run(Command::ResetCooldown)),
            ("W", Action::Run(Command::WipeCredentials { backup: true })),
            ("p", Action::Run(Command::Pair)),
            ("d", Action::Run(Command::Disconnect)),
            ("x", Action::StartStop),
            ("space", Action::Mark),
            ("/", Action::Filter),
            ("s", Action::Sort),
            ("l", Action::ToggleLogs),
            ("?", Action::Help),
            ("q", Action::Quit),
            ("D", Action::Detach),
            ("M", Action::Move),
            ("P", Action::PairCode),
            ("m", Action::Message),
        ] {
            assert_eq!(map.action(Section::Table, key(k)), Some(action), "key {k}");
        }
    }

    #[test]
    fn no_key_is_bound_twice_in_a_section() {
        let map = Keymap::defaults();
        for section in [
            Section::Global,
            Section::Table,
            Section::Logs,
            Section::Dialog,
        ] {
            let mut seen = std::collections::HashSet::new();
            for b in map.section(section) {
                for k in &b.keys {
                    assert!(seen.insert(*k), "{k} bound twice in {section:?}");
                }
            }
        }
    }

    #[test]
    fn typed_shift_letters_match_their_binding() {
        let map = Keymap::defaults();
        let typed = KeyEvent::new(KeyCode::Char('W'), KeyModifiers::SHIFT);
        assert_eq!(
            map.action(Section::Table, Key::from_event(&typed)),
            Some(Action::Run(Command::WipeCredentials { backup: true }))
        );
        let lower = KeyEvent::new(KeyCode::Char('w'), KeyModifiers::NONE);
        assert_eq!(map.action(Section::Table, Key::from_event(&lower)), None);
    }

    #[test]
    fn a_user_file_rebinds_and_steals_keys() {
        let mut map = Keymap::defaults();
        map.overlay(
            "[[table]]\non = [\"R\", \"r\"]\nrun = \"reconnect\"\n\n[[table]]\non = [\"d\"]\nrun = \"wipe\"\n",
            "user.toml",
        )
        .unwrap();
        assert_eq!(
            map.action(Section::Table, key("R")),
            Some(Action::Run(Command::ReconnectNow))
        );
        assert_eq!(
            map.action(Section::Table, key("d")),
            Some(Action::Run(Command::WipeCredentials { backup: true }))
        );
        assert_eq!(map.action(Section::Table, key("W")), None);
        // Disconnect lost its only key; the help still lists it, without keys.
        let disconnect = map
            .table
            .iter()
            .find(|b| b.action == Action::Run(Command::Disconnect));
        assert_eq!(disconnect.map(|b| b.keys.len()), Some(0));
    }

    #[test]
    fn a_bad_key_names_its_line_and_column() {
        let mut map = Keymap::defaults();
        let err = map
            .overlay(
                "[[table]]\non = [\"r\", \"hyper-x\"]\nrun = \"reconnect\"\n",
                "k.toml",
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "keymap k.toml, line 2, column 12: `hyper-x` is not a key name"
        );
    }

    #[test]
    fn an_unknown_action_is_an_error_not_a_panic() {
        let mut map = Keymap::defaults();
        let err = map
            .overlay("[[table]]\non = [\"r\"]\nrun = \"explode\"\n", "k.toml")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("keymap k.toml is not a valid keymap"),
            "{text}"
        );
        assert!(text.contains("explode"), "{text}");
    }

    #[test]
    fn commands_are_named_as_everywhere_else_and_old_names_still_load() {
        for command in Command::ALL {
            assert_eq!(
                Action::from_name(command.name()),
                Some(Action::Run(command))
            );
        }
        assert_eq!(
            Action::from_name("reset_cooldown"),
            Some(Action::Run(Command::ResetCooldown))
        );
        assert_eq!(Action::from_name("explode"), None);
    }

    #[test]
    fn dialog_hints_skip_keys_that_type_text() {
        let map = Keymap::defaults();
        assert_eq!(map.hint(Section::Dialog, Action::Confirm), "y");
        assert_eq!(map.control_hint(Section::Dialog, Action::Confirm), "enter");
        assert_eq!(map.control_hint(Section::Dialog, Action::Cancel), "esc");
        assert_eq!(
            map.control_hint(Section::Dialog, Action::ClearInput),
            "ctrl-u"
        );
    }
}
