//! Keymap as data: the embedded default bindings (`keymap-default.toml`), a user TOML file that
//! overlays them, key lookup per pane, and the descriptions the help screen and footer show.

use std::fmt;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use serde_spanned::Spanned;

/// The embedded default keymap.
pub const DEFAULT_KEYMAP: &str = include_str!("keymap-default.toml");

/// Everything a key can do. Names are the `run` values of the keymap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    Help,
    FocusNext,
    ToggleLogs,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Reconnect,
    ResetCooldown,
    Wipe,
    Pair,
    Disconnect,
    StartStop,
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
}

impl Action {
    /// The one-word label the footer shows next to the key.
    pub fn label(self) -> &'static str {
        match self {
            Action::Quit => "quit",
            Action::Help => "help",
            Action::FocusNext => "focus",
            Action::ToggleLogs => "logs",
            Action::Up => "up",
            Action::Down => "down",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::Reconnect => "reconnect",
            Action::ResetCooldown => "reset",
            Action::Wipe => "wipe",
            Action::Pair => "pair",
            Action::Disconnect => "disconnect",
            Action::StartStop => "start/stop",
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
        }
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

/// Where a binding applies: everywhere, or while a pane has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Global,
    Table,
    Logs,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::Global => "Everywhere",
            Section::Table => "Session table",
            Section::Logs => "Logs pane",
        }
    }
}

/// One key with its modifiers, normalised so a typed `W` and a configured `W` compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub fn new(code: KeyCode, mods: KeyModifiers) -> Self {
        let mut mods = mods & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        // The character already carries the shift (`W`, `?`); back-tab is shift-tab by name.
        if matches!(code, KeyCode::Char(_) | KeyCode::BackTab) {
            mods.remove(KeyModifiers::SHIFT);
        }
        Key { code, mods }
    }

    pub fn from_event(event: &KeyEvent) -> Self {
        Key::new(event.code, event.modifiers)
    }

    /// Parses `r`, `W`, `space`, `ctrl-c`, `pageup`, `f5`...
    pub fn parse(text: &str) -> Result<Key, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("shift-") {
                mods |= KeyModifiers::SHIFT;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                if mods.contains(KeyModifiers::SHIFT) {
                    KeyCode::Char(c.to_ascii_uppercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            _ => match rest.to_ascii_lowercase().as_str() {
                "space" => KeyCode::Char(' '),
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" => KeyCode::Insert,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "pageup" => KeyCode::PageUp,
                "pagedown" => KeyCode::PageDown,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                other => match other.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                    Some(n @ 1..=12) => KeyCode::F(n),
                    _ => return Err(format!("`{text}` is not a key name")),
                },
            },
        };
        Ok(Key::new(code, mods))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("backtab"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("del"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
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
                desc: desc.unwrap_or_else(|| action.label().to_string()),
            }),
        }
    }

    pub fn section(&self, section: Section) -> &[Binding] {
        match section {
            Section::Global => &self.global,
            Section::Table => &self.table,
            Section::Logs => &self.logs,
        }
    }

    fn section_mut(&mut self, section: Section) -> &mut Vec<Binding> {
        match section {
            Section::Global => &mut self.global,
            Section::Table => &mut self.table,
            Section::Logs => &mut self.logs,
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
        [pane, Section::Global]
            .into_iter()
            .flat_map(|s| self.section(s))
            .find(|b| b.action == action)
            .and_then(|b| b.keys.first().copied())
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
    use super::*;

    fn key(text: &str) -> Key {
        Key::parse(text).unwrap()
    }

    #[test]
    fn defaults_parse_and_follow_the_spec() {
        let map = Keymap::defaults();
        for (k, action) in [
            ("r", Action::Reconnect),
            ("c", Action::ResetCooldown),
            ("W", Action::Wipe),
            ("p", Action::Pair),
            ("d", Action::Disconnect),
            ("x", Action::StartStop),
            ("space", Action::Mark),
            ("/", Action::Filter),
            ("s", Action::Sort),
            ("l", Action::ToggleLogs),
            ("?", Action::Help),
            ("q", Action::Quit),
        ] {
            assert_eq!(map.action(Section::Table, key(k)), Some(action), "key {k}");
        }
    }

    #[test]
    fn no_key_is_bound_twice_in_a_section() {
        let map = Keymap::defaults();
        for section in [Section::Global, Section::Table, Section::Logs] {
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
            Some(Action::Wipe)
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
            Some(Action::Reconnect)
        );
        assert_eq!(map.action(Section::Table, key("d")), Some(Action::Wipe));
        assert_eq!(map.action(Section::Table, key("W")), None);
        // Disconnect lost its only key; the help still lists it, without keys.
        let disconnect = map.table.iter().find(|b| b.action == Action::Disconnect);
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
}
