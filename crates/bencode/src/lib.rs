//! Bencode (BEP 3): zero-copy decoding and canonical encoding.
//!
//! # Layout
//! - [`decode`] / [`decode_prefix`] parse a buffer into a borrowed [`Value`] tree. Byte strings
//!   borrow from the input; every dictionary and list remembers the exact input span it came from
//!   ([`Value::raw`]) so callers can hash a sub-tree as it was sent (the BitTorrent info-hash).
//! - [`Value::encode`] writes canonical bencode: dictionary keys sorted as raw byte strings.
//! - [`Encoder`] writes bencode directly into a caller's buffer without building a tree.
//!
//! Decoding is total: malformed input yields an [`Error`], never a panic, and no allocation is sized
//! from a length field (a string's length is checked against the bytes actually present).
//!
//! ```
//! let v = bencode::decode(b"d3:cow3:moo4:spaml1:a1:bee").unwrap();
//! assert_eq!(v.get(b"cow").and_then(|v| v.as_bytes()), Some(&b"moo"[..]));
//! assert_eq!(v.encode_to_vec(), b"d3:cow3:moo4:spaml1:a1:bee");
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::borrow::Cow;

mod encode;

pub use encode::Encoder;

/// Nesting deeper than this is rejected so hostile input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// Why a buffer is not valid bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended inside a value.
    #[error("bencode truncated at byte {0}: the data is incomplete")]
    Truncated(usize),
    /// A byte that cannot start or continue a value at this position.
    #[error("bencode has unexpected byte 0x{byte:02x} at offset {offset}")]
    Unexpected {
        /// Offset of the offending byte.
        offset: usize,
        /// The byte found.
        byte: u8,
    },
    /// An integer with leading zeros, `-0`, no digits, or outside the `i64` range.
    #[error("bencode has an invalid integer at offset {0}")]
    BadInteger(usize),
    /// A string length prefix that is malformed or larger than the remaining input.
    #[error("bencode has an invalid string length at offset {0}")]
    BadLength(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("bencode nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes follow a complete top-level value.
    #[error("bencode has {0} trailing bytes after the value")]
    Trailing(usize),
    /// A dictionary key that is not a byte string.
    #[error("bencode dictionary key at offset {0} is not a string")]
    KeyNotString(usize),
    /// The same key twice in one dictionary.
    #[error("bencode dictionary repeats a key at offset {0}")]
    DuplicateKey(usize),
}

/// A decoded (or constructed) bencode value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i…e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Cow<'a, [u8]>),
    /// `l…e`
    List(List<'a>),
    /// `d…e`
    Dict(Dict<'a>),
}

/// A bencode list and, when decoded, the input span it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct List<'a> {
    /// The items in order.
    pub items: Vec<Value<'a>>,
    raw: Option<&'a [u8]>,
}

/// A bencode dictionary in input order and, when decoded, the input span it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    /// Key/value pairs in the order they were decoded or inserted.
    pub entries: Vec<(Cow<'a, [u8]>, Value<'a>)>,
    raw: Option<&'a [u8]>,
}

impl<'a> Dict<'a> {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Inserts or replaces `key`.
    pub fn insert(&mut self, key: impl Into<Cow<'a, [u8]>>, value: Value<'a>) {
        let key = key.into();
        self.raw = None;
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The exact input bytes of this dictionary, if it was decoded.
    pub fn raw(&self) -> Option<&'a [u8]> {
        self.raw
    }
}

impl<'a> List<'a> {
    /// A list of the given items.
    pub fn new(items: Vec<Value<'a>>) -> Self {
        Self { items, raw: None }
    }
}

impl<'a> Value<'a> {
    /// A byte-string value that borrows `b`.
    pub fn bytes(b: &'a [u8]) -> Self {
        Value::Bytes(Cow::Borrowed(b))
    }

    /// A byte-string value that owns `b`.
    pub fn owned_bytes(b: Vec<u8>) -> Self {
        Value::Bytes(Cow::Owned(b))
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if it is a valid UTF-8 byte string.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(&l.items),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Shorthand for `as_dict()?.get(key)`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict().and_then(|d| d.get(key))
    }

    /// The exact input bytes of a decoded list or dictionary (`None` for scalars and built values).
    pub fn raw(&self) -> Option<&'a [u8]> {
        match self {
            Value::List(l) => l.raw,
            Value::Dict(d) => d.raw,
            _ => None,
        }
    }

    /// Appends the canonical encoding (dictionary keys sorted) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out);
        enc.value(self);
    }

    /// The canonical encoding as a new buffer.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Decodes exactly one value spanning all of `buf`.
pub fn decode(buf: &[u8]) -> Result<Value<'_>, Error> {
    let (value, used) = decode_prefix(buf)?;
    if used != buf.len() {
        return Err(Error::Trailing(buf.len() - used));
    }
    Ok(value)
}

