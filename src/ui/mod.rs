//! The wasp console: a ratatui dashboard over the session pool. The pool plugs in through one
//! `PoolLink`: `PoolUpdate`s coming in (`Model::apply`, `Model::replace_all`) and `Request`s
//! going out (`update`); the pool may run in this process or behind `wasp attach`.

pub mod app;
pub mod bench;
pub mod compose;
pub mod dialog;
pub mod filter;
pub mod fmt;
pub mod key;
pub mod keymap;
pub mod layout;
pub mod link;
pub mod logs;
pub mod messages;
pub mod model;
pub mod moving;
pub mod pair_code;
pub mod qr;
pub mod sample;
pub mod theme;
pub mod update;
pub mod view;

use std::path::PathBuf;

pub use app::{
    LoopStats, TerminalGuard, install_panic_hook, quiet_stdin, restore_terminal, run, run_loop,
    unicode_supported,
};
pub use bench::{FrameBench, bench_frame};
pub use keymap::{Action, Keymap, KeymapError};
pub use link::{Exit, MessageLine, NodeLine, PoolLink, PoolUpdate, Stage, Way};
pub use logs::{LogLine, LogRing, RingLayer};
pub use model::{FleetStats, Model, Settings};
pub use sample::sample_fleet;
pub use theme::{Theme, ThemeError};
pub use update::{Msg, Order, Request, update};

/// What the command line decides about the console.
#[derive(Debug, Clone)]
pub struct UiOptions {
    /// A built-in theme name (`dark`, `light`, `mono`) or a path to a theme file; `None` picks
    /// `dark`, or `mono` when `NO_COLOR` is set.
    pub theme: Option<String>,
    /// Draw with ASCII only (QR with `##` pairs, plain borders and glyphs).
    pub ascii: bool,
    /// Refuse every operator action; browsing, filters and logs still work.
    pub read_only: bool,
    /// A TOML keymap that overlays the embedded defaults.
    pub keymap_path: Option<PathBuf>,
    /// Capture the mouse (click a row, scroll the logs). Off keeps the terminal's own selection.
    pub mouse: bool,
}

impl Default for UiOptions {
    fn default() -> Self {
        UiOptions {
            theme: None,
            ascii: !unicode_supported(),
            read_only: false,
            keymap_path: None,
            mouse: true,
        }
    }
}

/// Why the console stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("the terminal could not be put into (or out of) full-screen raw mode: {0}")]
    TerminalSetup(#[source] std::io::Error),
    #[error("drawing to the terminal failed: {0}")]
    Draw(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("reading keyboard or mouse input failed: {0}")]
    Input(#[source] std::io::Error),
    #[error("the SIGTERM handler could not be installed: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Keymap(#[from] KeymapError),
    #[error(transparent)]
    Theme(#[from] ThemeError),
}
