//! The endpoint's tokens: the operator's token from the config or a private file in the data
//! directory, the read-only token, and what SIGHUP does with a changed `[http]`.

use std::path::Path;

use tracing::{info, warn};

use super::{StartError, Started, check_before_start};
use crate::config::{self, Config};
use crate::http::{self, Token};

/// The bearer token for the POST endpoints: from the config, else the one of an earlier run in
/// `<data_dir>/http-token` (kept while only its owner can read it, so a restart does not lock
/// out an attached console or the operator's scripts), else a fresh one written there (0600).
pub(super) fn http_token(config: &Config) -> Result<Token, StartError> {
    if let Some(token) = config.http.as_ref().and_then(|h| h.bearer_token())
        && let Some(token) = Token::new(token.expose())
    {
        return Ok(token);
    }
    let path = config.storage.data_dir.join("http-token");
    if let Some(token) = private_token(&path) {
        return Ok(token);
    }
    let token = Token::random();
    write_private(&path, token.expose().as_bytes()).map_err(|source| StartError::TokenFile {
        path: path.clone(),
        source,
    })?;
    info!(path = %path.display(), "no HTTP token configured: wrote a new one");
    Ok(token)
}

/// The token in `path` when the file is its owner's alone (mode without group/other bits).
fn private_token(path: &Path) -> Option<Token> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    Token::new(std::fs::read_to_string(path).ok()?)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        // The data dir holds credentials: 0700 like the store makes it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .mode(0o600)
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    // `mode` applies only to a new file: an existing one is made private before writing.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

pub(super) fn read_token(http: &config::HttpConfig) -> Option<Token> {
    http.read_token().and_then(|t| Token::new(t.expose()))
}

/// SIGHUP for `[http]`: new tokens apply to the next request; what needs a new listener
/// (`listen` and the connection limits) is logged as needing a restart, never ignored
/// silently. A token the new file cannot give (blank variable, none on a public bind)
/// keeps the old one, and says so.
pub(super) fn reload_http(
    current: &mut Option<config::HttpConfig>,
    new: &Config,
    started: &Started,
) {
    if new.http == *current {
        return;
    }
    let old = current.clone().unwrap_or_default();
    let next = new.http.clone().unwrap_or_default();
    let mut needs_restart: Vec<&str> = Vec::new();
    if old.listen != next.listen || current.is_some() != new.http.is_some() {
        needs_restart.push("listen");
    }
    if http::Limits::of(&old) != http::Limits::of(&next) {
        needs_restart.push("the connection limits");
    }
    if !needs_restart.is_empty() {
        warn!(
            keys = %needs_restart.join(", "),
            "[http] changed: {} apply only when wasp restarts; the endpoint keeps the old ones",
            needs_restart.join(" and ")
        );
    }
    let tokens_changed = old.token != next.token
        || old.token_env != next.token_env
        || old.read_token_env != next.read_token_env;
    if tokens_changed {
        if let Err(e) = check_before_start(new, None) {
            warn!(error = %e, "[http] tokens not changed: the new file cannot give one; the old ones stay");
            return;
        }
        match http_token(new) {
            Ok(token) => {
                started.access.replace(http::Access {
                    token: Some(token),
                    read_token: new.http.as_ref().and_then(read_token),
                });
                info!("[http] tokens changed: the new ones apply from the next request");
            }
            Err(e) => {
                warn!(error = %e, "[http] tokens not changed: the old ones stay");
                return;
            }
        }
    }
    // What is in effect now: the new tokens, the old listener.
    let effective = current.get_or_insert_with(Default::default);
    effective.token = next.token;
    effective.token_env = next.token_env;
    effective.read_token_env = next.read_token_env;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_token_of_an_earlier_run_is_kept_while_it_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_path_buf();
        let first = http_token(&config).unwrap();
        let path = dir.path().join("http-token");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(http_token(&config).unwrap().expose(), first.expose());
        // Readable by others: not trusted, replaced.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_ne!(http_token(&config).unwrap().expose(), first.expose());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the new token is private again");
    }
}
