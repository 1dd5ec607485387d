//! The client's answers to what the server pushes after login, against a small scripted
//! server on 127.0.0.1 (not the simulator): acks in the reference shape, `offline_batch`,
//! edge routing kept for the next dial, pre-keys uploaded 812 then refilled and stored, no
//! acks with the test switch (and the ack stream error shown as `stream_error_ack`), an
//! undecodable node skipped and counted, and a 405 cured by a reload with a new version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use wasp::session::status::StateName;
use wasp::store::keys::KeyStore;
use wasp::wa::node::Node;
use wasp::wa::payload::ClientVersion;
use wasp::wa::{ack, stanza};

use crate::scripted::{Log, OWN, PEER, pool, serve_node, serve_node_with, server, wait_until};

const ROUTING: &[u8] = &[0x08, 0x08, 0x02, 0x10, 0x05];

fn pushes() -> Vec<Node> {
    vec![
        Node::new("message")
            .attr("id", "M1")
            .attr("from", PEER)
            .attr("type", "text")
            .attr("t", "1700000000")
            .child(Node::new("enc").attr("type", "pkmsg").bytes(vec![1, 2, 3])),
        Node::new("receipt")
            .attr("id", "R1")
            .attr("from", "120363000@g.us")
            .attr("participant", PEER)
            .attr("recipient", "15559990000@s.whatsapp.net")
            .attr("type", "read"),
        Node::new("notification")
            .attr("id", "N1")
            .attr("from", "s.whatsapp.net")
            .attr("type", "encrypt")
            .attr("t", "1700000000")
            .child(Node::new("count").attr("value", "3")),
        Node::new("call").attr("id", "C1").attr("from", PEER),
        Node::new("ib").child(
            Node::new("offline_preview")
                .attr("count", "4")
                .attr("message", "1")
                .attr("notification", "1")
                .attr("receipt", "1")
                .attr("appdata", "0"),
        ),
        ack::edge_routing_node(ROUTING),
        Node::new("ib").child(Node::new("offline").attr("count", "4")),
    ]
}

fn attr<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get_attr(key)
}

fn ack_for<'a>(log: &'a Log, class: &str, id: &str) -> Option<&'a Node> {
    log.nodes
        .iter()
        .find(|n| n.tag == "ack" && attr(n, "class") == Some(class) && attr(n, "id") == Some(id))
}

/// The answers of the first test's connection: ack shapes, offline batch, uploads, routing.
fn check_answers(log: &Log) {
    let message = ack_for(log, "message", "M1").expect("message acked");
    let mut attrs = message.attrs.clone();
    attrs.sort();
    let mut want: Vec<(String, String)> = [
        ("class", "message"),
        ("from", OWN),
        ("id", "M1"),
        ("to", PEER),
        ("type", "text"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    want.sort();
    assert_eq!(attrs, want, "plain ack, no error attribute");
    let receipt = ack_for(log, "receipt", "R1").expect("receipt acked");
    assert_eq!(attr(receipt, "to"), Some("120363000@g.us"));
    assert_eq!(attr(receipt, "participant"), Some(PEER));
    assert_eq!(
        attr(receipt, "recipient"),
        Some("15559990000@s.whatsapp.net")
    );
    assert_eq!(attr(receipt, "from"), None);
    let notification = ack_for(log, "notification", "N1").expect("notification acked");
    assert_eq!(attr(notification, "type"), Some("encrypt"));
    assert_eq!(attr(notification, "to"), Some("s.whatsapp.net"));
    assert!(ack_for(log, "call", "C1").is_some(), "call acked");
    let batch = log
        .nodes
        .iter()
        .find_map(|n| n.get_child("offline_batch"))
        .expect("offline_batch sent");
    assert_eq!(attr(batch, "count"), Some("100"));
    assert!(
        log.nodes.iter().all(|n| attr(n, "error").is_none()),
        "never a nack"
    );

    // 812 at login (the server had none), then 50 for the encrypt notification's count of
    // 3, never the same id twice.
    let mut sizes: Vec<usize> = log.uploads.iter().map(Vec::len).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 812]);
    let mut ids: Vec<u32> = log.uploads.iter().flatten().copied().collect();
    ids.sort();
    assert_eq!(ids, (1..=862).collect::<Vec<_>>());

    // The next dial starts with the edge routing: "ED", 0, 1, 3-byte length, bytes, header.
    let intro = &log.intros[0];
    let mut want = b"ED\x00\x01".to_vec();
    want.extend_from_slice(&(ROUTING.len() as u32).to_be_bytes()[1..]);
    want.extend_from_slice(ROUTING);
    want.extend_from_slice(b"WA\x06\x03");
    assert!(intro.starts_with(&want), "intro {intro:02x?}");
}

