//! The simulator checks a `<message>`'s addressing as the server does before it fans it out
//! (PROTOCOL-MESSAGING.md §3.5, §3.6), over real sockets: a copy for a device the sender was
//! never told about (no usync), one device addressed twice (also once by phone number and
//! once by LID), or a pkmsg without `<device-identity>` is refused whole with error 479 and
//! nothing reaches the recipient; the same text addressed properly then goes through once.
//! Its ack carries the `phash` of the device lists it fanned out to.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::relay_peer::Peer;
use wasp::sim::{Server, SimConfig};
use wasp::wa::jid::Jid;
use wasp::wa::messaging::stanza::participant_hash;

const A: &str = "15550501111";
const P: &str = "15550502222";

#[tokio::test]
async fn bad_addressing_is_refused_whole_with_479_and_good_addressing_passes_once() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    sim.create_account(P).unwrap();
    let mut a = Peer::new(&sim, A).await;
    let phone = Jid::pn(P);

    // Never told: a bundle fetch is not a usync, so A may not address P's phone yet.
    a.sessions_with(std::slice::from_ref(&phone)).await;
    let copies = a.encrypt_for(P, std::slice::from_ref(&phone), "unannounced");
    let out = a.outgoing(P, copies);
    assert_eq!(a.submit(&out).await.error, Some(479), "never told");

    // After a usync: P's phone and A's own phone.
    let devices = a.devices_of(P, false).await;
    assert_eq!(devices, [phone.clone(), Jid::pn(A)]);
    a.sessions_with(&devices).await;

    // The same device twice in one stanza.
    let twice = [phone.clone(), phone.clone()];
    let copies = a.encrypt_for(P, &twice, "twice");
    let out = a.outgoing(P, copies);
    assert_eq!(a.submit(&out).await.error, Some(479), "same JID twice");

    // The same device by phone number and by LID.
    let lid = a.devices_of(P, true).await[0].clone();
    assert!(lid.is_lid(), "{lid}");
    a.sessions_with(std::slice::from_ref(&lid)).await;
    let copies = a.encrypt_for(P, &[phone.clone(), lid], "both forms");
    let out = a.outgoing(P, copies);
    assert_eq!(
        a.submit(&out).await.error,
        Some(479),
        "PN and LID of one device"
    );

    // A pkmsg (no answer from P yet) without <device-identity>.
    let copies = a.encrypt_for(P, &devices, "no identity");
    assert!(copies.iter().all(|(_, e)| e.kind == "pkmsg"));
    let mut out = a.outgoing(P, copies);
    out.device_identity = None;
    assert_eq!(
        a.submit(&out).await.error,
        Some(479),
        "pkmsg without identity"
    );

    assert!(
        sim.messages(P).unwrap().is_empty(),
        "nothing of a refused stanza was routed"
    );
    let stats = sim.stats();
    assert_eq!(stats.messages_refused, 4, "{stats:?}");
    assert_eq!(stats.messages_relayed, 0, "{stats:?}");

    // Properly addressed, with the identity: delivered once, and the ack's phash is the
    // hash of both accounts' device lists (P's phone; A's phone and device 1).
    let copies = a.encrypt_for(P, &devices, "at last");
    let out = a.outgoing(P, copies);
    let ack = a.submit(&out).await;
    assert_eq!(ack.error, None);
    let expected = participant_hash(&[phone, Jid::pn(A), a.jid.clone()]);
    assert_eq!(ack.phash.as_deref(), Some(expected.as_str()));
    let got = sim.messages(P).unwrap();
    let texts: Vec<_> = got.iter().map(|m| m.text.clone().unwrap()).collect();
    assert_eq!(texts, ["at last"]);
    assert_eq!(got[0].id, out.id);
    sim.shutdown();
}
