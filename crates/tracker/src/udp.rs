//! Sans-IO UDP tracker packets (BEP 15).
//!
//! All integers are big-endian. A client first sends a connect request and gets a connection id,
//! valid for one minute, which it then puts in each announce:
//!
//! ```text
//! connect request   (16): protocol_id u64 = 0x41727101980 | action u32 = 0 | transaction_id u32
//! connect response  (16): action u32 = 0 | transaction_id u32 | connection_id u64
//! announce request  (98): connection_id u64 | action u32 = 1 | transaction_id u32 | info_hash [20]
//!                         | peer_id [20] | downloaded u64 | left u64 | uploaded u64 | event u32
//!                         | ip u32 = 0 | key u32 | num_want i32 (-1 = default) | port u16
//! announce response (20 + 6n): action u32 = 1 | transaction_id u32 | interval u32 | leechers u32
//!                         | seeders u32 | n * (ip [4] | port u16)
//! error response    (8 + m): action u32 = 3 | transaction_id u32 | message [m]
//! ```
//!
//! A tracker reached over IPv6 sends 18-byte peers instead; [`decode_response_ipv6`] reads those.

use std::time::Duration;

use crate::http::{compact_v4, compact_v6};
use crate::{AnnounceRequest, AnnounceResponse, Error};

/// The magic constant that opens every connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// A decoded tracker-to-client packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpResponse {
    /// Answer to a connect request.
    Connect {
        /// Echo of the request's transaction id.
        tx: u32,
        /// The id to put in announces for the next minute.
        connection_id: u64,
    },
    /// Answer to an announce request. `min_interval`, `warning` and `tracker_id` are always
    /// `None`: BEP 15 has no fields for them.
    Announce {
        /// Echo of the request's transaction id.
        tx: u32,
        /// The announce result.
        resp: AnnounceResponse,
    },
    /// The tracker refused a request.
    Error {
        /// Echo of the request's transaction id.
        tx: u32,
        /// The tracker's human-readable message.
        message: String,
    },
}

impl UdpResponse {
    /// The transaction id the packet answers.
    pub fn tx(&self) -> u32 {
        match self {
            UdpResponse::Connect { tx, .. }
            | UdpResponse::Announce { tx, .. }
            | UdpResponse::Error { tx, .. } => *tx,
        }
    }
}

