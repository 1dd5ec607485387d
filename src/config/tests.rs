//! Unit tests of sessions.toml parsing: defaults, overrides, and problems with positions.

use std::time::Duration;

use crate::session::policy::OnLogout;

use super::*;

fn ok(text: &str) -> Config {
    match parse(text, "t.toml") {
        Ok(config) => config,
        Err(errors) => panic!("unexpected problems:\n{errors}"),
    }
}

fn problems(text: &str) -> Vec<String> {
    match parse(text, "t.toml") {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(errors) => errors.lines(),
    }
}

const SPEC_EXAMPLE: &str = r#"
[server]
url = "wss://web.whatsapp.com/ws/chat"

[storage]
data_dir = "./wasp-data"

[policy]
keepalive_interval_min = "20s"
keepalive_interval_max = "30s"
keepalive_deadline = "10s"
dead_after = "60s"
connect_timeout = "20s"
query_timeout = "60s"
backoff_base = "1s"
backoff_cap = "60s"
backoff_jitter = 0.2
backoff_reset_after = "30s"
max_attempts_network = 20
max_attempts_server = 10
failed_probe_interval = "5m"
conflict_auto_retries = 0
conflict_cooldown = "60s"
on_logout = "wipe"
logout_cooldown = "5m"
backup_interval = "30m"
backup_stable_after = "5m"
backups_kept = 5

[limits]
connects_per_second = 5
connect_burst = 10
max_sessions = 5000

[http]
listen = "127.0.0.1:9464"
token_env = "WASP_HTTP_TOKEN"

[cluster]
redis_url = "redis://127.0.0.1:6379"
node_id = "host-a"
lease_ttl = "15s"
credentials = "file"

[[session]]
id = "sales-1"
label = "Sales line 1"
phone = "+15551234567"
autostart = true
"#;

#[test]
fn the_spec_example_means_the_spec_defaults() {
    let config = ok(SPEC_EXAMPLE);
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.storage, StorageConfig::default());
    assert_eq!(config.policy, Policy::default());
    assert_eq!(config.limits, Limits::default());
    let http = config.http.clone().unwrap();
    assert_eq!(http.listen, DEFAULT_HTTP_LISTEN);
    assert_eq!(http.token_env.as_deref(), Some("WASP_HTTP_TOKEN"));
    let cluster = config.cluster.clone().unwrap();
    assert_eq!(cluster.node_id, "host-a");
    assert_eq!(cluster.lease_ttl, Duration::from_secs(15));
    assert_eq!(cluster.credentials, CredentialStore::File);
    let session = config.session("sales-1").unwrap();
    assert_eq!(session.label, "Sales line 1");
    assert_eq!(session.phone.as_deref(), Some("+15551234567"));
    assert!(session.autostart);
    assert_eq!(session.policy, Policy::default());
}

#[test]
fn an_empty_file_is_the_default_config() {
    assert_eq!(ok(""), Config::default());
}

