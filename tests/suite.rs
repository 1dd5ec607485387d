//! Most integration tests, as modules of one test binary: one compile and one link
//! instead of one per file, and one harness that runs them two at a time across files.
//! The files that install a global log subscriber, re-run themselves as children by test
//! name, count the process's descriptors or keep insta snapshots under their own name
//! stay binaries of their own (Cargo.toml, `[[test]]`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/phones.rs"]
mod phones;
#[path = "common/proxies.rs"]
mod proxies;
#[path = "common/relay_peer.rs"]
mod relay_peer;
#[path = "common/scripted.rs"]
mod scripted;
#[path = "common/sim_client.rs"]
mod sim_client;
mod ui_support;

mod attach;
mod bench_messages;
mod bench_pool;
mod bench_soak;
mod client_pushes;
mod client_version;
mod cluster_console;
mod cluster_faults;
mod cluster_fleet;
mod cluster_keys;
mod cluster_lease;
mod cluster_move;
mod config_check;
mod conn_handshake;
mod fuzz_regressions;
mod headless_lock;
mod headless_reload;
mod http_hardening;
mod http_rows;
mod messages_api;
mod messages_client;
mod messages_e2e;
mod messages_reload;
mod messages_wire;
mod node_corpus;
mod node_props;
mod outbox_crash;
mod pool_e2e;
mod probe_e2e;
mod proxy_e2e;
mod session_props;
mod session_table;
mod sim_addressing;
mod sim_admin;
mod sim_load;
mod sim_pair_code;
mod sim_pairing;
mod sim_protocol;
mod sim_relay;
mod sim_strict;
mod sim_strict_soak;
mod sim_tls;
mod store_faults;
mod store_files;
mod store_storm;
mod strict_e2e;
mod ui_bench;
mod ui_keys;
mod ui_loop;
mod ui_pair_code;
mod ui_tmux;
mod webhook_delivery;
mod webhook_e2e;

/// With `autotests` off, a test file named neither here nor in `Cargo.toml` would silently not
/// be built: every `tests/*.rs` must be one or the other.
#[test]
fn every_test_file_is_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = std::fs::read_to_string(root.join("tests/suite.rs")).unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        let in_suite = suite.contains(&format!("\nmod {stem};\n"));
        let own_binary = manifest.contains(&format!("path = \"tests/{name}\""));
        if !in_suite && !own_binary {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "test files built by nothing (add each to tests/suite.rs or Cargo.toml): {missing:?}"
    );
}
