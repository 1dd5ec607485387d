//! Tests of the typed stanzas: every row of PROTOCOL.md section 7, classification and builders.

#![allow(clippy::expect_used)] // a failed expect is a failed test

use super::*;
use crate::wa::node::{decode, encode};

fn xml(node: &Node) -> String {
    format!("{node:?}")
}

/// Every row of PROTOCOL.md section 7 that a node announces, with its cause and code,
/// checked on the node as built and after a trip through the codec.
#[test]
fn every_ending_stanza_maps_to_its_cause_and_code() {
    let rows: Vec<(Node, Cause, u16)> = vec![
        (conflict_replaced(), Cause::Conflict, 440),
        (device_removed(), Cause::LoggedOut, 401),
        (failure(401, &[]), Cause::LoggedOut, 401),
        (stream_error(515), Cause::RestartRequired, 515),
        (stream_error(503), Cause::Server(503), 503),
        (stream_error(500), Cause::Server(500), 500),
        (failure(403, &[]), Cause::Locked, 403),
        (failure(406, &[]), Cause::Banned, 406),
        (
            failure(402, &[("code", "101"), ("expire", "3600")]),
            Cause::TempBanned {
                expires_s: Some(3600),
            },
            402,
        ),
        (
            failure(402, &[]),
            Cause::TempBanned { expires_s: None },
            402,
        ),
        (
            failure(405, &[("location", "frc")]),
            Cause::ClientOutdated,
            405,
        ),
        (downgrade_webclient(), Cause::Mismatch, 411),
        (xmlstreamend(), Cause::Closed, 428),
        // A code attribute wins over the child.
        (
            stream_error(515).child(Node::new("conflict").attr("type", "replaced")),
            Cause::RestartRequired,
            515,
        ),
        // device_removed without a code is still a logout.
        (
            Node::new("stream:error").child(Node::new("conflict").attr("type", "device_removed")),
            Cause::LoggedOut,
            401,
        ),
        // A code-less error's child tag is the cause, reported as 500.
        (
            Node::new("stream:error").child(Node::new("xml-not-well-formed")),
            Cause::StreamError {
                child: "xml-not-well-formed".into(),
                id: None,
            },
            500,
        ),
        (
            stream_error_ack("3EB0X"),
            Cause::StreamError {
                child: "ack".into(),
                id: Some("3EB0X".into()),
            },
            500,
        ),
        // Unknown codes stay themselves.
        (stream_error(516), Cause::Server(516), 516),
        (stream_error(999), Cause::Server(999), 999),
        (Node::new("stream:error"), Cause::Server(500), 500),
        // 409: the user agent was refused.
        (failure(409, &[]), Cause::UserAgentRejected, 409),
        // Unknown failure reasons keep their number.
        (failure(417, &[]), Cause::UnknownFailure(417), 417),
    ];
    for (node, cause, code) in rows {
        assert_eq!(end_cause(&node), Some(cause.clone()), "{node:?}");
        assert_eq!(cause.code(), code, "{node:?}");
        let back = decode(&encode(&node).expect("encode")).expect("decode");
        assert_eq!(end_cause(&back), Some(cause), "{node:?} after the wire");
    }
}

/// The rows of section 7 that no node announces: the socket closing and timeouts.
#[test]
fn causes_without_a_stanza_report_their_codes() {
    assert_eq!(Cause::Closed.code(), 428);
    assert_eq!(Cause::TimedOut("keepalive unanswered".into()).code(), 408);
    assert_eq!(Cause::Protocol("bad frame".into()).code(), 500);
    assert_eq!(Cause::Network("connection refused".into()).code(), 408);
    assert_eq!(Cause::Payload("bad phone".into()).code(), 500);
}

/// What operators see: the server's own words, not a flattened 500.
#[test]
fn causes_are_named_after_what_the_server_said() {
    let shown = |node: Node| end_cause(&node).expect("ends").to_string();
    assert_eq!(
        shown(stream_error_ack("A1")),
        "stream_error_ack (500): <ack id=A1/>"
    );
    assert_eq!(
        shown(Node::new("stream:error").child(Node::new("xml-not-well-formed"))),
        "stream_error_xml_not_well_formed (500): <xml-not-well-formed/>"
    );
    assert_eq!(
        shown(Node::new("stream:error").child(Node::new("bad-format"))),
        "stream_error (500): <bad-format/>"
    );
    assert_eq!(shown(stream_error(516)), "server_error (516)");
    assert_eq!(shown(failure(409, &[])), "user_agent_rejected (409)");
    assert_eq!(
        Cause::Network("failed to lookup address information".into()).to_string(),
        "network_error (408): failed to lookup address information"
    );
}

#[test]
fn ordinary_stanzas_do_not_end_the_connection() {
    for node in [
        success(Some("1@lid"), 1),
        ping("1"),
        Node::new("ib").child(Node::new("offline").attr("count", "3")),
        Node::new("failurex"),
    ] {
        assert_eq!(end_cause(&node), None, "{node:?}");
    }
}

#[test]
fn a_failure_without_a_reason_is_a_protocol_error() {
    let cause = end_cause(&Node::new("failure")).expect("ends");
    assert!(matches!(cause, Cause::Protocol(_)), "{cause:?}");
    assert_eq!(cause.code(), 500);
}

