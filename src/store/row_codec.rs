//! A compact, exact encoding of SQLite rows for the Redis mirror: each value is a tag byte
//! (0 null, 1 integer, 2 real, 3 text, 4 blob) then 8 little-endian bytes for numbers or a
//! 4-byte length and the bytes for text and blobs. A row is a 2-byte column count, then per
//! column a 1-byte name length, the name and its value.

use rusqlite::types::Value;

fn put_value(out: &mut Vec<u8>, value: &Value) {
    let bytes = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(b);
    };
    match value {
        Value::Null => out.push(0),
        Value::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Real(r) => {
            out.push(2);
            out.extend_from_slice(&r.to_le_bytes());
        }
        Value::Text(t) => bytes(out, 3, t.as_bytes()),
        Value::Blob(b) => bytes(out, 4, b),
    }
}

/// Values one after another (a primary key).
pub(super) fn encode_values(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        put_value(&mut out, v);
    }
    out
}

/// A row as (column, value) pairs.
pub(super) fn encode_row(row: &[(&str, &Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(row.len()).unwrap_or(u16::MAX).to_le_bytes());
    for (name, value) in row {
        let name = &name.as_bytes()[..name.len().min(255)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        put_value(&mut out, value);
    }
    out
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    fn value(&mut self) -> Option<Value> {
        let tag = *self.take(1)?.first()?;
        Some(match tag {
            0 => Value::Null,
            1 => Value::Integer(i64::from_le_bytes(self.eight()?)),
            2 => Value::Real(f64::from_le_bytes(self.eight()?)),
            3 | 4 => {
                let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
                let b = self.take(len)?.to_vec();
                if tag == 3 {
                    Value::Text(String::from_utf8(b).ok()?)
                } else {
                    Value::Blob(b)
                }
            }
            _ => return None,
        })
    }
}

/// The (column, value) pairs of an encoded row; `None` when the bytes are damaged.
pub(super) fn decode_row(bytes: &[u8]) -> Option<Vec<(String, Value)>> {
    let mut r = Reader { rest: bytes };
    let count = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
    let mut row = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = usize::from(*r.take(1)?.first()?);
        let name = std::str::from_utf8(r.take(len)?).ok()?.to_string();
        row.push((name, r.value()?));
    }
    r.rest.is_empty().then_some(row)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_comes_back_exactly_and_damage_is_refused() {
        let values = [
            Value::Null,
            Value::Integer(-7),
            Value::Real(1.5),
            Value::Text("s1 ✓".into()),
            Value::Blob(vec![0, 255, 3]),
        ];
        let names = ["a", "b", "c", "session", "e"];
        let row: Vec<(&str, &Value)> = names.iter().copied().zip(values.iter()).collect();
        let bytes = encode_row(&row);
        let back = decode_row(&bytes).unwrap();
        let want: Vec<(String, Value)> = names
            .iter()
            .map(|n| n.to_string())
            .zip(values.iter().cloned())
            .collect();
        assert_eq!(back, want);
        assert_eq!(decode_row(&bytes[..bytes.len() - 1]), None, "cut short");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_row(&longer), None, "trailing bytes");
        assert_ne!(
            encode_values(&[Value::Integer(1)]),
            encode_values(&[Value::Text("1".into())]),
            "keys of different types never collide"
        );
    }
}
