//! Unit tests of sessions.toml parsing: defaults, overrides, and problems with positions.

use std::time::Duration;

use super::*;
