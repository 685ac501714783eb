//! The BEP 10 extended handshake: a bencoded dictionary sent as extended message id 0.

use std::collections::BTreeMap;

use bencode::{Encoder, Value};

use crate::Error;

/// The `m` key of the BEP 9 metadata extension ([`crate::MetadataMessage`]).
pub const UT_METADATA: &str = "ut_metadata";
/// The `m` key of the BEP 11 peer exchange extension ([`crate::PexMessage`]).
pub const UT_PEX: &str = "ut_pex";

/// What a peer announces in its extended handshake.
///
/// Decoding is lenient, as BEP 10 asks: unknown keys and known keys of the wrong type or range are
/// ignored, since clients in the wild send all sorts of extras.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtendedHandshake {
    /// Extension name to the extended message id the sender wants to *receive* it on.
    /// Decoding drops entries whose id is 0 (BEP 10: "disabled").
    pub m: BTreeMap<String, u8>,
    /// The sender's listen port.
    pub p: Option<u16>,
    /// Client name and version, for display.
    pub v: Option<String>,
    /// Our address as the sender sees it: 4 (IPv4) or 16 (IPv6) bytes.
    pub yourip: Option<Vec<u8>>,
    /// How many outstanding requests the sender queues before dropping.
    pub reqq: Option<u32>,
    /// Size of the info dictionary in bytes (BEP 9), for magnet links. Not range-checked here;
    /// [`crate::MetadataAssembler::new`] refuses sizes it will not fetch.
    pub metadata_size: Option<u64>,
    /// The sender only uploads (BEP 21); it is a partial seed and will not request pieces.
    pub upload_only: bool,
    /// Further top-level entries an extension adds to our handshake (for example `by_speed`),
    /// as key and bencoded value. Written in key order with the others; not filled by
    /// [`decode`](Self::decode), since an extension reads its own entry from the raw payload.
    pub extra: BTreeMap<String, Vec<u8>>,
}

fn int(v: Option<&Value<'_>>) -> Option<i64> {
    v.and_then(Value::as_int)
}

