//! The pre-key upload iq (PROTOCOL-MESSAGING.md §2.2) as data: building it from keys, and
//! parsing and checking one as the server does (field lengths, key type, the signed pre-key's
//! XEdDSA signature over `05 || pub` by the identity key). Shared by the client that uploads
//! and the simulator that checks.

use crate::wa::creds::{KEY_TYPE_DJB, SignedPreKey};
use crate::wa::node::Node;
use crate::wa::stanza::SERVER;
use crate::wa::xeddsa;

/// How many one-time pre-keys a device uploads the first time (both reference clients).
pub const INITIAL_UPLOAD: usize = 812;
/// Below this many one-time pre-keys on the server, a device refills.
pub const LOW_WATER: usize = 5;
/// How many a refill uploads (whatsmeow's `WantedPreKeyCount`).
pub const REFILL: usize = 50;
/// Pre-key ids are 24 bits on the wire.
pub const MAX_KEY_ID: u32 = 0x00FF_FFFF;

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
    #[error("the pre-key upload has no <{0}>")]
    Missing(&'static str),
    #[error("the pre-key upload's <{field}> is {len} bytes long, expected {expected}")]
    Length {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("the pre-key upload's <type> is {0:?}, expected [5]")]
    KeyType(Vec<u8>),
    #[error("the pre-key upload's <identity> is not this device's identity key")]
    OtherIdentity,
    #[error("the pre-key upload's signed pre-key signature does not verify")]
    BadSignature,
}

fn id_bytes(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
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
    let list = keys
        .iter()
        .map(|k| {
            Node::new("key").children(vec![
                Node::new("id").bytes(id_bytes(k.id)),
                Node::new("value").bytes(k.public.to_vec()),
            ])
        })
        .collect();
    let skey = Node::new("skey").children(vec![
        Node::new("id").bytes(id_bytes(signed.id)),
        Node::new("value").bytes(signed.public.to_vec()),
        Node::new("signature").bytes(signed.signature.to_vec()),
    ]);
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

fn bytes<'a>(parent: &'a Node, field: &'static str) -> Result<&'a [u8], PreKeyError> {
    parent
        .get_child(field)
        .and_then(Node::content_bytes)
        .ok_or(PreKeyError::Missing(field))
}

fn fixed<const N: usize>(parent: &Node, field: &'static str) -> Result<[u8; N], PreKeyError> {
    let got = bytes(parent, field)?;
    got.try_into().map_err(|_| PreKeyError::Length {
        field,
        len: got.len(),
        expected: N,
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
        .map(|k| {
            Ok(OneTimeKey {
                id: key_id(k)?,
                public: fixed::<32>(k, "value")?,
            })
        })
        .collect::<Result<Vec<_>, PreKeyError>>()?;
    let skey = node.get_child("skey").ok_or(PreKeyError::Missing("skey"))?;
    let signed = UploadedSignedKey {
        id: key_id(skey)?,
        public: fixed::<32>(skey, "value")?,
        signature: fixed::<64>(skey, "signature")?,
    };
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
