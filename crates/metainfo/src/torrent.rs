//! The whole `.torrent` file: the info dictionary plus piece layers, trackers and descriptive
//! fields.

use std::collections::BTreeMap;

use bencode::{Dict, Encoder, Value};

use crate::error::clip;
use crate::{merkle, Error, Info, InfoHash, InfoHashV2, InfoHashes};

/// A parsed `.torrent` file (BEP 3 and BEP 52, with BEP 12 tracker tiers and the BEP 27 private
/// flag).
///
/// Keys other than those below (e.g. `url-list`, `nodes`) are not kept; [`Torrent::to_bytes`]
/// writes only these fields and the untouched info dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torrent {
    /// The validated info dictionary.
    pub info: Info,
    /// The 20-byte id used in handshakes, with trackers and in the DHT: the SHA-1 info-hash for
    /// v1 and hybrid torrents, the truncated SHA-256 info-hash for v2-only ones.
    pub info_hash: InfoHash,
    /// The full v1 and v2 info-hashes, whichever the torrent has.
    pub info_hashes: InfoHashes,
    /// BEP 52 piece layers by pieces root, each checked against its root: for every file longer
    /// than one piece, one SHA-256 per piece. May be missing some or all files (a torrent from
    /// a magnet link has none until they are fetched with hash requests; see
    /// [`Torrent::set_piece_layer`]).
    pub piece_layers: BTreeMap<[u8; 32], Vec<[u8; 32]>>,
    /// The bencoded info dictionary exactly as found in the file; the info-hash is defined over
    /// these bytes, so they are never re-encoded.
    pub info_bytes: Vec<u8>,
    /// The `announce` URL.
    pub announce: Option<String>,
    /// Tracker tiers (BEP 12). Taken from `announce-list` when it names any tracker, otherwise a
    /// single tier holding `announce`; empty when the torrent has no trackers (DHT only).
    pub announce_list: Vec<Vec<String>>,
    /// Free-form `comment`.
    pub comment: Option<String>,
    /// The program that made the torrent (`created by`).
    pub created_by: Option<String>,
    /// `creation date`, seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// BEP 19 web seeds (`url-list`, a string or a list of strings).
    pub url_list: Vec<String>,
}

impl Torrent {
    /// Parses and validates a `.torrent` file.
    pub fn from_bytes(buf: &[u8]) -> Result<Torrent, Error> {
        let root = bencode::decode(buf)?;
        let root = root.as_dict().ok_or(Error::NotADictionary)?;
        let info_value = root.get(b"info").ok_or(Error::MissingInfo)?;
        let info_dict = info_value.as_dict().ok_or(Error::MissingInfo)?;
        let info_bytes = info_value.raw().ok_or(Error::MissingInfo)?;
        let info = Info::from_dict(info_dict)?;
        let piece_layers = match root.get(b"piece layers") {
            Some(layers) if info.version.has_v2() => parse_piece_layers(&info, layers)?,
            _ => BTreeMap::new(),
        };
        let (info_hash, info_hashes) = hashes(&info, info_bytes);

        let announce = root.get(b"announce").and_then(tracker_url);
        let mut announce_list = root
            .get(b"announce-list")
            .map(parse_tiers)
            .unwrap_or_default();
        if announce_list.is_empty() {
            announce_list.extend(announce.clone().map(|a| vec![a]));
        }
        Ok(Torrent {
            info,
            info_hash,
            info_hashes,
            piece_layers,
            info_bytes: info_bytes.to_vec(),
            announce,
            announce_list,
            comment: text(root, b"comment.utf-8", b"comment"),
            created_by: text(root, b"created by.utf-8", b"created by"),
            creation_date: root.get(b"creation date").and_then(Value::as_int),
            url_list: root
                .get(b"url-list")
                .map(parse_url_list)
                .unwrap_or_default(),
        })
    }

    /// A torrent from a bare info dictionary (as fetched by BEP 9 for a magnet link), with no
    /// trackers, descriptive fields or piece layers.
    pub fn from_info_bytes(info_bytes: Vec<u8>) -> Result<Torrent, Error> {
        let info = Info::from_bytes(&info_bytes)?;
        let (info_hash, info_hashes) = hashes(&info, &info_bytes);
        Ok(Torrent {
            info,
            info_hash,
            info_hashes,
            piece_layers: BTreeMap::new(),
            info_bytes,
            announce: None,
            announce_list: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            url_list: Vec::new(),
        })
    }