impl ExtendedHandshake {
    /// The extended message id the sender wants to receive extension `name` on (for example
    /// [`UT_METADATA`] or [`UT_PEX`]); `None` if it does not support or has disabled it.
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.m.get(name).copied().filter(|&id| id != 0)
    }

    /// Parses the payload of an extended message with id 0.
    ///
    /// Fails only if the payload is not bencode or not a dictionary; bytes after the dictionary
    /// are ignored.
    pub fn decode(payload: &[u8]) -> Result<Self, Error> {
        let (value, _) = bencode::decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(Error::ExtendedNotDict)?;
        let mut hs = Self::default();
        if let Some(m) = dict.get(b"m").and_then(Value::as_dict) {
            for (name, id) in &m.entries {
                let (Ok(name), Some(id)) = (std::str::from_utf8(name), id.as_int()) else {
                    continue;
                };
                if let Ok(id @ 1..) = u8::try_from(id) {
                    hs.m.insert(name.to_owned(), id);
                }
            }
        }
        hs.p = int(dict.get(b"p"))
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        hs.v = dict
            .get(b"v")
            .and_then(Value::as_bytes)
            .map(|v| String::from_utf8_lossy(v).into_owned());
        hs.yourip = dict
            .get(b"yourip")
            .and_then(Value::as_bytes)
            .filter(|ip| ip.len() == 4 || ip.len() == 16)
            .map(<[u8]>::to_vec);
        hs.reqq = int(dict.get(b"reqq")).and_then(|n| u32::try_from(n).ok());
        hs.metadata_size = int(dict.get(b"metadata_size")).and_then(|n| u64::try_from(n).ok());
        hs.upload_only = int(dict.get(b"upload_only")).is_some_and(|n| n != 0);
        Ok(hs)
    }

    /// The canonical bencoding (keys sorted). Every `m` entry is written, including id 0, which
    /// tells the peer an extension is now disabled.
    pub fn encode(&self) -> Vec<u8> {
        let mut entries: Vec<(&[u8], Vec<u8>)> = Vec::with_capacity(8 + self.extra.len());
        let mut put = |key: &'static str, write: &dyn Fn(&mut Encoder<'_>)| {
            let mut value = Vec::new();
            write(&mut Encoder::new(&mut value));
            entries.push((key.as_bytes(), value));
        };
        put("m", &|e| {
            e.dict_start();
            for (name, id) in &self.m {
                e.bytes(name.as_bytes()).int(i64::from(*id));
            }
            e.end();
        });
        if let Some(size) = self.metadata_size {
            put("metadata_size", &|e| {
                e.int(i64::try_from(size).unwrap_or(i64::MAX));
            });
        }
        if let Some(p) = self.p {
            put("p", &|e| {
                e.int(i64::from(p));
            });
        }
        if let Some(reqq) = self.reqq {
            put("reqq", &|e| {
                e.int(i64::from(reqq));
            });
        }
        if self.upload_only {
            put("upload_only", &|e| {
                e.int(1);
            });
        }
        if let Some(v) = &self.v {
            put("v", &|e| {
                e.bytes(v.as_bytes());
            });
        }
        if let Some(ip) = &self.yourip {
            put("yourip", &|e| {
                e.bytes(ip);
            });
        }
        for (key, value) in &self.extra {
            // The standard keys win over an extension entry of the same name.
            if !entries.iter().any(|(k, _)| *k == key.as_bytes()) {
                entries.push((key.as_bytes(), value.clone()));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out);
        e.dict_start();
        for (key, value) in &entries {
            e.bytes(key).raw(value);
        }
        e.end();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ExtendedHandshake {
        ExtendedHandshake {
            m: [(UT_METADATA.to_string(), 2), (UT_PEX.to_string(), 1)]
                .into_iter()
                .collect(),
            p: Some(6881),
            v: Some("btt 0.1".to_string()),
            yourip: Some(vec![127, 0, 0, 1]),
            reqq: Some(250),
            metadata_size: Some(31235),
            upload_only: true,
            extra: Default::default(),
        }
    }

    #[test]
    fn encodes_exact_bytes_and_round_trips() {
        let bytes = sample().encode();
        let expected: &[u8] = b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e\
4:reqqi250e11:upload_onlyi1e1:v7:btt 0.16:yourip4:\x7f\x00\x00\x01e";
        assert_eq!(bytes, expected);
        assert_eq!(ExtendedHandshake::decode(&bytes), Ok(sample()));
        // The encoding is canonical bencode.
        assert_eq!(bencode::decode(&bytes).unwrap().encode_to_vec(), bytes);
    }

    #[test]
    fn extension_entries_sort_among_the_standard_keys() {
        let mut hs = ExtendedHandshake {
            v: Some("btt".into()),
            ..Default::default()
        };
        hs.extra.insert("by_speed".into(), b"d1:vi1ee".to_vec());
        hs.extra.insert("q".into(), b"i7e".to_vec());
        // A standard key is never written twice.
        hs.extra.insert("v".into(), b"3:bad".to_vec());
        let bytes = hs.encode();
        assert_eq!(bytes, b"d8:by_speedd1:vi1ee1:mde1:qi7e1:v3:btte");
        assert_eq!(bencode::decode(&bytes).unwrap().encode_to_vec(), bytes);
    }

    #[test]
    fn looks_up_extension_ids() {
        let hs = sample();
        assert_eq!(hs.extension_id(UT_METADATA), Some(2));
        assert_eq!(hs.extension_id(UT_PEX), Some(1));
        assert_eq!(hs.extension_id("lt_donthave"), None);
        // An id of 0 (written to disable an extension) means unsupported.
        let mut disabled = hs;
        disabled.m.insert(UT_PEX.to_owned(), 0);
        assert_eq!(disabled.extension_id(UT_PEX), None);
    }

    #[test]
    fn minimal_handshake() {
        let hs = ExtendedHandshake::default();
        assert_eq!(hs.encode(), b"d1:mdee");
        assert_eq!(ExtendedHandshake::decode(b"de"), Ok(hs));
    }

    #[test]
    fn tolerates_junk_fields() {
        let junk: &[u8] = b"d12:complete_agoi-1e1:md11:lt_donthavei0e7:too_bigi256e6:ut_pexi1e\
5:wrong3:str8:negativei-1ee13:metadata_size1:x1:pi99999e4:reqqi-5e\
11:upload_onlyi0e1:v2:\xff\xfe6:yourip3:abceTRAILING";
        let hs = ExtendedHandshake::decode(junk).unwrap();
        assert_eq!(
            hs.m.into_iter().collect::<Vec<_>>(),
            vec![("ut_pex".to_string(), 1)]
        );
        assert_eq!(hs.p, None);
        assert_eq!(hs.reqq, None);
        assert_eq!(hs.metadata_size, None);
        assert!(!hs.upload_only);
        assert_eq!(hs.v.as_deref(), Some("\u{fffd}\u{fffd}"));
        assert_eq!(hs.yourip, None);
    }

    #[test]
    fn m_of_wrong_type_is_ignored() {
        let hs = ExtendedHandshake::decode(b"d1:mli1ee1:pi1ee").unwrap();
        assert!(hs.m.is_empty());
        assert_eq!(hs.p, Some(1));
    }

    #[test]
    fn rejects_non_dictionaries() {
        assert_eq!(
            ExtendedHandshake::decode(b"li1ee"),
            Err(Error::ExtendedNotDict)
        );
        assert!(matches!(
            ExtendedHandshake::decode(b"d1:m"),
            Err(Error::Bencode(_))
        ));
        assert!(matches!(
            ExtendedHandshake::decode(b""),
            Err(Error::Bencode(_))
        ));
    }
}
