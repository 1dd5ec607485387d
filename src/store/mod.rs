//! Credentials storage (being built).
