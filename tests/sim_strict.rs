//! The simulator as strict as WhatsApp (issue 11), against a small acking test client over
//! real sockets: pushed traffic and its acks (redelivery, the `<stream:error><ack/>`),
//! truthful pre-key counts and checked uploads, the low-count `encrypt` notification, the
//! lowest client version (405), the device-name check (409), the `ED` routing prefix, and
//! pending stanzas surviving a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::sim_client;

use std::time::Duration;

use crate::sim_client::{
    drain, own_jid, pair_new, prekey_upload, raw_connect, raw_login, raw_query, recv, target,
};
use wasp::net::conn::{ClientHandshake, client_handshake};
use wasp::net::transport;
use wasp::sim::{Handle, Server, SimConfig, Stats, Strictness};
use wasp::wa::creds::Credentials;
use wasp::wa::node::Node;
use wasp::wa::payload::{self, ClientVersion};
use wasp::wa::stanza;

async fn start(strict: Strictness) -> Handle {
    let config = SimConfig {
        strict,
        ..SimConfig::default()
    };
    Server::start(config).await.unwrap()
}

/// Waits until `done` holds on the stats (bounded by a deadline, not a timing assertion).
async fn until(sim: &Handle, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = sim.stats();
        if done(&stats) {
            return stats;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what} never happened: {stats:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn child<'a>(node: &'a Node, tag: &str) -> &'a Node {
    node.get_child(tag)
        .unwrap_or_else(|| panic!("no <{tag}> in {node:?}"))
}

fn is_pushed(node: &Node) -> bool {
    wasp::wa::ack::ACKED_TAGS.contains(&node.tag.as_str())
}

#[tokio::test]
async fn a_new_device_gets_the_login_burst_and_an_unacked_stanza_comes_back_first() {
    let sim = start(Strictness::default()).await;
    let creds = pair_new(&sim, None).await;
    let own = own_jid(&creds);
    let mut socket = raw_login(&target(&sim), &creds).await;
    // Everything but the peer's read receipt is acknowledged.
    let seen = drain(&mut socket, &own, |n| n.tag != "receipt").await;
    let tags: Vec<&str> = seen.iter().map(|n| n.tag.as_str()).collect();
    assert_eq!(
        tags,
        [
            "ib",
            "message",
            "message",
            "message",
            "notification",
            "ib",
            "ib",
            "notification",
            "receipt"
        ]
    );
    let preview = child(&seen[0], "offline_preview");
    assert_eq!(preview.get_attr("count"), Some("4"));
    assert_eq!(preview.get_attr("message"), Some("3"));
    // The phone's history and keys: from the primary device, peer, an opaque pkmsg, offline.
    let phone = own.split(':').next().unwrap();
    for m in &seen[1..4] {
        assert_eq!(
            m.get_attr("from"),
            Some(format!("{phone}@s.whatsapp.net").as_str())
        );
        assert_eq!(m.get_attr("category"), Some("peer"));
        assert_eq!(m.get_attr("offline"), Some("1"));
        let enc = child(m, "enc");
        assert_eq!(
            (enc.get_attr("v"), enc.get_attr("type")),
            (Some("2"), Some("pkmsg"))
        );
    }
    assert_eq!(seen[4].get_attr("type"), Some("devices"));
    assert_eq!(child(&seen[5], "offline").get_attr("count"), Some("4"));
    let routing = child(child(&seen[6], "edge_routing"), "routing_info");
    assert!(routing.content_bytes().is_some_and(|b| !b.is_empty()));
    assert_eq!(seen[7].get_attr("type"), Some("account_sync"));
    let receipt_id = seen[8].get_attr("id").unwrap().to_string();
    let stats = sim.stats();
    let device = &stats.devices[&own];
    assert_eq!((device.acks_received, device.unacked), (5, 1));
    drop(socket);
    until(&sim, "the logout", |s| s.logged_in == 0).await;

    // The next login: the unacked receipt is the first stanza of the offline queue.
    let mut socket = raw_login(&target(&sim), &creds).await;
    let seen = drain(&mut socket, &own, |_| true).await;
    let preview = child(&seen[0], "offline_preview");
    assert_eq!(
        (preview.get_attr("count"), preview.get_attr("receipt")),
        (Some("1"), Some("1"))
    );
    assert_eq!(seen[1].tag, "receipt");
    assert_eq!(seen[1].get_attr("id"), Some(receipt_id.as_str()));
    assert_eq!(seen[1].get_attr("offline"), Some("1"));
    assert_eq!(child(&seen[2], "offline").get_attr("count"), Some("1"));
    // No history the second time.
    assert!(!seen.iter().any(|n| n.tag == "message"));
    let stats = sim.stats();
    assert_eq!(stats.devices[&own].unacked, 0);
    assert_eq!(stats.stream_errors_ack, 0);
}