    /// Encodes the torrent with sorted keys, copying [`Torrent::info_bytes`] verbatim so the
    /// info-hash is preserved.
    ///
    /// `announce-list` is written only when it says more than `announce` alone does.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.info_bytes.len() + 256);
        let mut enc = Encoder::new(&mut out);
        enc.dict_start();
        if let Some(announce) = &self.announce {
            enc.bytes(b"announce").bytes(announce.as_bytes());
        }
        let implied_by_announce = matches!((&self.announce, &self.announce_list[..]),
            (Some(a), [tier]) if tier.len() == 1 && tier[0] == *a);
        if !self.announce_list.is_empty() && !implied_by_announce {
            enc.bytes(b"announce-list").list_start();
            for tier in &self.announce_list {
                enc.list_start();
                for url in tier {
                    enc.bytes(url.as_bytes());
                }
                enc.end();
            }
            enc.end();
        }
        if let Some(comment) = &self.comment {
            enc.bytes(b"comment").bytes(comment.as_bytes());
        }
        if let Some(created_by) = &self.created_by {
            enc.bytes(b"created by").bytes(created_by.as_bytes());
        }
        if let Some(date) = self.creation_date {
            enc.bytes(b"creation date").int(date);
        }
        enc.bytes(b"info").raw(&self.info_bytes);
        if !self.piece_layers.is_empty() {
            enc.bytes(b"piece layers").dict_start();
            for (root, layer) in &self.piece_layers {
                enc.bytes(root).bytes(layer.as_flattened());
            }
            enc.end();
        }
        match &self.url_list[..] {
            [] => {}
            [one] => {
                enc.bytes(b"url-list").bytes(one.as_bytes());
            }
            many => {
                enc.bytes(b"url-list").list_start();
                for url in many {
                    enc.bytes(url.as_bytes());
                }
                enc.end();
            }
        }
        enc.end();
        out
    }

    /// Checks a piece layer fetched for the file with `pieces_root` (e.g. with BEP 52 hash
    /// requests) and stores it. The layer must have one hash per piece of a file longer than
    /// one piece and lead to the root.
    pub fn set_piece_layer(
        &mut self,
        pieces_root: [u8; 32],
        layer: Vec<[u8; 32]>,
    ) -> Result<(), Error> {
        let Some(file) = self
            .info
            .files
            .iter()
            .find(|f| f.pieces_root == Some(pieces_root))
        else {
            return Err(Error::MalformedPieceLayers);
        };
        check_piece_layer(&self.info, file, &layer)?;
        self.piece_layers.insert(pieces_root, layer);
        Ok(())
    }

    /// Whether every file longer than one piece has its piece layer, so every piece of a v2 or
    /// hybrid torrent can be checked with [`Torrent::verify_v2_piece`]. True for v1 torrents.
    pub fn has_piece_layers(&self) -> bool {
        let piece_length = u64::from(self.info.piece_length);
        self.info
            .files
            .iter()
            .filter(|f| f.length > piece_length)
            .filter_map(|f| f.pieces_root)
            .all(|root| self.piece_layers.contains_key(&root))
    }

    /// The SHA-256 that piece `index` of a v2 or hybrid torrent must hash to: its piece-layer
    /// entry, or the file's pieces root for a file of at most one piece. `None` for v1
    /// torrents, padding-only pieces, and pieces whose layer is not known yet.
    pub fn v2_piece_hash(&self, index: u32) -> Option<[u8; 32]> {
        let piece = self.info.v2_piece(index)?;
        let file = &self.info.files[piece.file];
        let root = file.pieces_root?;
        if file.length <= u64::from(self.info.piece_length) {
            return Some(root);
        }
        self.piece_layers
            .get(&root)?
            .get(piece.piece_in_file as usize)
            .copied()
    }

    /// Checks piece `index` against its v2 hash. `data` is the piece as stored, from its first
    /// byte: at least its [`V2Piece::real_len`](crate::V2Piece::real_len) bytes of file data;
    /// anything after them (padding) is ignored. `None` when the expected hash is unknown (see
    /// [`Torrent::v2_piece_hash`]).
    pub fn verify_v2_piece(&self, index: u32, data: &[u8]) -> Option<bool> {
        let expected = self.v2_piece_hash(index)?;
        let piece = self.info.v2_piece(index)?;
        let Some(data) = data.get(..piece.real_len as usize) else {
            return Some(false);
        };
        let file = &self.info.files[piece.file];
        let actual = if file.length <= u64::from(self.info.piece_length) {
            merkle::file_root(data)
        } else {
            merkle::piece_hash(data, self.info.piece_length)
        };
        Some(actual == expected)
    }

    /// The tracker tiers to announce to, in BEP 12 order: `announce-list`, else `announce`.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|a| vec![a.clone()]).collect()
    }
}