#[tokio::test]
async fn pushes_are_acked_routing_is_kept_and_prekeys_are_uploaded_and_stored() {
    let srv = server(
        |_, mut socket, log| async move {
            socket
                .send_node(&stanza::success(Some("99:3@lid"), 1))
                .await
                .unwrap();
            // The encrypt notification (N1) comes once the first upload is answered: peers
            // took all but 3 meanwhile, as the count answers from then on say.
            let (encrypt, others): (Vec<Node>, Vec<Node>) = pushes()
                .into_iter()
                .partition(|n| n.get_attr("id") == Some("N1"));
            for push in others {
                socket.send_node(&push).await.unwrap();
            }
            let mut encrypt = encrypt.into_iter();
            // Serve until both uploads and every answer arrived, then ask for a restart.
            loop {
                let uploaded = !log.lock().unwrap().uploads.is_empty();
                if uploaded && let Some(note) = encrypt.next() {
                    socket.send_node(&note).await.unwrap();
                }
                let done = {
                    let l = log.lock().unwrap();
                    l.uploads.len() == 2
                        && ["M1", "R1", "N1", "C1"].iter().all(|id| {
                            l.nodes
                                .iter()
                                .any(|n| n.tag == "ack" && attr(n, "id") == Some(id))
                        })
                        && l.nodes
                            .iter()
                            .any(|n| n.get_child("offline_batch").is_some())
                        && l.nodes.iter().any(|n| n.get_child("active").is_some())
                };
                if done {
                    break;
                }
                let count = if uploaded { 3 } else { 0 };
                if serve_node(&mut socket, &log, count).await.is_none() {
                    return;
                }
            }
            let _ = socket.send_node(&stanza::stream_error(515)).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        },
        true,
    )
    .await;
    let (pool, _) = pool(&srv, true, None);
    wait_until("the redial after 515", || {
        !srv.log.lock().unwrap().intros.is_empty()
    })
    .await;

    check_answers(&srv.log.lock().unwrap());

    // Stored durably, all confirmed.
    let keys = KeyStore::in_data_dir(&pool.path());
    let counts = tokio::task::spawn_blocking(move || keys.counts("c1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        (counts.stored, counts.uploaded, counts.next_id),
        (862, 862, 863)
    );
    let metrics = &pool.running.handle.metrics;
    assert_eq!(metrics.prekeys_uploaded.get(), 862);
    assert!(metrics.acks_sent.get() >= 4);
}

/// Where the upload of 50 keys is in the log, and whether a count query came after it.
fn upload_then_count(log: &Log) -> Option<(usize, bool)> {
    let is_upload = |n: &Node| n.tag == "iq" && n.get_child("list").is_some();
    let at = log.nodes.iter().position(is_upload)?;
    let asked = log.nodes[at..]
        .iter()
        .any(|n| n.tag == "iq" && n.get_child("count").is_some());
    Some((at, asked))
}

#[tokio::test]
async fn a_login_count_and_a_queued_encrypt_notification_refill_once() {
    // The server holds 2 keys; its queued low-count notification arrives with <success>.
    let srv = server(
        |_, mut socket, log| async move {
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            let note = Node::new("notification")
                .attr("id", "N2")
                .attr("from", "s.whatsapp.net")
                .attr("type", "encrypt")
                .attr("offline", "1")
                .child(Node::new("count").attr("value", "2"));
            socket.send_node(&note).await.unwrap();
            loop {
                let count = 2 + 50 * log.lock().unwrap().uploads.len() as u32;
                if serve_node(&mut socket, &log, count).await.is_none() {
                    return;
                }
            }
        },
        false,
    )
    .await;
    let (_pool, _) = pool(&srv, true, None);
    // Done when the upload is followed by a count (the stale one asked again, or the
    // login's own) and the notification is acked.
    wait_until("a count after the upload, the notification acked", || {
        let log = srv.log.lock().unwrap();
        ack_for(&log, "notification", "N2").is_some()
            && upload_then_count(&log).is_some_and(|(_, asked)| asked)
    })
    .await;
    let log = srv.log.lock().unwrap();
    let sizes: Vec<usize> = log.uploads.iter().map(Vec::len).collect();
    assert_eq!(sizes, [50], "one refill for one low count");
}

#[tokio::test]
async fn without_acks_the_ack_stream_error_is_shown_as_itself() {
    let srv = server(
        |index, mut socket, log| async move {
            if index > 0 {
                // Later logins: stay quiet.
                while serve_node(&mut socket, &log, 812).await.is_some() {}
                return;
            }
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            socket.send_node(&pushes()[0]).await.unwrap();
            // A server ping: its answer comes after any ack the client would send.
            let ping = Node::new("iq")
                .attr("id", "sp1")
                .attr("type", "get")
                .attr("xmlns", "urn:xmpp:ping")
                .attr("from", "s.whatsapp.net");
            socket.send_node(&ping).await.unwrap();
            loop {
                let Some(node) = serve_node(&mut socket, &log, 812).await else {
                    return;
                };
                if node.tag == "iq" && attr(&node, "id") == Some("sp1") {
                    break;
                }
            }
            let _ = socket.send_node(&stanza::stream_error_ack("M1")).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        },
        false,
    )
    .await;
    let (pool, _) = pool(&srv, false, None);
    let mut seen = None;
    wait_until("the ack stream error", || {
        seen = pool.status();
        seen.as_ref()
            .is_some_and(|s| s.last_cause.as_deref() == Some("stream_error_ack"))
    })
    .await;
    let status = seen.unwrap();
    assert_eq!(status.last_code, Some(500));
    let entry = status
        .timeline
        .iter()
        .rev()
        .find(|e| e.cause == "stream_error_ack")
        .unwrap();
    assert!(entry.detail.contains("<ack id=M1/>"), "{}", entry.detail);
    let log = srv.log.lock().unwrap();
    assert!(
        log.nodes.iter().all(|n| n.tag != "ack"),
        "the switch sends no ack"
    );
}

#[tokio::test]
async fn an_undecodable_node_is_skipped_counted_and_the_link_goes_on() {
    let srv = server(
        |_, mut socket, log| async move {
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            // Decrypts fine, but is not a node: a list marker with an impossible size.
            socket.send_plain(&[0x00, 0xf8, 0xff, 0xff]).await.unwrap();
            socket.send_node(&pushes()[3]).await.unwrap();
            while serve_node(&mut socket, &log, 812).await.is_some() {}
        },
        false,
    )
    .await;
    let (pool, _) = pool(&srv, true, None);
    wait_until("the call after the bad frame acked", || {
        ack_for(&srv.log.lock().unwrap(), "call", "C1").is_some()
    })
    .await;
    let metrics = &pool.running.handle.metrics;
    assert_eq!(metrics.undecodable_nodes.get(), 1);
    let text = metrics.render(&[]);
    assert!(text.contains("wasp_undecodable_nodes_total 1"), "{text}");
    let status = pool.wait_state(StateName::Online).await;
    assert!(status.liveness.last_frame_at.is_some());
}

#[tokio::test]
async fn a_refused_version_is_named_and_a_reload_with_a_newer_one_brings_it_online() {
    let min = ClientVersion::new(2, 3000, 100);
    let srv = server(
        move |_, mut socket, log| async move {
            let version = *log.lock().unwrap().versions.last().unwrap();
            if version < min {
                let _ = socket
                    .send_node(&stanza::failure(405, &[("location", "frc")]))
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            while serve_node(&mut socket, &log, 812).await.is_some() {}
        },
        false,
    )
    .await;
    let old = ClientVersion::new(2, 3000, 5);
    let (pool, mut config) = pool(&srv, true, Some(old));
    let failed = pool.wait_state(StateName::Failed).await;
    assert!(failed.reason.contains("2.3000.5"), "{}", failed.reason);
    assert!(
        failed.reason.contains("client_version in [server]"),
        "{}",
        failed.reason
    );
    assert_eq!(failed.client_version, "2.3000.5");

    config.server.client_version = Some(ClientVersion::new(2, 3000, 200));
    pool.running.reload.send(config).await.unwrap();
    let online = pool.wait_state(StateName::Online).await;
    assert_eq!(online.client_version, "2.3000.200");
    assert_eq!(
        srv.log.lock().unwrap().versions.last(),
        Some(&ClientVersion::new(2, 3000, 200))
    );
}

#[tokio::test]
async fn iq_answers_count_as_received_frames_for_liveness() {
    // After <success> the server sends nothing of its own: only answers to our iqs.
    let srv = server(
        |_, mut socket, log| async move {
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            while serve_node(&mut socket, &log, 812).await.is_some() {}
        },
        false,
    )
    .await;
    let (pool, _) = pool(&srv, true, None);
    let mut seen = None;
    wait_until("a frame after the login", || {
        seen = pool.status();
        seen.as_ref().is_some_and(|s| {
            s.state() == StateName::Online
                && matches!((s.liveness.last_frame_at, s.online_since()), (Some(f), Some(o)) if f > o)
        })
    })
    .await;
}

#[tokio::test]
async fn keys_written_but_never_confirmed_are_uploaded_again_with_the_same_ids() {
    // First process: the server never confirms the upload. After the restart it does.
    let srv = server(
        |index, mut socket, log| async move {
            socket.send_node(&stanza::success(None, 1)).await.unwrap();
            while serve_node_with(&mut socket, &log, 0, index > 0)
                .await
                .is_some()
            {}
        },
        false,
    )
    .await;
    let (first, _) = pool(&srv, true, None);
    wait_until("the first upload", || {
        srv.log.lock().unwrap().uploads.len() == 1
    })
    .await;
    let second = first.restart(&srv).await;
    wait_until("the upload after the restart", || {
        srv.log.lock().unwrap().uploads.len() == 2
    })
    .await;
    let uploads = srv.log.lock().unwrap().uploads.clone();
    assert_eq!(uploads[0], (1..=812).collect::<Vec<_>>());
    assert_eq!(uploads[1], uploads[0], "the same slots again, no new ids");
    let keys = KeyStore::in_data_dir(&second.path());
    let mut counts = None;
    wait_until("the upload confirmed in the store", || {
        let c = keys.counts("c1").unwrap();
        counts = Some(c);
        c.uploaded == 812
    })
    .await;
    let counts = counts.unwrap();
    assert_eq!((counts.stored, counts.next_id), (812, 813));
}