#[test]
fn a_session_override_changes_only_that_session() {
    let config = ok(r#"
[policy]
backoff_base = "2s"

[[session]]
id = "a"
backoff_cap = "2m"

[[session]]
id = "b"
"#);
    let a = &config.session("a").unwrap().policy;
    let b = &config.session("b").unwrap().policy;
    assert_eq!(a.backoff_cap, Duration::from_secs(120));
    assert_eq!(b.backoff_cap, Duration::from_secs(60));
    assert_eq!(config.policy.backoff_cap, Duration::from_secs(60));
    // Both inherit the global override they did not touch.
    assert_eq!(a.backoff_base, Duration::from_secs(2));
    assert_eq!(b.backoff_base, Duration::from_secs(2));
}

#[test]
fn every_kind_of_policy_key_can_be_overridden_per_session() {
    let config = ok(r#"
[[session]]
id = "a"
conflict_auto_retries = 2
backoff_jitter = 0
on_logout = "keep"
keepalive_deadline = "500ms"
"#);
    let policy = &config.sessions[0].policy;
    assert_eq!(policy.conflict_auto_retries, 2);
    assert_eq!(policy.backoff_jitter, 0.0);
    assert_eq!(policy.on_logout, OnLogout::Keep);
    assert_eq!(policy.keepalive_deadline, Duration::from_millis(500));
}

#[test]
fn a_session_without_label_is_labelled_by_its_id_and_does_not_autostart() {
    let config = ok("[[session]]\nid = \"support.2\"\n");
    assert_eq!(config.sessions[0].label, "support.2");
    assert!(!config.sessions[0].autostart);
    assert_eq!(config.sessions[0].phone, None);
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let lines = problems(
        "[policy]\nbackoff_cap = 60\nbakoff_base = \"1s\"\n\n[[session]]\nlabel = \"x\"\n",
    );
    assert_eq!(
        lines,
        [
            "t.toml:2:15: backoff_cap in [policy] must be a duration string such as \"30s\", found integer 60",
            "t.toml:3:1: unknown key bakoff_base in [policy]; did you mean backoff_base?",
            "t.toml:5:1: id in [[session]] number 1 is required but missing",
        ]
    );
}

#[test]
fn a_session_cap_below_the_global_base_is_reported_at_the_session() {
    let lines = problems(
        "[policy]\nbackoff_base = \"5s\"\n[[session]]\nid = \"a\"\nbackoff_cap = \"2s\"\n",
    );
    assert_eq!(
        lines,
        [
            "t.toml:5:15: backoff_cap in session \"a\" (2s) must not be shorter than backoff_base (5s)"
        ]
    );
}

#[test]
fn a_session_base_above_the_global_cap_is_reported_at_its_base() {
    let lines = problems("[[session]]\nid = \"a\"\nbackoff_base = \"2m\"\n");
    assert_eq!(
        lines,
        [
            "t.toml:3:16: backoff_base in session \"a\" (2m) must not be longer than backoff_cap (1m)"
        ]
    );
}

#[test]
fn a_bad_global_pair_is_reported_once_not_for_every_session() {
    let lines = problems(
        "[policy]\nkeepalive_interval_min = \"40s\"\n[[session]]\nid = \"a\"\n[[session]]\nid = \"b\"\n",
    );
    assert_eq!(
        lines,
        [
            "t.toml:2:26: keepalive_interval_min in [policy] (40s) must not be longer than keepalive_interval_max (30s)"
        ]
    );
}

#[test]
fn a_syntax_error_is_reported_at_its_position() {
    let lines = problems("[server]\nurl = wss://x\n");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("t.toml:2:7: the file is not valid TOML: "),
        "{lines:?}"
    );
}

#[test]
fn session_ids_must_be_safe_directory_names() {
    for id in ["a", "Sales-1", "x.y_z", &"a".repeat(64)] {
        assert_eq!(check_session_id(id), Ok(()), "{id}");
    }
    for id in ["", ".hidden", "..", "a/b", "a b", "é", &"a".repeat(65)] {
        assert!(check_session_id(id).is_err(), "{id:?}");
    }
    // The data directory's own files: a session directory of that name would clash.
    for id in [
        "keys.db",
        "sessions.lock",
        "http-token",
        "wasp.sock",
        "logs",
    ] {
        let refused = check_session_id(id).unwrap_err().to_string();
        assert!(refused.contains("wasp's own files"), "{refused}");
    }
    assert_eq!(check_session_id("keys.db2"), Ok(()));
}

#[test]
fn trust_root_is_a_32_byte_base64_key_with_or_without_padding() {
    let padded = format!("[server]\ntrust_root = \"{}=\"\n", "A".repeat(43));
    assert_eq!(ok(&padded).server.trust_root, Some([0; 32]));
    let unpadded = format!("[server]\ntrust_root = \"{}\"\n", "A".repeat(43));
    assert_eq!(ok(&unpadded).server.trust_root, Some([0; 32]));
}

#[test]
fn the_http_token_never_shows_in_debug_output() {
    let config = ok("[http]\ntoken = \"s3cret-value\"\n");
    let http = config.http.unwrap();
    assert!(!format!("{http:?}").contains("s3cret"));
    assert_eq!(
        http.bearer_token().map(|t| t.expose().to_string()),
        Some("s3cret-value".into())
    );
    assert!(
        http.token
            .as_ref()
            .is_some_and(|t| t.matches("s3cret-value"))
    );
    assert!(
        http.token
            .as_ref()
            .is_some_and(|t| !t.matches("s3cret-valuE"))
    );
}

#[test]
fn http_without_listen_binds_loopback() {
    let config = ok("[http]\n");
    assert_eq!(config.http.unwrap().listen, DEFAULT_HTTP_LISTEN);
    assert!(DEFAULT_HTTP_LISTEN.ip().is_loopback());
}

#[test]
fn server_identity_keys_have_defaults_and_are_checked() {
    let defaults = ok("");
    assert_eq!(defaults.server.client_version, None);
    assert!(defaults.server.discover_version);
    assert_eq!(defaults.server.device_name.to_string(), "Chrome (Windows)");

    let set = ok(concat!(
        "[server]\n",
        "client_version = \"2.3000.1045649367\"\n",
        "discover_version = false\n",
        "device_name = \"Firefox (Mac OS)\"\n",
    ));
    assert_eq!(
        set.server.client_version,
        Some(crate::wa::payload::ClientVersion::new(
            2,
            3000,
            1_045_649_367
        ))
    );
    assert!(!set.server.discover_version);
    assert_eq!(set.server.device_name.to_string(), "Firefox (Mac OS)");

    let lines = problems(concat!(
        "[server]\n",
        "client_version = \"2.2400.7\"\n",
        "discover_version = \"yes\"\n",
        "device_name = \"wasp\"\n",
    ));
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0]
            .starts_with("t.toml:2:18: client_version in [server] must be a WhatsApp Web version"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("t.toml:3:20: discover_version in [server] must be true or false"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("t.toml:4:15: device_name in [server] is not a device name"),
        "{lines:?}"
    );
    let choices = problems("[server]\ndevice_name = \"Lynx (Windows)\"\n");
    assert!(
        choices[0].contains("Chrome, Firefox, Safari"),
        "{choices:?}"
    );
    let os = problems("[server]\ndevice_name = \"Chrome (Plan9)\"\n");
    assert!(os[0].contains("Windows, Mac OS, Linux"), "{os:?}");
}

#[test]
fn http_connection_limits_are_read_and_checked() {
    let http = ok("[http]\nmax_connections = 64\nreserve_connections = 4\nheader_timeout = \"5s\"\nidle_timeout = \"2m\"\n")
        .http
        .unwrap();
    assert_eq!((http.max_connections, http.reserve_connections), (64, 4));
    assert_eq!(http.header_timeout, Duration::from_secs(5));
    assert_eq!(http.idle_timeout, Duration::from_secs(120));
    assert_eq!(http.connection_budget(), 68);
    let defaults = ok("[http]\n").http.unwrap();
    assert_eq!(defaults.connection_budget(), 256 + 16);
    let found = problems("[http]\nmax_connections = 0\nidle_timeout = \"0s\"\n");
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn a_read_token_variable_is_named_in_http() {
    let http = ok("[http]\nread_token_env = \"WASP_READ_TOKEN\"\n")
        .http
        .unwrap();
    assert_eq!(http.read_token_env.as_deref(), Some("WASP_READ_TOKEN"));
    assert_eq!(problems("[http]\nread_token_env = \" \"\n").len(), 1);
}
