//! Themes: the styles every view takes its colours from, loaded from `themes/*.toml` (embedded)
//! or a user file, with `NO_COLOR` honoured. States also carry a glyph, so colour is never the
//! only signal.

use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::session::status::StateName;

const DARK: &str = include_str!("../../themes/dark.toml");
const LIGHT: &str = include_str!("../../themes/light.toml");
const MONO: &str = include_str!("../../themes/mono.toml");

/// The built-in theme names.
pub const BUILT_IN: [&str; 3] = ["dark", "light", "mono"];

/// How the QR is painted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QrColors {
    /// Colours of dark and light modules; when both are set the glyphs draw dark modules.
    pub dark: Option<Color>,
    pub light: Option<Color>,
    /// Without colours: whether block glyphs stand for light modules (a dark terminal).
    pub glyph_is_light: bool,
}

impl QrColors {
    /// Whether block glyphs should mark the light modules rather than the dark ones.
    pub fn invert(&self) -> bool {
        match (self.dark, self.light) {
            (Some(_), Some(_)) => false,
            _ => self.glyph_is_light,
        }
    }

    pub fn style(&self) -> Style {
        let mut style = Style::default();
        if let (Some(dark), Some(light)) = (self.dark, self.light) {
            style = style.fg(dark).bg(light);
        }
        style
    }
}

/// Every style the console uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub bar_glyphs: bool,
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub header: Style,
    pub border: Style,
    pub border_focused: Style,
    pub selected: Style,
    pub marked: Style,
    pub key: Style,
    pub message: Style,
    pub error: Style,
    states: [Style; 10],
    levels: [Style; 5],
    pub qr: QrColors,
}

