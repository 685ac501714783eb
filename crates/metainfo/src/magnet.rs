//! Magnet links (BEP 9, with BEP 53 `btmh` v2 hashes): `magnet:?xt=urn:btih:…&dn=…&tr=…`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::error::clip;
use crate::info_hash::decode_hex;
use crate::{Error, InfoHash, InfoHashV2, Torrent};

/// A parsed magnet link. At least one of the two info-hashes is present; a hybrid torrent's
/// link may carry both.
///
/// ```
/// use metainfo::Magnet;
///
/// let m = Magnet::parse(
///     "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac\
///      &xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb\
///      &dn=bittorrent-v1-v2-hybrid-test&tr=udp%3A%2F%2Ft.example%3A6969&x.pe=[::1]:6881",
/// )?;
/// assert_eq!(m.display_name.as_deref(), Some("bittorrent-v1-v2-hybrid-test"));
/// assert_eq!(m.trackers, ["udp://t.example:6969"]);
/// assert_eq!(m.peers, ["[::1]:6881".parse().unwrap()]);
/// assert_eq!(Magnet::parse(&m.to_string())?, m);
/// # Ok::<(), metainfo::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Magnet {
    /// `xt=urn:btih:` (40 hex or 32 base32 digits).
    pub info_hash_v1: Option<InfoHash>,
    /// `xt=urn:btmh:1220…`, the SHA-256 multihash of a v2 or hybrid torrent.
    pub info_hash_v2: Option<InfoHashV2>,
    /// `dn`, the suggested name.
    pub display_name: Option<String>,
    /// Every `tr` (tracker URL), in order.
    pub trackers: Vec<String>,
    /// Every `x.pe` whose host is an IP address.
    pub peers: Vec<SocketAddr>,
    /// Every `x.pe` whose host is a name, as `host:port`, for callers that resolve names.
    pub peer_hosts: Vec<String>,
    /// Every `ws` (BEP 19 web seed URL).
    pub web_seeds: Vec<String>,
}

