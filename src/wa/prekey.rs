//! One-time pre-keys on the wire (PROTOCOL-MESSAGING.md section 2): how many to upload for
//! a server count, the upload iq in its exact shape, and reading the count answer.

use crate::wa::creds::{Credentials, KEY_TYPE_DJB, KeyPair};
use crate::wa::node::Node;
use crate::wa::stanza::SERVER;

/// The first upload of a device (both reference clients).
pub const INITIAL_BATCH: u32 = 812;
/// A refill (whatsmeow's `WantedPreKeyCount`).
pub const REFILL_BATCH: u32 = 50;
/// Refill when the server holds fewer than this many.
pub const LOW_WATER: u32 = 5;
/// Pre-key ids are 24 bits on the wire.
pub const MAX_ID: u32 = 0x00FF_FFFF;

/// One one-time pre-key: its id and key pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKey {
    pub id: u32,
    pub key_pair: KeyPair,
}

/// How many keys to upload when the server says it holds `server_count`: 812 when it has
/// none, 50 when it has fewer than 5, none otherwise.
pub fn wanted(server_count: u32) -> Option<u32> {
    match server_count {
        0 => Some(INITIAL_BATCH),
        n if n < LOW_WATER => Some(REFILL_BATCH),
        _ => None,
    }
}

/// The `value` of the `<count>` in the answer to `stanza::prekey_count_query`.
pub fn count_of(answer: &Node) -> Option<u32> {
    answer.get_child("count")?.get_attr("value")?.parse().ok()
}

/// The low three bytes of an id, big-endian.
fn id_bytes(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// The upload iq:
/// `<iq id xmlns="encrypt" type="set" to="s.whatsapp.net"><registration>4 B</registration>
/// <type>05</type><identity>32 B</identity><list><key><id>3 B</id><value>32 B</value></key>..
/// </list><skey><id>3 B</id><value>32 B</value><signature>64 B</signature></skey></iq>`.
pub fn upload(id: &str, creds: &Credentials, keys: &[PreKey]) -> Node {
    let list = keys
        .iter()
        .map(|k| {
            Node::new("key").children(vec![
                Node::new("id").bytes(id_bytes(k.id)),
                Node::new("value").bytes(k.key_pair.public.to_vec()),
            ])
        })
        .collect();
    let spk = &creds.signed_pre_key;
    Node::new("iq")
        .attr("id", id)
        .attr("xmlns", "encrypt")
        .attr("type", "set")
        .attr("to", SERVER)
        .children(vec![
            Node::new("registration")
                .bytes(u32::from(creds.registration_id).to_be_bytes().to_vec()),
            Node::new("type").bytes(vec![KEY_TYPE_DJB]),
            Node::new("identity").bytes(creds.identity.public.to_vec()),
            Node::new("list").children(list),
            Node::new("skey").children(vec![
                Node::new("id").bytes(id_bytes(spk.id)),
                Node::new("value").bytes(spk.key_pair.public.to_vec()),
                Node::new("signature").bytes(spk.signature.to_vec()),
            ]),
        ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::wa::creds::SignedPreKey;
    use crate::wa::xeddsa;

    #[test]
    fn batch_sizes_follow_the_server_count() {
        assert_eq!(wanted(0), Some(812));
        assert_eq!(wanted(1), Some(50));
        assert_eq!(wanted(4), Some(50));
        assert_eq!(wanted(5), None);
        assert_eq!(wanted(812), None);
        let answer = Node::new("iq").child(Node::new("count").attr("value", "17"));
        assert_eq!(count_of(&answer), Some(17));
        assert_eq!(count_of(&Node::new("iq")), None);
    }

    #[test]
    fn upload_has_the_exact_shape() {
        let creds = Credentials::generate();
        let keys: Vec<PreKey> = (0x010203..0x010206)
            .map(|id| PreKey {
                id,
                key_pair: KeyPair::generate(),
            })
            .collect();
        let iq = upload("up.1", &creds, &keys);
        assert_eq!(iq.get_attr("xmlns"), Some("encrypt"));
        assert_eq!(iq.get_attr("type"), Some("set"));
        assert_eq!(iq.get_attr("to"), Some("s.whatsapp.net"));
        let tags: Vec<&str> = iq.nodes().iter().map(|n| n.tag.as_str()).collect();
        assert_eq!(tags, ["registration", "type", "identity", "list", "skey"]);
        let child = |t: &str| iq.get_child(t).unwrap().content_bytes().unwrap().to_vec();
        assert_eq!(child("registration").len(), 4);
        assert_eq!(child("type"), vec![5]);
        assert_eq!(child("identity"), creds.identity.public.to_vec());
        let list: Vec<&Node> = iq
            .get_child("list")
            .unwrap()
            .children_named("key")
            .collect();
        assert_eq!(list.len(), 3);
        let first = list[0];
        assert_eq!(
            first.get_child("id").unwrap().content_bytes().unwrap(),
            [1, 2, 3]
        );
        assert_eq!(
            first.get_child("value").unwrap().content_bytes().unwrap(),
            keys[0].key_pair.public
        );
        let skey = iq.get_child("skey").unwrap();
        let bytes = |t: &str| skey.get_child(t).unwrap().content_bytes().unwrap().to_vec();
        assert_eq!(bytes("id"), vec![0, 0, 1]);
        let value: [u8; 32] = bytes("value").try_into().unwrap();
        let signature: [u8; 64] = bytes("signature").try_into().unwrap();
        assert!(xeddsa::verify(
            &creds.identity.public,
            &SignedPreKey::signed_message(&value),
            &signature
        ));
    }
}