/// A theme that cannot be used; the message names the file and the place.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error(
        "theme {name} is neither a built-in theme (dark, light, mono) nor a readable file: {source}"
    )]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("theme {path} is not a valid theme: {message}")]
    Parse { path: String, message: String },
    #[error("theme {path}, line {line}, column {column}: `{value}` is not a colour")]
    BadColour {
        path: String,
        line: usize,
        column: usize,
        value: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    extends: Option<String>,
    bar_glyphs: Option<bool>,
    #[serde(default)]
    ui: UiStyles,
    #[serde(default)]
    state: StateStyles,
    #[serde(default)]
    level: LevelStyles,
    #[serde(default)]
    qr: QrFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UiStyles {
    text: Option<StyleSpec>,
    dim: Option<StyleSpec>,
    title: Option<StyleSpec>,
    header: Option<StyleSpec>,
    border: Option<StyleSpec>,
    border_focused: Option<StyleSpec>,
    selected: Option<StyleSpec>,
    marked: Option<StyleSpec>,
    key: Option<StyleSpec>,
    message: Option<StyleSpec>,
    error: Option<StyleSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StateStyles {
    online: Option<StyleSpec>,
    pairing: Option<StyleSpec>,
    connecting: Option<StyleSpec>,
    handshaking: Option<StyleSpec>,
    backoff: Option<StyleSpec>,
    cooldown: Option<StyleSpec>,
    conflict: Option<StyleSpec>,
    logged_out: Option<StyleSpec>,
    failed: Option<StyleSpec>,
    stopped: Option<StyleSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LevelStyles {
    error: Option<StyleSpec>,
    warn: Option<StyleSpec>,
    info: Option<StyleSpec>,
    debug: Option<StyleSpec>,
    trace: Option<StyleSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QrFile {
    dark: Option<Spanned<String>>,
    light: Option<Spanned<String>>,
    glyph: Option<QrGlyph>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum QrGlyph {
    Dark,
    Light,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<Spanned<String>>,
    bg: Option<Spanned<String>>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    dim: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underlined: bool,
    #[serde(default)]
    reversed: bool,
}

struct Source<'a> {
    path: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn colour(&self, value: &Spanned<String>) -> Result<Color, ThemeError> {
        Color::from_str(value.get_ref()).map_err(|_| {
            let offset = value.span().start.min(self.text.len());
            let before = &self.text[..offset];
            ThemeError::BadColour {
                path: self.path.to_string(),
                line: before.matches('\n').count() + 1,
                column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
                value: value.get_ref().clone(),
            }
        })
    }

    fn style(&self, spec: &StyleSpec) -> Result<Style, ThemeError> {
        let mut style = Style::default();
        if let Some(fg) = &spec.fg {
            style = style.fg(self.colour(fg)?);
        }
        if let Some(bg) = &spec.bg {
            style = style.bg(self.colour(bg)?);
        }
        for (on, modifier) in [
            (spec.bold, Modifier::BOLD),
            (spec.dim, Modifier::DIM),
            (spec.italic, Modifier::ITALIC),
            (spec.underlined, Modifier::UNDERLINED),
            (spec.reversed, Modifier::REVERSED),
        ] {
            if on {
                style = style.add_modifier(modifier);
            }
        }
        Ok(style)
    }
}

fn state_index(state: StateName) -> usize {
    match state {
        StateName::Online => 0,
        StateName::Pairing => 1,
        StateName::Connecting => 2,
        StateName::Handshaking => 3,
        StateName::Backoff => 4,
        StateName::Cooldown => 5,
        StateName::Conflict => 6,
        StateName::LoggedOut => 7,
        StateName::Failed => 8,
        StateName::Stopped => 9,
    }
}

fn level_index(level: tracing::Level) -> usize {
    match level {
        tracing::Level::ERROR => 0,
        tracing::Level::WARN => 1,
        tracing::Level::INFO => 2,
        tracing::Level::DEBUG => 3,
        tracing::Level::TRACE => 4,
    }
}

impl Theme {
    fn blank() -> Theme {
        Theme {
            name: String::new(),
            bar_glyphs: true,
            text: Style::default(),
            dim: Style::default(),
            title: Style::default(),
            header: Style::default(),
            border: Style::default(),
            border_focused: Style::default(),
            selected: Style::default().add_modifier(Modifier::REVERSED),
            marked: Style::default(),
            key: Style::default(),
            message: Style::default(),
            error: Style::default(),
            states: [Style::default(); 10],
            levels: [Style::default(); 5],
            qr: QrColors {
                dark: None,
                light: None,
                glyph_is_light: true,
            },
        }
    }

    /// A built-in theme by name.
    pub fn built_in(name: &str) -> Option<Theme> {
        let text = match name {
            "dark" => DARK,
            "light" => LIGHT,
            "mono" => MONO,
            _ => return None,
        };
        // The built-in files are parsed by `theme::tests::built_ins_parse`.
        Theme::parse(text, name).ok()
    }

    /// The default dark theme.
    pub fn dark() -> Theme {
        Theme::built_in("dark").unwrap_or_else(Theme::blank)
    }

    /// The colourless theme.
    pub fn mono() -> Theme {
        Theme::built_in("mono").unwrap_or_else(Theme::blank)
    }

    /// Picks the theme for `--theme CHOICE` (a built-in name or a file path). Without a choice:
    /// `mono` when `NO_COLOR` is set and not empty, else `dark`. An explicit choice wins over
    /// `NO_COLOR`, as no-color.org allows for a user's own configuration.
    pub fn resolve(choice: Option<&str>, no_color: bool) -> Result<Theme, ThemeError> {
        match choice {
            None if no_color => Ok(Theme::mono()),
            None => Ok(Theme::dark()),
            Some(name) => match Theme::built_in(name) {
                Some(theme) => Ok(theme),
                None => Theme::load(Path::new(name)),
            },
        }
    }

    /// Whether the environment asks for no colour (`NO_COLOR` set and not empty).
    pub fn no_color_env() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }

    /// A theme file; `extends = "light"` names the built-in it overlays (default `dark`).
    pub fn load(path: &Path) -> Result<Theme, ThemeError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ThemeError::Read {
            name: shown.clone(),
            source,
        })?;
        Theme::parse(&text, &shown)
    }

    /// Parses theme text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &str) -> Result<Theme, ThemeError> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Parse {
            path: path.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let mut theme = match file.extends.as_deref() {
            None if BUILT_IN.contains(&path) => Theme::blank(),
            None => Theme::dark(),
            Some(base) => Theme::built_in(base).ok_or_else(|| ThemeError::Parse {
                path: path.to_string(),
                message: format!("`extends = \"{base}\"` is not a built-in theme"),
            })?,
        };
        let src = Source { path, text };
        theme.name = file.name.unwrap_or_else(|| path.to_string());
        if let Some(glyphs) = file.bar_glyphs {
            theme.bar_glyphs = glyphs;
        }
        let ui = &file.ui;
        for (spec, slot) in [
            (&ui.text, &mut theme.text),
            (&ui.dim, &mut theme.dim),
            (&ui.title, &mut theme.title),
            (&ui.header, &mut theme.header),
            (&ui.border, &mut theme.border),
            (&ui.border_focused, &mut theme.border_focused),
            (&ui.selected, &mut theme.selected),
            (&ui.marked, &mut theme.marked),
            (&ui.key, &mut theme.key),
            (&ui.message, &mut theme.message),
            (&ui.error, &mut theme.error),
        ] {
            if let Some(spec) = spec {
                *slot = src.style(spec)?;
            }
        }
        let st = &file.state;
        for (state, spec) in [
            (StateName::Online, &st.online),
            (StateName::Pairing, &st.pairing),
            (StateName::Connecting, &st.connecting),
            (StateName::Handshaking, &st.handshaking),
            (StateName::Backoff, &st.backoff),
            (StateName::Cooldown, &st.cooldown),
            (StateName::Conflict, &st.conflict),
            (StateName::LoggedOut, &st.logged_out),
            (StateName::Failed, &st.failed),
            (StateName::Stopped, &st.stopped),
        ] {
            if let Some(spec) = spec {
                theme.states[state_index(state)] = src.style(spec)?;
            }
        }
        let lv = &file.level;
        for (level, spec) in [
            (tracing::Level::ERROR, &lv.error),
            (tracing::Level::WARN, &lv.warn),
            (tracing::Level::INFO, &lv.info),
            (tracing::Level::DEBUG, &lv.debug),
            (tracing::Level::TRACE, &lv.trace),
        ] {
            if let Some(spec) = spec {
                theme.levels[level_index(level)] = src.style(spec)?;
            }
        }
        if let Some(dark) = &file.qr.dark {
            theme.qr.dark = Some(src.colour(dark)?);
        }
        if let Some(light) = &file.qr.light {
            theme.qr.light = Some(src.colour(light)?);
        }
        if let Some(glyph) = file.qr.glyph {
            theme.qr.glyph_is_light = matches!(glyph, QrGlyph::Light);
        }
        Ok(theme)
    }

    pub fn state(&self, state: StateName) -> Style {
        self.states[state_index(state)]
    }

    pub fn level(&self, level: tracing::Level) -> Style {
        self.levels[level_index(level)]
    }
}