#[tokio::test]
async fn three_overdue_acks_end_the_stream_naming_the_first() {
    let sim = start(Strictness {
        ack_timeout: Duration::from_millis(300),
        ..Strictness::default()
    })
    .await;
    let creds = pair_new(&sim, None).await;
    let own = own_jid(&creds);
    let mut socket = raw_login(&target(&sim), &creds).await;
    let mut first_pushed = None;
    let end = loop {
        let node = recv(&mut socket).await;
        if node.tag == "stream:error" {
            break node;
        }
        if is_pushed(&node) && first_pushed.is_none() {
            first_pushed = node.get_attr("id").map(str::to_string);
        }
    };
    let ack = child(&end, "ack");
    assert_eq!(ack.get_attr("id"), first_pushed.as_deref());
    let stats = until(&sim, "the logout", |s| s.logged_in == 0).await;
    assert_eq!(stats.stream_errors_ack, 1);
    let device = &stats.devices[&own];
    assert_eq!(device.stream_errors_ack, 1);
    assert_eq!((device.acks_received, device.unacked), (0, 6));
}

#[tokio::test]
async fn a_client_that_acks_everything_has_nothing_unacked_and_no_stream_error() {
    let sim = start(Strictness {
        ack_timeout: Duration::from_millis(300),
        ..Strictness::default()
    })
    .await;
    let creds = pair_new(&sim, None).await;
    // The load generator's login acks the whole burst.
    let mut socket = wasp::sim::load::login(&target(&sim), &creds).await.unwrap();
    let own = own_jid(&creds);
    // Well past the ack timeout the connection is still served.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(drain(&mut socket, &own, |_| true).await.is_empty());
    let stats = sim.stats();
    let device = &stats.devices[&own];
    assert_eq!((device.acks_received, device.unacked), (6, 0));
    assert_eq!((stats.stream_errors_ack, stats.logged_in), (0, 1));
}

#[tokio::test]
async fn pre_key_counts_are_truthful_and_uploads_are_checked() {
    let sim = start(Strictness::default()).await;
    let creds = pair_new(&sim, None).await;
    let own = own_jid(&creds);
    let mut socket = raw_login(&target(&sim), &creds).await;
    let count = |answer: Node| {
        child(&answer, "count")
            .get_attr("value")
            .unwrap()
            .to_string()
    };
    let answer = raw_query(&mut socket, &own, stanza::prekey_count_query("c1")).await;
    assert_eq!(count(answer), "0");
    let answer = raw_query(&mut socket, &own, prekey_upload("u1", &creds, 1..813)).await;
    assert_eq!(answer.get_attr("type"), Some("result"));
    let answer = raw_query(&mut socket, &own, stanza::prekey_count_query("c2")).await;
    assert_eq!(count(answer), "812");
    // A duplicate id replaces the old key.
    raw_query(&mut socket, &own, prekey_upload("u2", &creds, 800..820)).await;
    let answer = raw_query(&mut socket, &own, stanza::prekey_count_query("c3")).await;
    assert_eq!(count(answer), "819");

    // Malformed: signed by another identity, a two-byte id, a missing skey.
    let other = Credentials::generate();
    let mut bad = vec![prekey_upload("b1", &other, 1..3)];
    let mut short_id = prekey_upload("b2", &creds, 1..2);
    let list = Node::new("list").child(Node::new("key").children(vec![
        Node::new("id").bytes(vec![0, 1]),
        Node::new("value").bytes(vec![9; 32]),
    ]));
    short_id = replace(short_id, list);
    bad.push(short_id);
    let no_skey = prekey_upload("b3", &creds, 1..2);
    let children: Vec<Node> = no_skey
        .nodes()
        .iter()
        .filter(|c| c.tag != "skey")
        .cloned()
        .collect();
    bad.push(
        Node::new("iq")
            .attr("id", "b3")
            .attr("xmlns", "encrypt")
            .attr("type", "set")
            .children(children),
    );
    for upload in bad {
        let answer = raw_query(&mut socket, &own, upload).await;
        assert_eq!(answer.get_attr("type"), Some("error"), "{answer:?}");
        let error = child(&answer, "error");
        assert_eq!(
            (error.get_attr("code"), error.get_attr("text")),
            (Some("400"), Some("bad-request"))
        );
    }
    let stats = sim.stats();
    assert_eq!((stats.prekey_uploads, stats.prekey_uploads_refused), (2, 3));
    let device = &stats.devices[&own];
    assert_eq!((device.prekeys, device.prekey_uploads), (819, 2));
}

fn replace(node: Node, with: Node) -> Node {
    let children: Vec<Node> = node
        .nodes()
        .iter()
        .map(|c| {
            if c.tag == with.tag {
                with.clone()
            } else {
                c.clone()
            }
        })
        .collect();
    let mut out = Node::new(node.tag.clone()).children(children);
    out.attrs = node.attrs.clone();
    out
}