/// The wire info-hash and both full hashes of `info_bytes`.
fn hashes(info: &Info, info_bytes: &[u8]) -> (InfoHash, InfoHashes) {
    let hashes = InfoHashes {
        v1: info.version.has_v1().then(|| InfoHash::of(info_bytes)),
        v2: info.version.has_v2().then(|| InfoHashV2::of(info_bytes)),
    };
    // Parsing guarantees at least one of the two.
    let wire = hashes.wire_id().unwrap_or_else(|| InfoHash::of(info_bytes));
    (wire, hashes)
}

/// Reads `piece layers`, keeping the layers of this torrent's files longer than one piece and
/// checking each against its pieces root. Layers for unknown roots are dropped.
fn parse_piece_layers(
    info: &Info,
    layers: &Value<'_>,
) -> Result<BTreeMap<[u8; 32], Vec<[u8; 32]>>, Error> {
    let dict = layers.as_dict().ok_or(Error::MalformedPieceLayers)?;
    let mut raw = BTreeMap::new();
    for (key, value) in &dict.entries {
        let root = <[u8; 32]>::try_from(key.as_ref()).map_err(|_| Error::MalformedPieceLayers)?;
        let bytes = value.as_bytes().ok_or(Error::MalformedPieceLayers)?;
        raw.insert(root, bytes);
    }
    let piece_length = u64::from(info.piece_length);
    let mut out = BTreeMap::new();
    for file in info.files.iter().filter(|f| f.length > piece_length) {
        let Some(root) = file.pieces_root else {
            continue;
        };
        let Some(bytes) = raw.get(&root) else {
            continue;
        };
        if bytes.len() % 32 != 0 {
            return Err(Error::BadPieceLayer {
                path: clip(&file.path.join("/")),
                why: "its length is not a multiple of 32",
            });
        }
        let layer: Vec<[u8; 32]> = bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        check_piece_layer(info, file, &layer)?;
        out.insert(root, layer);
    }
    Ok(out)
}

/// A piece layer must have one hash per piece of its file and reduce to the pieces root.
fn check_piece_layer(
    info: &Info,
    file: &crate::FileEntry,
    layer: &[[u8; 32]],
) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::BadPieceLayer {
            path: clip(&file.path.join("/")),
            why,
        })
    };
    let pieces = file.length.div_ceil(u64::from(info.piece_length));
    if pieces < 2 {
        return bad("the file fits in one piece and has no piece layer");
    }
    if layer.len() as u64 != pieces {
        return bad("it does not have one hash per piece");
    }
    if Some(merkle::root_from_piece_layer(layer, info.piece_length)) != file.pieces_root {
        return bad("its hashes do not lead to the pieces root");
    }
    Ok(())
}

/// A tracker URL: a UTF-8 string, trimmed, non-empty. Anything else is ignored, as other
/// clients do, rather than failing the whole torrent.
fn tracker_url(v: &Value<'_>) -> Option<String> {
    let url = v.as_str()?.trim();
    (!url.is_empty()).then(|| url.to_owned())
}

/// BEP 19 `url-list`: one URL or a list of them; non-strings and blanks are ignored.
fn parse_url_list(v: &Value<'_>) -> Vec<String> {
    match v.as_list() {
        Some(list) => list.iter().filter_map(tracker_url).collect(),
        None => tracker_url(v).into_iter().collect(),
    }
}

/// BEP 12 tiers, dropping non-string URLs and tiers left empty.
pub(crate) fn parse_tiers(v: &Value<'_>) -> Vec<Vec<String>> {
    let Some(tiers) = v.as_list() else {
        return Vec::new();
    };
    tiers
        .iter()
        .filter_map(Value::as_list)
        .map(|tier| tier.iter().filter_map(tracker_url).collect::<Vec<_>>())
        .filter(|tier| !tier.is_empty())
        .collect()
}