/// The glyph that marks a state on screen, so state never rests on colour alone.
pub fn state_glyph(state: StateName, ascii: bool) -> &'static str {
    match (state, ascii) {
        (StateName::Online, false) => "●",
        (StateName::Pairing, false) => "▦",
        (StateName::Connecting, false) => "◔",
        (StateName::Handshaking, false) => "◑",
        (StateName::Backoff, false) => "↻",
        (StateName::Cooldown, false) => "◷",
        (StateName::Conflict, false) => "⇄",
        (StateName::LoggedOut, false) => "⊘",
        (StateName::Failed, false) => "✗",
        (StateName::Stopped, false) => "■",
        (StateName::Online, true) => "*",
        (StateName::Pairing, true) => "Q",
        (StateName::Connecting, true) => ">",
        (StateName::Handshaking, true) => "=",
        (StateName::Backoff, true) => "~",
        (StateName::Cooldown, true) => "z",
        (StateName::Conflict, true) => "!",
        (StateName::LoggedOut, true) => "-",
        (StateName::Failed, true) => "X",
        (StateName::Stopped, true) => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_parse() {
        for name in BUILT_IN {
            let theme = Theme::built_in(name);
            assert_eq!(theme.map(|t| t.name), Some(name.to_string()));
        }
    }

    #[test]
    fn mono_sets_no_colour_anywhere() {
        let mono = Theme::mono();
        let mut styles = vec![
            mono.text,
            mono.dim,
            mono.title,
            mono.header,
            mono.border,
            mono.border_focused,
            mono.selected,
            mono.marked,
            mono.key,
            mono.message,
            mono.error,
        ];
        styles.extend(StateName::ALL.iter().map(|s| mono.state(*s)));
        for style in styles {
            assert_eq!((style.fg, style.bg), (None, None), "{style:?}");
        }
        assert!(mono.qr.invert());
    }

    #[test]
    fn no_color_picks_mono_unless_a_theme_is_named() {
        assert_eq!(Theme::resolve(None, true).unwrap().name, "mono");
        assert_eq!(Theme::resolve(None, false).unwrap().name, "dark");
        assert_eq!(Theme::resolve(Some("light"), true).unwrap().name, "light");
    }

    #[test]
    fn a_user_theme_overlays_its_base_and_reports_bad_colours() {
        let theme = Theme::parse(
            "extends = \"light\"\n[state]\nonline = { fg = \"#00ff00\" }\n",
            "mine.toml",
        )
        .unwrap();
        assert_eq!(
            theme.state(StateName::Online).fg,
            Some(Color::Rgb(0, 255, 0))
        );
        assert_eq!(theme.selected, Theme::built_in("light").unwrap().selected);

        let err = Theme::parse("[ui]\ntext = { fg = \"blurple\" }\n", "bad.toml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "theme bad.toml, line 2, column 15: `blurple` is not a colour"
        );
    }

    #[test]
    fn every_state_has_distinct_glyphs() {
        for ascii in [false, true] {
            let glyphs: std::collections::HashSet<_> = StateName::ALL
                .iter()
                .map(|s| state_glyph(*s, ascii))
                .collect();
            assert_eq!(glyphs.len(), StateName::ALL.len());
        }
    }
}