#[tokio::test]
async fn consuming_pre_keys_below_five_sends_the_encrypt_notification() {
    let config = SimConfig {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..SimConfig::default()
    };
    let sim = Server::start(config).await.unwrap();
    let admin = sim.admin_url.clone().unwrap();
    let creds = pair_new(&sim, None).await;
    let own = own_jid(&creds);
    let mut socket = raw_login(&target(&sim), &creds).await;
    drain(&mut socket, &own, |_| true).await;
    raw_query(&mut socket, &own, prekey_upload("u1", &creds, 1..813)).await;

    let body = format!(r#"{{"device": "{own}", "n": 800}}"#);
    let answer = common::request(&admin, "POST", "/admin/consume-prekeys", None, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["left"][&own], 12);
    // 12 left: no notification yet.
    assert!(drain(&mut socket, &own, |_| true).await.is_empty());
    let body = format!(r#"{{"device": "{own}", "n": 10}}"#);
    let answer = common::request(&admin, "POST", "/admin/consume-prekeys", None, &body).await;
    assert_eq!(answer.json()["left"][&own], 2);
    let note = recv(&mut socket).await;
    assert_eq!(note.tag, "notification");
    assert_eq!(
        (note.get_attr("from"), note.get_attr("type")),
        (Some("s.whatsapp.net"), Some("encrypt"))
    );
    assert_eq!(child(&note, "count").get_attr("value"), Some("2"));
    socket
        .send_node(&wasp::wa::ack::ack(&note, Some(&own)).unwrap())
        .await
        .unwrap();
    let stats = until(&sim, "the ack of the notification", |s| {
        s.devices[&own].unacked == 0
    })
    .await;
    assert_eq!(stats.devices[&own].prekeys, 2);
    // An unknown device is a 400 naming it.
    let answer = common::request(
        &admin,
        "POST",
        "/admin/consume-prekeys",
        None,
        r#"{"device": "1:1@s.whatsapp.net", "n": 1}"#,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.body.contains("1:1@s.whatsapp.net"),
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_version_below_the_minimum_gets_405_and_is_counted() {
    let sim = start(Strictness::default()).await;
    let creds = pair_new(&sim, None).await;
    // Raise the minimum above wasp's built-in version at run time.
    let above = ClientVersion::default();
    let patch = wasp::sim::StrictPatch {
        min_version: Some(format!(
            "{}.{}.{}",
            above.primary,
            above.secondary,
            above.tertiary + 1
        )),
        ..Default::default()
    };
    sim.set_strict(&patch).unwrap();
    let mut socket = raw_connect(&target(&sim), &creds).await;
    let failure = recv(&mut socket).await;
    assert_eq!(failure.tag, "failure");
    assert_eq!(failure.get_attr("reason"), Some("405"));
    assert!(failure.get_attr("location").is_some());
    // A registration is refused the same way.
    let mut socket = raw_connect(&target(&sim), &Credentials::generate()).await;
    assert_eq!(recv(&mut socket).await.get_attr("reason"), Some("405"));
    let stats = sim.stats();
    assert_eq!((stats.version_refused, stats.logins), (2, 0));
}

#[tokio::test]
async fn a_device_name_the_server_does_not_know_gets_409() {
    let sim = start(Strictness::default()).await;
    // wasp's registration before issue 11 said os "wasp" on a Desktop platform.
    let creds = Credentials::generate();
    let old = || {
        use prost::Message as _;
        let bytes = payload::registration_payload(&creds, &ClientVersion::default());
        let mut decoded = payload::decode_client_payload(&bytes).unwrap();
        let props = decoded.device_pairing_data.as_mut().unwrap();
        let mut device =
            wasp::wa::proto::payload::DeviceProps::decode(props.device_props.as_deref().unwrap())
                .unwrap();
        device.os = Some("wasp".into());
        device.platform_type = Some(wasp::wa::proto::payload::PlatformType::Desktop as i32);
        props.device_props = Some(device.encode_to_vec());
        decoded.encode_to_vec()
    };
    let mut socket = dial_with(&sim, &creds, old(), None).await;
    let failure = recv(&mut socket).await;
    assert_eq!(
        (failure.tag.as_str(), failure.get_attr("reason")),
        ("failure", Some("409"))
    );
    assert_eq!(sim.stats().device_name_refused, 1);
    // With the check off the same registration gets its QR refs.
    sim.set_strict(&wasp::sim::StrictPatch {
        check_device_name: Some(false),
        ..Default::default()
    })
    .unwrap();
    let mut socket = dial_with(&sim, &creds, old(), None).await;
    let refs = recv(&mut socket).await;
    assert!(refs.get_child("pair-device").is_some(), "{refs:?}");
    assert_eq!(sim.stats().device_name_refused, 1);
}

/// Dials with this payload and optional routing bytes in front of the header.
async fn dial_with(
    sim: &Handle,
    creds: &Credentials,
    payload: Vec<u8>,
    routing: Option<&[u8]>,
) -> wasp::sim::load::ClientSocket {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ws = transport::dial(&sim.ws_url, sim_client::WAIT)
        .await
        .unwrap();
    let handshake = ClientHandshake {
        noise: &creds.noise,
        payload,
        trust: &sim.trust_root,
        now_unix,
        routing,
    };
    client_handshake(ws, handshake).await.unwrap()
}

#[tokio::test]
async fn the_edge_routing_prefix_is_accepted_and_counted() {
    let sim = start(Strictness::default()).await;
    let creds = pair_new(&sim, None).await;
    let login = payload::login_payload(&creds, &ClientVersion::default()).unwrap();
    let routing = wasp::sim::pushes::ROUTING_INFO;
    let mut socket = dial_with(&sim, &creds, login, Some(&routing)).await;
    assert_eq!(recv(&mut socket).await.tag, "success");
    let stats = sim.stats();
    assert_eq!((stats.routed_dials, stats.logins), (1, 1));
}

#[tokio::test]
async fn pending_stanzas_survive_a_restart_of_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        state_file: Some(dir.path().join("sim.json")),
        ..SimConfig::default()
    };
    let sim = Server::start(config.clone()).await.unwrap();
    let creds = pair_new(&sim, None).await;
    let own = own_jid(&creds);
    let mut socket = raw_login(&target(&sim), &creds).await;
    // Only the account_sync notification stays unacknowledged.
    let seen = drain(&mut socket, &own, |n| {
        n.get_attr("type") != Some("account_sync")
    })
    .await;
    let kept = seen
        .iter()
        .find(|n| n.get_attr("type") == Some("account_sync"))
        .and_then(|n| n.get_attr("id"))
        .unwrap()
        .to_string();
    drop(socket);
    until(&sim, "the logout", |s| s.logged_in == 0).await;
    sim.shutdown();
    sim.stopped().await;

    let again = Server::start(config).await.unwrap();
    assert_eq!(again.stats().devices[&own].unacked, 1);
    let mut socket = raw_login(&target(&again), &creds).await;
    let seen = drain(&mut socket, &own, |_| true).await;
    assert_eq!(seen[1].get_attr("id"), Some(kept.as_str()));
    assert_eq!(seen[1].get_attr("offline"), Some("1"));
}

#[tokio::test]
async fn strictness_changes_over_admin_http() {
    let config = SimConfig {
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..SimConfig::default()
    };
    let sim = Server::start(config).await.unwrap();
    let admin = sim.admin_url.clone().unwrap();
    let answer = common::request(
        &admin,
        "POST",
        "/admin/strict",
        None,
        r#"{"pushes": false, "ack_timeout_ms": 500}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let now = answer.json();
    assert_eq!(now["pushes"], false);
    assert_eq!(now["ack_timeout_ms"], 500);
    assert_eq!(now["max_unacked"], 3);
    assert!(!sim.strictness().pushes);
    let answer = common::request(
        &admin,
        "POST",
        "/admin/strict",
        None,
        r#"{"min_version": "x"}"#,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("min_version"), "{}", answer.body);
    // With pushes off a login gets nothing after <success>.
    let creds = pair_new(&sim, None).await;
    let own = own_jid(&creds);
    let mut socket = raw_login(&target(&sim), &creds).await;
    assert!(drain(&mut socket, &own, |_| true).await.is_empty());
}

#[tokio::test]
async fn the_sim_command_line_switches_set_the_strictness() {
    let (mut child, line) = common::spawn_sim([
        "--min-version",
        "2.3000.7",
        "--ack-timeout",
        "300ms",
        "--no-pushes",
        "--no-ack-check",
        "--no-device-check",
    ]);
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let admin = ready["admin_url"].as_str().unwrap();
    // An empty patch changes nothing and answers every switch.
    let now = common::request(admin, "POST", "/admin/strict", None, "{}")
        .await
        .json();
    assert_eq!(now["min_version"], "2.3000.7");
    assert_eq!(now["ack_timeout_ms"], 300);
    assert_eq!(
        (
            &now["pushes"],
            &now["max_unacked"],
            &now["check_device_name"]
        ),
        (
            &serde_json::json!(false),
            &serde_json::json!(0),
            &serde_json::json!(false)
        )
    );
    assert_eq!(now["prekeys"], true);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    // A bad version is refused before the simulator starts, naming the flag.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasp"))
        .args(["sim", "--min-version", "two"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--min-version"), "{err}");
}
