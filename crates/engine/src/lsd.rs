//! Local Service Discovery (BEP 14): finding peers on the local network by multicast.
//!
//! A node multicasts `BT-SEARCH` datagrams naming the info-hashes it is interested in and the TCP
//! port it listens on; every node on the link that has one of those torrents dials the sender.
//! The codec here is sans-IO ([`encode_announce`], [`parse_announce`]); `run` is the driver.
//! Each datagram carries a random cookie so a node recognises and ignores its own announces, which
//! multicast loops back to it.
//!
//! Private torrents (BEP 27) are never announced: their peers must come from their trackers.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::session::SessionShared;

/// The IPv4 multicast group and port BEP 14 assigns.
pub const LSD_GROUP_V4: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 192, 152, 143), 6771);
/// How often every torrent is announced again (BEP 14: at most once a minute per torrent; five
/// minutes is what deployed clients use).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Info-hashes per datagram, keeping it well inside one 1400-byte packet.
const HASHES_PER_DATAGRAM: usize = 20;
/// Largest datagram we read; announces are a few hundred bytes.
const MAX_DATAGRAM: usize = 1500;

/// One `BT-SEARCH` announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// TCP port the sender accepts peers on.
    pub port: u16,
    /// Torrents the sender takes part in.
    pub info_hashes: Vec<[u8; 20]>,
    /// The sender's cookie, if it sent one.
    pub cookie: Option<String>,
}

/// Writes a `BT-SEARCH` datagram for `hashes` (BEP 14 wire format, `\r\n` line ends).
pub fn encode_announce(group: SocketAddr, port: u16, hashes: &[[u8; 20]], cookie: &str) -> Vec<u8> {
    let mut s = format!("BT-SEARCH * HTTP/1.1\r\nHost: {group}\r\nPort: {port}\r\n");
    for h in hashes {
        s.push_str("Infohash: ");
        for b in h {
            s.push_str(&format!("{b:02x}"));
        }
        s.push_str("\r\n");
    }
    s.push_str(&format!("cookie: {cookie}\r\n\r\n\r\n"));
    s.into_bytes()
}

/// Reads a `BT-SEARCH` datagram. Anything else (other multicast traffic, malformed headers, a
/// missing or zero port, no valid info-hash) is `None`: LSD input is unauthenticated and ignored
/// rather than reported.
pub fn parse_announce(datagram: &[u8]) -> Option<Announce> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut lines = text.split("\r\n");
    if lines.next()? != "BT-SEARCH * HTTP/1.1" {
        return None;
    }
    let mut announce = Announce {
        port: 0,
        info_hashes: Vec::new(),
        cookie: None,
    };
    for line in lines.take(64) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "port" => announce.port = value.parse().ok()?,
            "infohash" => {
                if let Ok(h) = metainfo::InfoHash::from_hex(value) {
                    if announce.info_hashes.len() < HASHES_PER_DATAGRAM * 5 {
                        announce.info_hashes.push(h.0);
                    }
                }
            }
            "cookie" => announce.cookie = Some(value.to_owned()),
            _ => {}
        }
    }
    (announce.port != 0 && !announce.info_hashes.is_empty()).then_some(announce)
}

/// Joins the LSD group, announces the session's public torrents every few minutes and hands the
/// senders of matching announces to their torrents as peers to dial.
pub(crate) async fn run(shared: Arc<SessionShared>) {
    let socket = match bind(LSD_GROUP_V4) {
        Ok(s) => s,
        Err(e) => {
            return tracing::warn!(
                "local service discovery is off: cannot join {LSD_GROUP_V4}: {e}. \
                 Disable it with `--no-lsd` to silence this"
            )
        }
    };
    let cookie = format!("{:08x}", rand::random::<u32>());
    let mut tick = tokio::time::interval(ANNOUNCE_INTERVAL);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            // Every few minutes, and at once when a torrent is added (so peers already on the
            // link learn of it without waiting for the next round).
            _ = tick.tick() => announce(&socket, &shared, &cookie).await,
            () = shared.lsd_wake.notified() => announce(&socket, &shared, &cookie).await,
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(a) = parse_announce(&buf[..n]) else { continue };
                if a.cookie.as_deref() == Some(cookie.as_str()) {
                    continue;
                }
                let peer = SocketAddr::new(from.ip(), a.port);
                for h in &a.info_hashes {
                    if let Some(t) = shared.public_torrent(h) {
                        tracing::debug!(%peer, "peer found by local service discovery");
                        t.add_peer(peer);
                    }
                }
            }
        }
    }
}

/// Multicasts the session's public torrents, a datagram per [`HASHES_PER_DATAGRAM`] of them.
async fn announce(socket: &UdpSocket, shared: &SessionShared, cookie: &str) {
    let group = SocketAddr::V4(LSD_GROUP_V4);
    for chunk in shared.public_info_hashes().chunks(HASHES_PER_DATAGRAM) {
        let msg = encode_announce(group, shared.listen_port, chunk, cookie);
        if let Err(e) = socket.send_to(&msg, group).await {
            tracing::debug!("lsd announce failed: {e}");
        }
    }
}

/// A socket bound to the LSD port (shared with other LSD clients on this host) and joined to the
/// group on every interface.
fn bind(group: SocketAddrV4) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port())).into())?;
    socket.join_multicast_v4(group.ip(), &Ipv4Addr::UNSPECIFIED)?;
    socket.set_multicast_loop_v4(true)?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_exact_bytes_and_round_trip() {
        let group = SocketAddr::V4(LSD_GROUP_V4);
        let msg = encode_announce(group, 6881, &[[0xab; 20]], "c00k1e");
        let expected = "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
             Infohash: abababababababababababababababababababab\r\ncookie: c00k1e\r\n\r\n\r\n";
        assert_eq!(std::str::from_utf8(&msg).unwrap(), expected);
        assert_eq!(
            parse_announce(&msg),
            Some(Announce {
                port: 6881,
                info_hashes: vec![[0xab; 20]],
                cookie: Some("c00k1e".into()),
            })
        );
    }

    #[test]
    fn reads_several_hashes_and_any_header_case() {
        let msg = b"BT-SEARCH * HTTP/1.1\r\nhost: 239.192.152.143:6771\r\nPORT: 51413\r\n\
            INFOHASH: 0123456789abcdef0123456789abcdef01234567\r\n\
            infohash: 89ABCDEF0123456789ABCDEF0123456789abcdef\r\n\r\n\r\n";
        let a = parse_announce(msg).unwrap();
        assert_eq!(a.port, 51413);
        assert_eq!(a.info_hashes.len(), 2);
        assert_eq!(a.info_hashes[1][0], 0x89);
        assert_eq!(a.cookie, None);
    }

    #[test]
    fn ignores_what_is_not_an_announce() {
        for bad in [
            &b""[..],
            b"M-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n",
            b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n",
            b"BT-SEARCH * HTTP/1.1\r\nPort: 99999\r\nInfohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n",
            b"BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: nothex\r\n\r\n",
            b"BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\n\r\n",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_announce(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
