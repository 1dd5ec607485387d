//! sessions.toml: schema, defaults and validation (being built).
