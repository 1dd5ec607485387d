//! Tests of the plaintext codec: byte shapes of §3.3, padding, ids.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;

#[test]
fn a_text_is_field_one_and_decodes_back() {
    let m = Message::text("hi");
    // Field 1, wire type 2 (0x0A), length 2, "hi".
    assert_eq!(m.encode_to_vec(), [0x0A, 2, b'h', b'i']);
    let padded = encode_padded(&m);
    let (back, body) = decode_padded(&padded).unwrap();
    assert_eq!(back.text_body(), Some("hi"));
    assert_eq!(back.body(body), Body::Text("hi".into()));
}

#[test]
fn extended_text_is_field_six_with_text_one() {
    let bytes = [0x32, 4, 0x0A, 2, b'y', b'o'];
    let m = Message::decode(&bytes[..]).unwrap();
    assert_eq!(m.text_body(), Some("yo"));
}

#[test]
fn device_sent_wraps_the_original_in_field_31() {
    let original = Message {
        message_context_info: Some(MessageContextInfo {
            message_secret: Some(vec![7; 32]),
        }),
        ..Message::text("to bob")
    };
    let dsm = Message::device_sent("15550001111@s.whatsapp.net", &original);
    let bytes = dsm.encode_to_vec();
    let fields: Vec<u32> = top_level_fields(&bytes).iter().map(|f| f.0).collect();
    assert_eq!(fields, [31, 35]);
    // 31 << 3 | 2 = 250 = varint FA 01.
    assert_eq!(&bytes[..2], &[0xFA, 0x01]);
    let back = Message::decode(&bytes[..]).unwrap();
    assert_eq!(back.destination(), Some("15550001111@s.whatsapp.net"));
    assert_eq!(back.text_body(), Some("to bob"));
    assert_eq!(back.message_context_info, original.message_context_info);
}

#[test]
fn other_types_are_named_with_their_size() {
    // imageMessage (field 3) with an empty body, then messageContextInfo.
    let bytes = [0x1A, 0, 0x9A, 0x02, 0];
    let m = Message::decode(&bytes[..]).unwrap();
    assert_eq!(
        m.body(&bytes),
        Body::Other {
            kind: "imageMessage".into(),
            len: 5
        }
    );
    assert_eq!(field_name(99), "field99");
}

#[test]
fn padding_is_n_bytes_of_n_and_is_checked() {
    assert_eq!(pad_with(vec![1, 2], 3), [1, 2, 3, 3, 3]);
    assert_eq!(unpad(&[1, 2, 3, 3, 3]).unwrap(), [1, 2]);
    for _ in 0..200 {
        let padded = pad(vec![9]);
        let n = padded.len() - 1;
        assert!((1..=16).contains(&n), "{n}");
        assert_eq!(unpad(&padded).unwrap(), [9]);
    }
    assert!(unpad(&[]).is_err());
    assert!(unpad(&[1, 0]).is_err());
    assert!(unpad(&[5, 2]).is_err(), "bytes must all equal N");
    assert!(unpad(&[3, 3]).is_err(), "N above the length");
}

#[test]
fn message_ids_follow_the_v2_form() {
    let id = message_id_from(1_700_000_000, "15551234567", &[0; 16]);
    assert_eq!(id.len(), 22);
    assert!(id.starts_with("3EB0"));
    assert!(
        id[4..]
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    // The same inputs give the same id; the hash covers every input.
    assert_eq!(id, message_id_from(1_700_000_000, "15551234567", &[0; 16]));
    assert_ne!(id, message_id_from(1_700_000_001, "15551234567", &[0; 16]));
    assert_ne!(id, message_id_from(1_700_000_000, "15551234568", &[0; 16]));
    // Known answer: SHA-256 over the exact concatenation.
    let mut input = 1_700_000_000u64.to_be_bytes().to_vec();
    input.extend_from_slice(b"15551234567@c.us");
    input.extend_from_slice(&[0; 16]);
    let digest = Sha256::digest(&input);
    let hex: String = digest[..9].iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(id, format!("3EB0{hex}"));
    assert_ne!(new_message_id(1, "1"), new_message_id(1, "1"));
}

#[test]
fn an_app_state_key_share_is_type_six_and_its_keys_read_back() {
    let share = |kind: i32| Message {
        protocol_message: Some(ProtocolMessage {
            key: None,
            r#type: Some(kind),
            history_sync_notification: None,
            app_state_sync_key_share: Some(AppStateSyncKeyShare {
                keys: vec![AppStateSyncKey {
                    key_id: Some(AppStateSyncKeyId {
                        key_id: Some(vec![0, 0, 1, 2]),
                    }),
                    key_data: Some(AppStateSyncKeyData {
                        key_data: Some(vec![7; 32]),
                        fingerprint: Some(vec![8, 3]),
                        timestamp: Some(1_700_000_000_000),
                    }),
                }],
            }),
        }),
        ..Message::default()
    };
    let padded = encode_padded(&share(PROTOCOL_APP_STATE_SYNC_KEY_SHARE));
    let (decoded, _) = decode_padded(&padded).unwrap();
    let keys = decoded.app_state_key_share().unwrap();
    assert_eq!(keys.len(), 1);
    let data = keys[0].key_data.as_ref().unwrap();
    assert_eq!(data.key_data.as_deref(), Some(&[7u8; 32][..]));
    assert_eq!(data.timestamp, Some(1_700_000_000_000));
    assert_eq!(
        keys[0].key_id.as_ref().unwrap().key_id.as_deref(),
        Some(&[0u8, 0, 1, 2][..])
    );
    // Another protocol type carrying the same field is no key share.
    let other = share(PROTOCOL_HISTORY_SYNC_NOTIFICATION);
    assert!(other.app_state_key_share().is_none());
}