#[test]
fn builders_produce_the_shapes_of_protocol_md() {
    let refs: Vec<String> = vec!["2@AAA".into(), "2@BBB".into()];
    let cases = [
        (
            ping("7"),
            r#"<iq id="7" to="s.whatsapp.net" type="get" xmlns="w:p"><ping/></iq>"#,
        ),
        (
            iq_result("7"),
            r#"<iq type="result" id="7" to="s.whatsapp.net"/>"#,
        ),
        (
            iq_error("7", 401, "not-authorized"),
            r#"<iq type="error" id="7" to="s.whatsapp.net"><error code="401" text="not-authorized"/></iq>"#,
        ),
        (
            prekey_count_query("8"),
            r#"<iq id="8" xmlns="encrypt" type="get" to="s.whatsapp.net"><count/></iq>"#,
        ),
        (
            passive_active("9"),
            r#"<iq id="9" xmlns="passive" type="set" to="s.whatsapp.net"><active/></iq>"#,
        ),
        (
            pair_device("10", &refs),
            r#"<iq from="s.whatsapp.net" type="set" id="10" xmlns="md"><pair-device><ref>[5 bytes]</ref><ref>[5 bytes]</ref></pair-device></iq>"#,
        ),
        (stream_error(515), r#"<stream:error code="515"/>"#),
        (
            conflict_replaced(),
            r#"<stream:error><conflict type="replaced"/></stream:error>"#,
        ),
        (
            device_removed(),
            r#"<stream:error code="401"><conflict type="device_removed"/></stream:error>"#,
        ),
        (
            failure(405, &[("location", "frc")]),
            r#"<failure reason="405" location="frc"/>"#,
        ),
        (xmlstreamend(), "<xmlstreamend/>"),
        (
            success(Some("123456789012345@lid"), 1_700_000_000),
            r#"<success t="1700000000" lid="123456789012345@lid"/>"#,
        ),
        (success(None, 5), r#"<success t="5"/>"#),
        (downgrade_webclient(), "<ib><downgrade_webclient/></ib>"),
    ];
    for (node, want) in cases {
        assert_eq!(xml(&node), want);
    }
}

fn through_wire(node: Node) -> Incoming {
    classify(decode(&encode(&node).expect("encode")).expect("decode"))
}

#[test]
fn classify_sorts_what_the_server_sends() {
    let refs: Vec<String> = (1..=6).map(|i| format!("2@ref{i},XYZ")).collect();
    assert_eq!(
        through_wire(pair_device("p1", &refs)),
        Incoming::PairDevice {
            id: "p1".into(),
            refs: refs.clone()
        }
    );

    let pair_success = Node::new("pair-success")
        .child(Node::new("device-identity").bytes(vec![1, 2, 3]))
        .child(Node::new("device").attr("jid", "15551234567:12@s.whatsapp.net"));
    let iq = Node::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("id", "p2")
        .attr("xmlns", "md")
        .child(pair_success);
    assert_eq!(
        through_wire(iq.clone()),
        Incoming::PairSuccess {
            id: "p2".into(),
            node: iq
        }
    );

    assert_eq!(
        through_wire(success(Some("99@lid"), 12)),
        Incoming::Success {
            lid: Some("99@lid".into()),
            t: Some("12".into())
        }
    );

    let result = Node::new("iq")
        .attr("from", SERVER)
        .attr("type", "result")
        .attr("id", "q1")
        .child(Node::new("count").attr("value", "30"));
    assert_eq!(
        through_wire(result.clone()),
        Incoming::IqResult {
            id: "q1".into(),
            node: result
        }
    );

    assert_eq!(
        through_wire(iq_error("q2", 404, "item-not-found")),
        Incoming::IqError {
            id: "q2".into(),
            code: 404,
            text: "item-not-found".into()
        }
    );

    let server_ping = Node::new("iq")
        .attr("from", SERVER)
        .attr("id", "s1")
        .attr("type", "get")
        .attr("xmlns", "urn:xmpp:ping");
    assert_eq!(
        through_wire(server_ping),
        Incoming::Ping { id: "s1".into() }
    );

    assert_eq!(
        through_wire(stream_error(515)),
        Incoming::End(Cause::RestartRequired)
    );
    assert_eq!(
        through_wire(downgrade_webclient()),
        Incoming::End(Cause::Mismatch)
    );

    let offline = Node::new("ib").child(Node::new("offline").attr("count", "4"));
    assert_eq!(through_wire(offline.clone()), Incoming::Ib(offline));

    let note = Node::new("notification")
        .attr("from", SERVER)
        .attr("type", "encrypt")
        .child(Node::new("count").attr("value", "5"));
    assert_eq!(through_wire(note.clone()), Incoming::Notification(note));

    // A client keepalive is not a server ping; other iqs and messages are Other.
    let keepalive = ping("k1");
    assert_eq!(through_wire(keepalive.clone()), Incoming::Other(keepalive));
    let receipt = Node::new("receipt").attr("id", "r1");
    assert_eq!(through_wire(receipt.clone()), Incoming::Other(receipt));
}

#[test]
fn an_iq_error_without_details_reports_code_zero() {
    let bare = Node::new("iq").attr("type", "error").attr("id", "e1");
    assert_eq!(
        classify(bare),
        Incoming::IqError {
            id: "e1".into(),
            code: 0,
            text: String::new()
        }
    );
}
