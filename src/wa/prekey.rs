//! One-time pre-keys on the wire (PROTOCOL-MESSAGING.md section 2): how many a device uploads
//! for a server count, the upload iq in its exact shape, reading the count answer, and parsing
//! and checking an upload as the server does (field lengths, key type, the signed pre-key's
//! XEdDSA signature over `05 || pub` by the identity key). Shared by the client that uploads
//! and the simulator that checks.

use crate::wa::creds::{Credentials, KEY_TYPE_DJB, KeyPair, SignedPreKey};
use crate::wa::node::Node;
use crate::wa::stanza::SERVER;
use crate::wa::xeddsa;

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

/// The upload iq of a device's own keys (see `upload_node` for the shape).
pub fn upload(id: &str, creds: &Credentials, keys: &[PreKey]) -> Node {
    let keys: Vec<OneTimeKey> = keys
        .iter()
        .map(|k| OneTimeKey {
            id: k.id,
            public: k.key_pair.public,
        })
        .collect();
    let spk = &creds.signed_pre_key;
    let signed = UploadedSignedKey {
        id: spk.id,
        public: spk.key_pair.public,
        signature: spk.signature,
    };
    let registration = u32::from(creds.registration_id);
    upload_node(id, registration, &creds.identity.public, &keys, &signed)
}

/// One uploaded one-time pre-key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneTimeKey {
    pub id: u32,
    pub public: [u8; 32],
}

/// The signed pre-key as uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedSignedKey {
    pub id: u32,
    pub public: [u8; 32],
    pub signature: [u8; 64],
}

/// A parsed, well-formed upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub registration_id: u32,
    pub identity: [u8; 32],
    pub keys: Vec<OneTimeKey>,
    pub signed: UploadedSignedKey,
}

/// Why an upload was refused; each names the node at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreKeyError {
    #[error("the pre-key node has no <{0}>")]
    Missing(&'static str),
    #[error("the pre-key node's <{field}> is {len} bytes long, expected {expected}")]
    Length {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("the pre-key node's <type> is {0:?}, expected [5]")]
    KeyType(Vec<u8>),
    #[error("the pre-key upload's <identity> is not this device's identity key")]
    OtherIdentity,
    #[error("the pre-key upload's signed pre-key signature does not verify")]
    BadSignature,
}