impl Magnet {
    /// Parses a magnet link. Unknown parameters and `xt`s of other schemes are ignored;
    /// repeated parameters may carry BEP 9's `.1`, `.2` … suffixes.
    pub fn parse(s: &str) -> Result<Magnet, Error> {
        let s = s.trim();
        let query = match s.get(..8) {
            Some(prefix) if prefix.eq_ignore_ascii_case("magnet:?") => &s[8..],
            _ => return Err(Error::NotAMagnet),
        };
        let mut m = Magnet::default();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = param.split_once('=').unwrap_or((param, ""));
            let key = base_key(key);
            match key.as_str() {
                "xt" => m.add_topic(&decode(raw, false)?)?,
                "dn" => m.display_name = Some(decode(raw, true)?),
                "tr" => push_nonempty(&mut m.trackers, decode(raw, false)?),
                "ws" => push_nonempty(&mut m.web_seeds, decode(raw, false)?),
                "x.pe" => m.add_peer(&decode(raw, false)?)?,
                _ => {}
            }
        }
        if m.info_hash_v1.is_none() && m.info_hash_v2.is_none() {
            return Err(Error::MagnetWithoutHash);
        }
        Ok(m)
    }

    /// A link for `torrent`: its info-hashes, name, trackers (tiers flattened) and web seeds.
    pub fn from_torrent(torrent: &Torrent) -> Magnet {
        Magnet {
            info_hash_v1: torrent.info_hashes.v1,
            info_hash_v2: torrent.info_hashes.v2,
            display_name: Some(torrent.info.name.clone()),
            trackers: torrent.trackers().into_iter().flatten().collect(),
            peers: Vec::new(),
            peer_hosts: Vec::new(),
            web_seeds: torrent.url_list.clone(),
        }
    }

    /// The 20-byte id for the wire, trackers and the DHT: the v1 hash if given, else the
    /// truncated v2 hash.
    pub fn wire_id(&self) -> Option<InfoHash> {
        self.info_hash_v1
            .or_else(|| self.info_hash_v2.map(|h| InfoHash(h.truncated())))
    }

    /// Whether `torrent` is the one this link names: every hash the link gives matches.
    pub fn matches(&self, torrent: &Torrent) -> bool {
        let v1_ok = self
            .info_hash_v1
            .is_none_or(|h| torrent.info_hashes.v1 == Some(h));
        let v2_ok = self
            .info_hash_v2
            .is_none_or(|h| torrent.info_hashes.v2 == Some(h));
        v1_ok && v2_ok && (self.info_hash_v1.is_some() || self.info_hash_v2.is_some())
    }

    fn add_topic(&mut self, topic: &str) -> Result<(), Error> {
        let scheme = topic.get(..9).map(str::to_ascii_lowercase);
        let hash = topic.get(9..).unwrap_or("");
        let bad = || Error::BadMagnetHash(clip(hash));
        match scheme.as_deref() {
            Some("urn:btih:") => {
                let h = match hash.len() {
                    40 => decode_hex(hash).map(InfoHash),
                    32 => decode_base32(hash).map(InfoHash),
                    _ => None,
                }
                .ok_or_else(bad)?;
                self.info_hash_v1.get_or_insert(h);
            }
            Some("urn:btmh:") => {
                // Multihash: 0x12 (SHA-256), 0x20 (32 bytes), digest.
                let digest = hash
                    .get(..4)
                    .filter(|code| *code == "1220")
                    .and_then(|_| hash.get(4..))
                    .and_then(decode_hex)
                    .ok_or_else(bad)?;
                self.info_hash_v2.get_or_insert(InfoHashV2(digest));
            }
            _ => {}
        }
        Ok(())
    }

    fn add_peer(&mut self, peer: &str) -> Result<(), Error> {
        let bad = || Error::BadMagnetPeer(clip(peer));
        let (host, port) = if let Some(rest) = peer.strip_prefix('[') {
            let (ip, port) = rest.split_once("]:").ok_or_else(bad)?;
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| bad())?;
            (Some(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = peer.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || host.contains([':', ' ', '/', '[', ']']) {
                return Err(bad());
            }
            (
                host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
                port,
            )
        };
        let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?;
        match host {
            Some(ip) => self.peers.push(SocketAddr::new(ip, port)),
            None => self.peer_hosts.push(peer.to_owned()),
        }
        Ok(())
    }
}

impl fmt::Display for Magnet {
    /// The canonical form: `xt` (btih, then btmh), `dn`, `tr`, `ws`, `x.pe`, every value
    /// percent-encoded except RFC 3986 unreserved characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("magnet:?")?;
        let mut sep = "";
        // Hex needs no escaping; other clients expect the colons as they are.
        if let Some(h) = self.info_hash_v1 {
            write!(f, "{sep}xt=urn:btih:{h}")?;
            sep = "&";
        }
        if let Some(h) = self.info_hash_v2 {
            write!(f, "{sep}xt=urn:btmh:1220{h}")?;
            sep = "&";
        }
        let mut param = |f: &mut fmt::Formatter<'_>, key: &str, value: &str| {
            let r = write!(f, "{sep}{key}={}", Encoded(value));
            sep = "&";
            r
        };
        if let Some(name) = &self.display_name {
            param(f, "dn", name)?;
        }
        for tr in &self.trackers {
            param(f, "tr", tr)?;
        }
        for ws in &self.web_seeds {
            param(f, "ws", ws)?;
        }
        for peer in &self.peers {
            param(f, "x.pe", &peer.to_string())?;
        }
        for host in &self.peer_hosts {
            param(f, "x.pe", host)?;
        }
        Ok(())
    }
}

impl FromStr for Magnet {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Magnet::parse(s)
    }
}

/// `tr.1` → `tr`: strips a numeric suffix from a known key (BEP 9 allows them on repeats).
fn base_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    match key.rsplit_once('.') {
        Some((base, n))
            if !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && matches!(base, "xt" | "dn" | "tr" | "ws" | "x.pe") =>
        {
            base.to_owned()
        }
        _ => key,
    }
}