/// Caller-supplied tiers normalised the way [`parse_tiers`] reads them back.
pub(crate) fn clean_tiers(tiers: Vec<Vec<String>>) -> Vec<Vec<String>> {
    tiers
        .into_iter()
        .map(|tier| {
            tier.into_iter()
                .map(|url| url.trim().to_owned())
                .filter(|url| !url.is_empty())
                .collect::<Vec<_>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect()
}

/// An optional descriptive string, preferring the `*.utf-8` twin; legacy encodings are decoded
/// lossily and non-strings ignored.
fn text(dict: &Dict<'_>, utf8_key: &[u8], key: &[u8]) -> Option<String> {
    if let Some(s) = dict.get(utf8_key).and_then(Value::as_str) {
        return Some(s.to_owned());
    }
    dict.get(key)
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Info dict with keys out of order (`name` before `length`), as some old creators wrote.
    const UNSORTED_INFO: &[u8] =
        b"d4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:AAAAAAAAAAAAAAAAAAAAe";

    fn wrap(prefix: &[u8], info: &[u8], suffix: &[u8]) -> Vec<u8> {
        [prefix, b"4:info", info, suffix, b"e"].concat()
    }

    #[test]
    fn info_hash_covers_raw_bytes_not_a_re_encoding() {
        // Outer keys unsorted too (`info` before `announce`).
        let file = wrap(b"d", UNSORTED_INFO, b"8:announce3:url");
        let t = Torrent::from_bytes(&file).unwrap();
        assert_eq!(t.info_bytes, UNSORTED_INFO);
        // SHA-1 of UNSORTED_INFO, computed independently.
        assert_eq!(
            t.info_hash.to_hex(),
            "a39018d415f557db2ac6d1a2d068f91abbce92e9"
        );
        let canonical = bencode::decode(UNSORTED_INFO).unwrap().encode_to_vec();
        assert_ne!(InfoHash::of(&canonical), t.info_hash);

        // Writing the torrent back keeps the info bytes, hence the hash.
        let written = t.to_bytes();
        assert_eq!(written, wrap(b"d8:announce3:url", UNSORTED_INFO, b""));
        assert_eq!(Torrent::from_bytes(&written).unwrap(), t);
    }

    #[test]
    fn reads_descriptive_fields_and_round_trips() {
        let file = wrap(
            b"d8:announce10:http://a/113:announce-listll10:http://a/110:http://b/2el9:udp://c:3ee\
              7:comment5:hello10:created by7:btt 0.113:creation datei1700000000e",
            UNSORTED_INFO,
            b"",
        );
        let t = Torrent::from_bytes(&file).unwrap();
        assert_eq!(t.announce.as_deref(), Some("http://a/1"));
        assert_eq!(
            t.announce_list,
            [vec!["http://a/1", "http://b/2"], vec!["udp://c:3"]]
        );
        assert_eq!(t.trackers(), t.announce_list);
        assert_eq!(t.comment.as_deref(), Some("hello"));
        assert_eq!(t.created_by.as_deref(), Some("btt 0.1"));
        assert_eq!(t.creation_date, Some(1_700_000_000));
        // Canonical input comes back byte for byte.
        assert_eq!(t.to_bytes(), file);
        assert_eq!(Torrent::from_bytes(&t.to_bytes()).unwrap(), t);
    }

    #[test]
    fn tracker_tiers_follow_bep12() {
        // Only `announce`: one tier, and `announce-list` is not invented on write.
        let t = Torrent::from_bytes(&wrap(b"d8:announce9:http://a/", UNSORTED_INFO, b"")).unwrap();
        assert_eq!(t.announce_list, [vec!["http://a/"]]);
        assert_eq!(t.trackers(), [vec!["http://a/"]]);
        assert!(!t.to_bytes().windows(13).any(|w| w == b"announce-list"));

        // `announce-list` wins over `announce`; non-strings, blanks and empty tiers are ignored.
        let file = wrap(
            b"d8:announce9:http://a/13:announce-listli1eli2e0:3: \t ele9:http://b/l9:http://c/ee",
            UNSORTED_INFO,
            b"",
        );
        let t = Torrent::from_bytes(&file).unwrap();
        assert_eq!(t.announce.as_deref(), Some("http://a/"));
        assert_eq!(t.trackers(), [vec!["http://c/"]]);
        let again = Torrent::from_bytes(&t.to_bytes()).unwrap();
        assert_eq!(again, t);

        // No trackers at all (DHT-only torrent); a non-string `announce` is ignored.
        let t = Torrent::from_bytes(&wrap(b"d8:announcei1e", UNSORTED_INFO, b"")).unwrap();
        assert_eq!((t.announce.clone(), t.trackers()), (None, vec![]));
    }

    #[test]
    fn prefers_utf8_comment_and_tolerates_odd_optional_fields() {
        let file = wrap(
            b"d7:comment2:\xe9t13:comment.utf-85:\xc3\xa9t\xc3\xa910:created byi3e13:creation date1:x",
            UNSORTED_INFO,
            b"",
        );
        let t = Torrent::from_bytes(&file).unwrap();
        assert_eq!(t.comment.as_deref(), Some("été"));
        assert_eq!((t.created_by, t.creation_date), (None, None));
    }

    #[test]
    fn web_seeds_round_trip() {
        let one = wrap(b"d", UNSORTED_INFO, b"8:url-list9:http://w/");
        let t = Torrent::from_bytes(&one).unwrap();
        assert_eq!(t.url_list, ["http://w/"]);
        assert_eq!(
            t.to_bytes(),
            wrap(b"d", UNSORTED_INFO, b"8:url-list9:http://w/")
        );
        let many = wrap(
            b"d",
            UNSORTED_INFO,
            b"8:url-listl9:http://w/i1e0:9:http://v/e",
        );
        let t = Torrent::from_bytes(&many).unwrap();
        assert_eq!(t.url_list, ["http://w/", "http://v/"]);
        assert_eq!(Torrent::from_bytes(&t.to_bytes()).unwrap(), t);
    }

    #[test]
    fn from_info_bytes_for_magnets() {
        let t = Torrent::from_info_bytes(UNSORTED_INFO.to_vec()).unwrap();
        assert_eq!(
            t.info_hash.to_hex(),
            "a39018d415f557db2ac6d1a2d068f91abbce92e9"
        );
        assert_eq!(t.info.total_length, 5);
        assert!(t.trackers().is_empty());
        assert_eq!(Torrent::from_bytes(&t.to_bytes()).unwrap(), t);
    }

    #[test]
    fn rejects_non_torrents() {
        assert_eq!(
            Torrent::from_bytes(b""),
            Err(Error::Bencode(bencode::Error::Truncated(0)))
        );
        assert_eq!(
            Torrent::from_bytes(b"d4:info"),
            Err(Error::Bencode(bencode::Error::Truncated(7)))
        );
        assert_eq!(Torrent::from_bytes(b"i1e"), Err(Error::NotADictionary));
        assert_eq!(Torrent::from_bytes(b"de"), Err(Error::MissingInfo));
        assert_eq!(Torrent::from_bytes(b"d4:infoi1ee"), Err(Error::MissingInfo));
        assert_eq!(
            Torrent::from_bytes(b"d4:infodee"),
            Err(Error::MissingKey("piece length"))
        );
        assert_eq!(
            Torrent::from_bytes(b"d4:infodee").unwrap_err().to_string(),
            "torrent info is missing required key `piece length`"
        );
    }

    /// Every single-byte mutation of a valid multi-file torrent either fails cleanly or yields a
    /// torrent whose layout invariants hold (a deterministic stand-in for the fuzz target).
    #[test]
    fn mutations_never_panic_and_accepted_torrents_are_consistent() {
        let file: &[u8] =
            b"d8:announce9:http://a/4:infod5:filesld6:lengthi3e4:pathl1:aeed6:lengthi0e\
            4:pathl1:zeed6:lengthi5e4:pathl3:sub1:beee4:name3:dir12:piece lengthi4e6:pieces40:\
            aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbee";
        let base = Torrent::from_bytes(file).unwrap();
        assert_eq!(base.info.files.len(), 3);
        let mut accepted = 0;
        for i in 0..file.len() {
            for byte in [
                b'0', b'1', b'9', b'e', b'd', b'l', b'i', b':', b'-', b'.', b'/', 0, 0xff,
            ] {
                let mut m = file.to_vec();
                m[i] = byte;
                let Ok(t) = Torrent::from_bytes(&m) else {
                    continue;
                };
                accepted += 1;
                let info = &t.info;
                assert_eq!(t.info_hash, InfoHash::of(&t.info_bytes));
                assert_eq!(
                    u64::from(info.num_pieces()),
                    info.total_length.div_ceil(u64::from(info.piece_length))
                );
                let covered: u64 = (0..info.num_pieces())
                    .flat_map(|p| info.piece_spans(p, 0, info.piece_size(p)))
                    .map(|s| u64::from(s.len))
                    .sum();
                assert_eq!(covered, info.total_length);
                for f in 0..info.files.len() {
                    let path = info.file_path(f);
                    assert!(
                        path.components()
                            .all(|c| matches!(c, std::path::Component::Normal(_))),
                        "{path:?}"
                    );
                }
                assert_eq!(Torrent::from_bytes(&t.to_bytes()).unwrap(), t);
            }
        }
        assert!(accepted > 20, "only {accepted} mutations parsed");
    }

    #[test]
    fn truncated_prefixes_never_panic() {
        let file = wrap(b"d8:announce9:http://a/", UNSORTED_INFO, b"");
        for end in 0..file.len() {
            assert!(Torrent::from_bytes(&file[..end]).is_err());
        }
    }
}