fn id_bytes(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// `<key><id>{3 B}</id><value>{32 B}</value></key>`, as in uploads and bundles.
pub(crate) fn one_time_key_node(k: &OneTimeKey) -> Node {
    Node::new("key").children(vec![
        Node::new("id").bytes(id_bytes(k.id)),
        Node::new("value").bytes(k.public.to_vec()),
    ])
}

/// `<skey><id>{3 B}</id><value>{32 B}</value><signature>{64 B}</signature></skey>`.
pub(crate) fn signed_key_node(signed: &UploadedSignedKey) -> Node {
    Node::new("skey").children(vec![
        Node::new("id").bytes(id_bytes(signed.id)),
        Node::new("value").bytes(signed.public.to_vec()),
        Node::new("signature").bytes(signed.signature.to_vec()),
    ])
}

/// The upload iq: `<iq id xmlns="encrypt" type="set" to="s.whatsapp.net">` with
/// registration, type, identity, the list of one-time keys and the signed pre-key.
pub fn upload_node(
    id: &str,
    registration_id: u32,
    identity: &[u8; 32],
    keys: &[OneTimeKey],
    signed: &UploadedSignedKey,
) -> Node {
    let list = keys.iter().map(one_time_key_node).collect();
    let skey = signed_key_node(signed);
    Node::new("iq")
        .attr("id", id)
        .attr("xmlns", "encrypt")
        .attr("type", "set")
        .attr("to", SERVER)
        .children(vec![
            Node::new("registration").bytes(registration_id.to_be_bytes().to_vec()),
            Node::new("type").bytes(vec![KEY_TYPE_DJB]),
            Node::new("identity").bytes(identity.to_vec()),
            Node::new("list").children(list),
            skey,
        ])
}

/// Whether an iq is a pre-key upload (`xmlns="encrypt" type="set"` with a `<list>`).
pub fn is_upload(node: &Node) -> bool {
    node.tag == "iq"
        && node.get_attr("xmlns") == Some("encrypt")
        && node.get_attr("type") == Some("set")
        && node.get_child("list").is_some()
}

pub(crate) fn bytes<'a>(parent: &'a Node, field: &'static str) -> Result<&'a [u8], PreKeyError> {
    parent
        .get_child(field)
        .and_then(Node::content_bytes)
        .ok_or(PreKeyError::Missing(field))
}

pub(crate) fn fixed<const N: usize>(
    parent: &Node,
    field: &'static str,
) -> Result<[u8; N], PreKeyError> {
    let got = bytes(parent, field)?;
    got.try_into().map_err(|_| PreKeyError::Length {
        field,
        len: got.len(),
        expected: N,
    })
}

/// Reads a `<key>` node (see [`one_time_key_node`]), checking lengths.
pub(crate) fn one_time_key(k: &Node) -> Result<OneTimeKey, PreKeyError> {
    Ok(OneTimeKey {
        id: key_id(k)?,
        public: fixed::<32>(k, "value")?,
    })
}

/// Reads an `<skey>` node (see [`signed_key_node`]), checking lengths (not the signature).
pub(crate) fn signed_key(skey: &Node) -> Result<UploadedSignedKey, PreKeyError> {
    Ok(UploadedSignedKey {
        id: key_id(skey)?,
        public: fixed::<32>(skey, "value")?,
        signature: fixed::<64>(skey, "signature")?,
    })
}

fn key_id(parent: &Node) -> Result<u32, PreKeyError> {
    let [a, b, c] = fixed::<3>(parent, "id")?;
    Ok(u32::from_be_bytes([0, a, b, c]))
}

/// Parses an upload and checks every length, the key type, and the signed pre-key's
/// signature by the identity key it carries.
pub fn parse_upload(node: &Node) -> Result<Upload, PreKeyError> {
    let registration_id = u32::from_be_bytes(fixed::<4>(node, "registration")?);
    let key_type = bytes(node, "type")?;
    if key_type != [KEY_TYPE_DJB] {
        return Err(PreKeyError::KeyType(key_type.to_vec()));
    }
    let identity = fixed::<32>(node, "identity")?;
    let list = node.get_child("list").ok_or(PreKeyError::Missing("list"))?;
    let keys = list
        .children_named("key")
        .map(one_time_key)
        .collect::<Result<Vec<_>, PreKeyError>>()?;
    let skey = node.get_child("skey").ok_or(PreKeyError::Missing("skey"))?;
    let signed = signed_key(skey)?;
    let message = SignedPreKey::signed_message(&signed.public);
    if !xeddsa::verify(&identity, &message, &signed.signature) {
        return Err(PreKeyError::BadSignature);
    }
    Ok(Upload {
        registration_id,
        identity,
        keys,
        signed,
    })
}

/// `parse_upload`, and the identity must be the one the device registered with.
pub fn check_upload(node: &Node, device_identity: &[u8; 32]) -> Result<Upload, PreKeyError> {
    let upload = parse_upload(node)?;
    if &upload.identity != device_identity {
        return Err(PreKeyError::OtherIdentity);
    }
    Ok(upload)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::wa::creds::{KeyPair, SignedPreKey};

    fn upload(identity: &KeyPair, n: u32) -> Node {
        let spk = SignedPreKey::generate(identity, 1);
        let keys: Vec<OneTimeKey> = (1..=n)
            .map(|id| OneTimeKey {
                id,
                public: KeyPair::generate().public,
            })
            .collect();
        let signed = UploadedSignedKey {
            id: spk.id,
            public: spk.key_pair.public,
            signature: spk.signature,
        };
        upload_node("u1", 0x3FFF, &identity.public, &keys, &signed)
    }

    #[test]
    fn a_built_upload_parses_back_and_verifies() {
        let identity = KeyPair::generate();
        let node = upload(&identity, 3);
        assert!(is_upload(&node));
        let parsed = check_upload(&node, &identity.public).unwrap();
        assert_eq!(parsed.registration_id, 0x3FFF);
        assert_eq!(
            parsed.keys.iter().map(|k| k.id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(parsed.signed.id, 1);
        // Ids are three bytes on the wire.
        let first = node.get_child("list").unwrap().nodes()[0].clone();
        assert_eq!(
            first.get_child("id").unwrap().content_bytes(),
            Some(&[0, 0, 1][..])
        );
    }

    #[test]
    fn bad_uploads_are_refused_with_the_field() {
        let identity = KeyPair::generate();
        let other = KeyPair::generate();
        assert_eq!(
            check_upload(&upload(&identity, 1), &other.public),
            Err(PreKeyError::OtherIdentity)
        );
        // Signed by another key than the identity it names.
        let node = upload(&other, 1);
        let mut forged = upload(&identity, 1);
        let skey = node.get_child("skey").unwrap().clone();
        replace_child(&mut forged, skey);
        assert_eq!(parse_upload(&forged), Err(PreKeyError::BadSignature));
        // A two-byte key id.
        let short = Node::new("iq").children(vec![
            Node::new("registration").bytes(vec![0, 0, 0, 1]),
            Node::new("type").bytes(vec![5]),
            Node::new("identity").bytes(identity.public.to_vec()),
            Node::new("list").child(Node::new("key").children(vec![
                Node::new("id").bytes(vec![0, 1]),
                Node::new("value").bytes(vec![0; 32]),
            ])),
        ]);
        let err = parse_upload(&short).unwrap_err();
        assert_eq!(
            err,
            PreKeyError::Length {
                field: "id",
                len: 2,
                expected: 3
            }
        );
        assert!(err.to_string().contains("<id>"), "{err}");
        let no_type = Node::new("iq").child(Node::new("registration").bytes(vec![0, 0, 0, 1]));
        assert_eq!(parse_upload(&no_type), Err(PreKeyError::Missing("type")));
    }

    fn replace_child(node: &mut Node, child: Node) {
        let children: Vec<Node> = node
            .nodes()
            .iter()
            .map(|c| {
                if c.tag == child.tag {
                    child.clone()
                } else {
                    c.clone()
                }
            })
            .collect();
        *node = Node::new(node.tag.clone()).children(children);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod client_tests {
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