fn push_nonempty(list: &mut Vec<String>, value: String) {
    let value = value.trim();
    if !value.is_empty() && !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

/// Percent-decodes a parameter value (and `+` as a space when `plus_is_space`); invalid UTF-8
/// is replaced, malformed escapes are an error.
fn decode(raw: &str, plus_is_space: bool) -> Result<String, Error> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(decode_hex::<1>);
                let [byte] = hex.ok_or_else(|| Error::BadMagnetEncoding(clip(raw)))?;
                out.push(byte);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// RFC 4648 base32 (either case, no padding) of exactly 20 bytes.
fn decode_base32(s: &str) -> Option<[u8; 20]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 20];
    let mut acc: u64 = 0;
    let mut bits = 0;
    let mut n = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = acc << 5 | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
        }
    }
    Some(out)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
struct Encoded<'a>(&'a str);

impl fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "631a31dd0a46257d5078c0dee4e66e26f73e42ac";
    const V2: &str = "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb";

    #[test]
    fn parses_a_typical_v1_link() {
        let m = Magnet::parse(
            "magnet:?xt=urn:btih:DD8255ECDC7CA55FB0BBF81323D87062DB1F6D1C\
             &dn=Big+Buck+Bunny&tr=udp%3A%2F%2Fexplodie.org%3A6969\
             &tr=udp%3A%2F%2Ftracker.opentrackr.org%3A1337%2Fannounce\
             &tr=wss%3A%2F%2Ftracker.btorrent.xyz&ws=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2F\
             &xl=276445467&so=0",
        )
        .unwrap();
        assert_eq!(
            m.info_hash_v1.unwrap().to_hex(),
            "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"
        );
        assert_eq!(m.info_hash_v2, None);
        assert_eq!(m.display_name.as_deref(), Some("Big Buck Bunny"));
        assert_eq!(
            m.trackers,
            [
                "udp://explodie.org:6969",
                "udp://tracker.opentrackr.org:1337/announce",
                "wss://tracker.btorrent.xyz"
            ]
        );
        assert_eq!(m.web_seeds, ["https://webtorrent.io/torrents/"]);
        assert_eq!(m.wire_id(), m.info_hash_v1);
        assert_eq!(
            m.to_string(),
            "magnet:?xt=urn:btih:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c&dn=Big%20Buck%20Bunny\
             &tr=udp%3A%2F%2Fexplodie.org%3A6969\
             &tr=udp%3A%2F%2Ftracker.opentrackr.org%3A1337%2Fannounce\
             &tr=wss%3A%2F%2Ftracker.btorrent.xyz&ws=https%3A%2F%2Fwebtorrent.io%2Ftorrents%2F"
        );
        assert_eq!(m.to_string().parse::<Magnet>().unwrap(), m);
    }

    #[test]
    fn parses_hybrid_v2_and_base32_links() {
        let hybrid = format!("magnet:?xt=urn:btih:{V1}&xt=urn:btmh:1220{V2}&dn=hybrid");
        let m = Magnet::parse(&hybrid).unwrap();
        assert_eq!(m.info_hash_v1.unwrap().to_hex(), V1);
        assert_eq!(m.info_hash_v2.unwrap().to_hex(), V2);
        assert_eq!(m.to_string(), hybrid);

        let v2_only =
            Magnet::parse(&format!("MAGNET:?xt=URN:BTMH:1220{}", V2.to_uppercase())).unwrap();
        assert_eq!(v2_only.info_hash_v1, None);
        assert_eq!(v2_only.wire_id().unwrap().to_hex(), &V2[..40]);

        // Base32 of the v1 hash, both cases.
        let b32 = "MMNDDXIKIYSX2UDYYDPOJZTOE33T4QVM";
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}"))
                .unwrap()
                .info_hash_v1
                .unwrap()
                .to_hex(),
            V1
        );
        let lower = b32.to_lowercase();
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{lower}"))
                .unwrap()
                .info_hash_v1
                .unwrap()
                .to_hex(),
            V1
        );

        // Numbered repeats, other xt schemes and unknown keys are fine.
        let m = Magnet::parse(&format!(
            "magnet:?xt.1=urn:ed2k:31D6CFE0D16AE931B73C59D7E0C089C0&xt.2=urn:btih:{V1}&tr.1=http://a/&tr.2=http://b/&tr.3=http://a/&kt=x&&foo"
        ))
        .unwrap();
        assert_eq!(m.trackers, ["http://a/", "http://b/"]);
    }

    #[test]
    fn peers_by_address_and_by_name() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{V1}&x.pe=10.0.0.1:6881&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A51413&x.pe=peer.example:7000"
        ))
        .unwrap();
        assert_eq!(
            m.peers,
            [
                "10.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:51413".parse().unwrap()
            ]
        );
        assert_eq!(m.peer_hosts, ["peer.example:7000"]);
        assert_eq!(Magnet::parse(&m.to_string()).unwrap(), m);
        for bad in [
            "10.0.0.1",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "[::1]",
            "[zz]:1",
            "::1:5",
            ":80",
        ] {
            assert_eq!(
                Magnet::parse(&format!("magnet:?xt=urn:btih:{V1}&x.pe={bad}")),
                Err(Error::BadMagnetPeer(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            Magnet::parse("http://x/?xt=urn:btih:00"),
            Err(Error::NotAMagnet)
        );
        assert_eq!(Magnet::parse("magnet:"), Err(Error::NotAMagnet));
        assert_eq!(
            Magnet::parse("magnet:?dn=x&tr=http://t/"),
            Err(Error::MagnetWithoutHash)
        );
        assert_eq!(
            Magnet::parse("magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C"),
            Err(Error::MagnetWithoutHash)
        );
        for bad in [
            &V1[..39],
            "zz1a31dd0a46257d5078c0dee4e66e26f73e42ac",
            "MMNDDXIKIYSX2UDYYDPOJZTOE33T4QV1",
        ] {
            assert_eq!(
                Magnet::parse(&format!("magnet:?xt=urn:btih:{bad}")),
                Err(Error::BadMagnetHash(bad.into()))
            );
        }
        let sha1_multihash = format!("1114{V1}");
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btmh:{sha1_multihash}")),
            Err(Error::BadMagnetHash(sha1_multihash))
        );
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{V1}&dn=%4")),
            Err(Error::BadMagnetEncoding("%4".into()))
        );
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{V1}&dn=%zz%C3")),
            Err(Error::BadMagnetEncoding("%zz%C3".into()))
        );
        // Multi-byte characters next to `%` never split a character.
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btih:{V1}&dn=%é")).is_err());
        // Invalid UTF-8 in a name is replaced, not fatal.
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{V1}&dn=caf%E9")).unwrap();
        assert_eq!(m.display_name.as_deref(), Some("caf\u{fffd}"));
    }

    #[test]
    fn links_round_trip_through_torrents() {
        let t = crate::create::Builder::single_file("f.bin", 5)
            .unwrap()
            .trackers(vec![vec!["http://a/".into()], vec!["http://b/".into()]])
            .build(vec![[0; 20]])
            .unwrap();
        let m = Magnet::from_torrent(&t);
        assert!(m.matches(&t));
        assert_eq!(m.trackers, ["http://a/", "http://b/"]);
        assert_eq!(m.display_name.as_deref(), Some("f.bin"));
        let other = Magnet {
            info_hash_v1: Some(InfoHash([9; 20])),
            ..m.clone()
        };
        assert!(!other.matches(&t));
        let v2_for_v1 = Magnet {
            info_hash_v1: None,
            info_hash_v2: Some(InfoHashV2([1; 32])),
            ..m
        };
        assert!(!v2_for_v1.matches(&t));
        assert!(!Magnet::default().matches(&t));
    }
}