/// The 16-byte connect request.
pub fn encode_connect(tx: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    out[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    out[12..].copy_from_slice(&tx.to_be_bytes());
    out
}

/// The 98-byte announce request. The IP field is 0 (the tracker uses the packet's source
/// address); `num_want` `None` is sent as -1 and larger values are clamped to `i32::MAX`.
pub fn encode_announce(conn_id: u64, tx: u32, req: &AnnounceRequest) -> [u8; 98] {
    let num_want: i32 = req
        .num_want
        .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let mut out = [0u8; 98];
    let fields: [&[u8]; 13] = [
        &conn_id.to_be_bytes(),
        &ACTION_ANNOUNCE.to_be_bytes(),
        &tx.to_be_bytes(),
        &req.info_hash,
        &req.peer_id,
        &req.downloaded.to_be_bytes(),
        &req.left.to_be_bytes(),
        &req.uploaded.to_be_bytes(),
        &req.event.udp_code().to_be_bytes(),
        &0u32.to_be_bytes(),
        &req.key.to_be_bytes(),
        &num_want.to_be_bytes(),
        &req.port.to_be_bytes(),
    ];
    let mut pos = 0;
    for field in fields {
        out[pos..pos + field.len()].copy_from_slice(field);
        pos += field.len();
    }
    debug_assert_eq!(pos, out.len());
    out
}

/// Decodes a packet from a tracker reached over IPv4 (6-byte peers).
pub fn decode_response(buf: &[u8]) -> Result<UdpResponse, Error> {
    decode(buf, false)
}

/// Decodes a packet from a tracker reached over IPv6 (18-byte peers).
pub fn decode_response_ipv6(buf: &[u8]) -> Result<UdpResponse, Error> {
    decode(buf, true)
}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn decode(buf: &[u8], ipv6: bool) -> Result<UdpResponse, Error> {
    let short = Error::Malformed("udp tracker packet is too short");
    let (Some(action), Some(tx)) = (be_u32(buf, 0), be_u32(buf, 4)) else {
        return Err(short);
    };
    match action {
        ACTION_CONNECT => {
            let id = buf.get(8..16).ok_or(short)?;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(id);
            Ok(UdpResponse::Connect {
                tx,
                connection_id: u64::from_be_bytes(bytes),
            })
        }
        ACTION_ANNOUNCE => {
            let (Some(interval), Some(leechers), Some(seeders)) =
                (be_u32(buf, 8), be_u32(buf, 12), be_u32(buf, 16))
            else {
                return Err(short);
            };
            let peers = &buf[20..];
            let peers = if ipv6 {
                if !peers.len().is_multiple_of(18) {
                    return Err(Error::Malformed(
                        "udp announce peers are not a whole number of 18-byte entries",
                    ));
                }
                peers.chunks_exact(18).filter_map(compact_v6).collect()
            } else {
                if !peers.len().is_multiple_of(6) {
                    return Err(Error::Malformed(
                        "udp announce peers are not a whole number of 6-byte entries",
                    ));
                }
                peers.chunks_exact(6).filter_map(compact_v4).collect()
            };
            let resp = AnnounceResponse {
                interval: Duration::from_secs(u64::from(interval)),
                min_interval: None,
                peers,
                complete: Some(seeders),
                incomplete: Some(leechers),
                warning: None,
                tracker_id: None,
            };
            Ok(UdpResponse::Announce { tx, resp })
        }
        ACTION_ERROR => {
            let text = &buf[8..];
            // Some trackers NUL-terminate the message.
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            Ok(UdpResponse::Error {
                tx,
                message: String::from_utf8_lossy(&text[..end]).into_owned(),
            })
        }
        ACTION_SCRAPE => Err(Error::Malformed(
            "udp tracker sent a scrape answer to a non-scrape request",
        )),
        _ => Err(Error::Malformed("udp tracker packet has an unknown action")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn connect_request_bytes() {
        assert_eq!(
            encode_connect(0x0102_0304),
            [0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04]
        );
    }

    #[test]
    fn announce_request_bytes() {
        let req = AnnounceRequest {
            info_hash: [0x11; 20],
            peer_id: [0x22; 20],
            port: 0x1ae1,
            uploaded: 3,
            downloaded: 1,
            left: 0x0102_0304_0506_0708,
            event: Event::Stopped,
            num_want: None,
            key: 0xcafe_babe,
            tracker_id: Some("ignored over udp".into()),
        };
        let mut want = Vec::new();
        want.extend([0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80]); // connection id
        want.extend([0, 0, 0, 1]); // action announce
        want.extend([0xaa, 0xbb, 0xcc, 0xdd]); // transaction id
        want.extend([0x11; 20]);
        want.extend([0x22; 20]);
        want.extend([0, 0, 0, 0, 0, 0, 0, 1]); // downloaded
        want.extend([1, 2, 3, 4, 5, 6, 7, 8]); // left
        want.extend([0, 0, 0, 0, 0, 0, 0, 3]); // uploaded
        want.extend([0, 0, 0, 3]); // event stopped
        want.extend([0, 0, 0, 0]); // ip
        want.extend([0xca, 0xfe, 0xba, 0xbe]); // key
        want.extend([0xff, 0xff, 0xff, 0xff]); // num_want -1
        want.extend([0x1a, 0xe1]); // port 6881
        assert_eq!(
            encode_announce(0x1020_3040_5060_7080, 0xaabb_ccdd, &req).to_vec(),
            want
        );

        let req = AnnounceRequest {
            num_want: Some(u32::MAX),
            event: Event::Started,
            ..req
        };
        let packet = encode_announce(0, 0, &req);
        assert_eq!(packet[80..84], [0, 0, 0, 2]);
        assert_eq!(packet[92..96], [0x7f, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn decodes_connect() {
        let buf = [0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            decode_response(&buf).unwrap(),
            UdpResponse::Connect {
                tx: 9,
                connection_id: 0x0102_0304_0506_0708
            }
        );
        assert!(decode_response(&buf[..15]).is_err());
    }

    #[test]
    fn decodes_announce() {
        let mut buf = vec![
            0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0x07, 0x08, 0, 0, 0, 2, 0, 0, 0, 5,
        ];
        buf.extend([
            127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 1, 0, 0, 192, 168, 1, 2, 0xc8, 0xd5,
        ]);
        let UdpResponse::Announce { tx, resp } = decode_response(&buf).unwrap() else {
            panic!("not an announce")
        };
        assert_eq!(tx, 7);
        assert_eq!(resp.interval, Duration::from_secs(1800));
        assert_eq!((resp.incomplete, resp.complete), (Some(2), Some(5)));
        assert_eq!(
            resp.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "192.168.1.2:51413".parse().unwrap()
            ]
        );
        // Read as an IPv6 answer, the same 18 bytes are one peer.
        let UdpResponse::Announce { resp, .. } = decode_response_ipv6(&buf).unwrap() else {
            panic!("not an announce")
        };
        assert_eq!(
            resp.peers,
            vec!["[7f00:1:1ae1:a00:1:0:c0a8:102]:51413".parse().unwrap()]
        );
        assert!(decode_response(&buf[..buf.len() - 1]).is_err());
        assert!(decode_response(&buf[..19]).is_err());
    }

    #[test]
    fn decodes_error() {
        let mut buf = vec![0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef];
        buf.extend(b"unknown torrent\0");
        assert_eq!(
            decode_response(&buf).unwrap(),
            UdpResponse::Error {
                tx: 0xdead_beef,
                message: "unknown torrent".into()
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0, 0, 0, 1],
            &[0, 0, 0, 2, 0, 0, 0, 0],
            &[0, 0, 0, 9, 0, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert!(decode_response(bad).is_err(), "{bad:?}");
        }
    }
}