/// Decodes one value from the start of `buf` and returns it with the number of bytes it used.
///
/// Used where a bencoded header is followed by raw payload (BEP 9 metadata pieces).
pub fn decode_prefix(buf: &[u8]) -> Result<(Value<'_>, usize), Error> {
    let mut d = Decoder { buf, pos: 0 };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, Error> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(Error::Truncated(self.pos))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let start = self.pos;
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let end = self.find(b'e')?;
                let n = parse_int(&self.buf[self.pos..end]).ok_or(Error::BadInteger(start))?;
                self.pos = end + 1;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(Cow::Borrowed(self.string()?))),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(List {
                    items,
                    raw: Some(&self.buf[start..self.pos]),
                }))
            }
            b'd' => {
                self.pos += 1;
                let mut entries: Vec<(Cow<'a, [u8]>, Value<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    let key_at = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(Error::KeyNotString(key_at));
                    }
                    let key = self.string()?;
                    if entries.iter().any(|(k, _)| k.as_ref() == key) {
                        return Err(Error::DuplicateKey(key_at));
                    }
                    let v = self.value(depth + 1)?;
                    entries.push((Cow::Borrowed(key), v));
                }
                self.pos += 1;
                Ok(Value::Dict(Dict {
                    entries,
                    raw: Some(&self.buf[start..self.pos]),
                }))
            }
            byte => Err(Error::Unexpected {
                offset: start,
                byte,
            }),
        }
    }

    fn find(&self, byte: u8) -> Result<usize, Error> {
        self.buf[self.pos..]
            .iter()
            .position(|&b| b == byte)
            .map(|i| self.pos + i)
            .ok_or(Error::Truncated(self.buf.len()))
    }

    fn string(&mut self) -> Result<&'a [u8], Error> {
        let start = self.pos;
        let colon = self.find(b':')?;
        let digits = &self.buf[start..colon];
        if digits.is_empty()
            || digits.len() > 19
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
        {
            return Err(Error::BadLength(start));
        }
        let len = digits.iter().fold(0usize, |n, &d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
        let body = colon + 1;
        if len > self.buf.len() - body {
            return Err(Error::BadLength(start));
        }
        self.pos = body + len;
        Ok(&self.buf[body..body + len])
    }
}

/// Parses a bencode integer body: optional `-`, digits, no leading zeros, no `-0`.
fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if neg {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scalars() {
        assert_eq!(decode(b"i42e"), Ok(Value::Int(42)));
        assert_eq!(decode(b"i-42e"), Ok(Value::Int(-42)));
        assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(decode(b"4:spam"), Ok(Value::bytes(b"spam")));
        assert_eq!(decode(b"0:"), Ok(Value::bytes(b"")));
    }

    #[test]
    fn rejects_bad_integers() {
        for bad in [
            &b"i-0e"[..],
            b"i03e",
            b"ie",
            b"i-e",
            b"i9223372036854775808e",
            b"i1x2e",
            b"i12",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rejects_bad_strings_without_allocating() {
        assert_eq!(decode(b"5:spam"), Err(Error::BadLength(0)));
        assert_eq!(decode(b"99999999999999999999:x"), Err(Error::BadLength(0)));
        assert_eq!(decode(b"01:a"), Err(Error::BadLength(0)));
        assert_eq!(decode(b"4"), Err(Error::Truncated(1)));
    }

    #[test]
    fn rejects_structure_errors() {
        assert_eq!(decode(b"l4:spam"), Err(Error::Truncated(7)));
        assert_eq!(decode(b"di1ei2ee"), Err(Error::KeyNotString(1)));
        assert_eq!(decode(b"d1:ai1e1:ai2ee"), Err(Error::DuplicateKey(7)));
        assert_eq!(decode(b"i1ei2e"), Err(Error::Trailing(3)));
        assert_eq!(
            decode(b"x"),
            Err(Error::Unexpected {
                offset: 0,
                byte: b'x'
            })
        );
        let deep = [vec![b'l'; MAX_DEPTH + 2], vec![b'e'; MAX_DEPTH + 2]].concat();
        assert_eq!(decode(&deep), Err(Error::TooDeep));
    }

    #[test]
    fn keeps_raw_spans_and_unsorted_input() {
        let input = b"d1:zi1e4:infod1:b0:1:a0:ee";
        let v = decode(input).unwrap();
        assert_eq!(v.get(b"info").unwrap().raw(), Some(&b"d1:b0:1:a0:e"[..]));
        assert_eq!(v.raw(), Some(&input[..]));
        // Canonical re-encoding sorts keys.
        assert_eq!(v.encode_to_vec(), b"d4:infod1:a0:1:b0:e1:zi1ee");
    }

    #[test]
    fn prefix_reports_consumed_length() {
        let (v, n) = decode_prefix(b"d8:msg_typei1e5:piecei0eeRAW").unwrap();
        assert_eq!(n, 25);
        assert_eq!(v.get(b"piece").and_then(Value::as_int), Some(0));
    }

    #[test]
    fn round_trips_nested_values() {
        let mut d = Dict::new();
        d.insert(
            &b"list"[..],
            Value::List(List::new(vec![Value::Int(-1), Value::bytes(b"x")])),
        );
        d.insert(&b"a"[..], Value::Int(7));
        let bytes = Value::Dict(d).encode_to_vec();
        assert_eq!(bytes, b"d1:ai7e4:listli-1e1:xee");
        assert_eq!(decode(&bytes).unwrap().encode_to_vec(), bytes);
    }
}
