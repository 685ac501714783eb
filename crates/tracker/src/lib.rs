//! BitTorrent tracker clients: HTTP (BEP 3, BEP 23) and UDP (BEP 15) announces, BEP 12 tiers.
//!
//! # Layout
//! - [`http`]: sans-IO HTTP tracker protocol. [`http::announce_url`] builds the announce URL,
//!   [`http::build_request`] the exact `GET` request bytes, [`http::decode_message`] frames an
//!   HTTP/1.1 response (Content-Length, chunked or read-to-EOF, body capped at 4 MiB) and
//!   [`parse_http_response`] turns the bencoded body into an [`AnnounceResponse`] (compact IPv4
//!   `peers`, dictionary `peers`, compact IPv6 `peers6`).
//! - [`udp`]: sans-IO UDP tracker packets: [`udp::encode_connect`], [`udp::encode_announce`] and
//!   [`udp::decode_response`].
//! - [`TierList`]: the BEP 12 `announce-list` rules (shuffle each tier once, move a tracker that
//!   answered to the front of its tier, fall through to the next tier only when a whole tier failed).
//! - [`Client`]: the thin tokio driver. It resolves the host, speaks HTTP/1.1 over a
//!   `TcpStream` or BEP 15 over a `UdpSocket` (retransmitting after `base * 2^n`), and caches UDP
//!   connection ids for the minute BEP 15 allows.
//!
//! Every decoder is total: malformed input yields an [`Error`], never a panic, and no allocation is
//! sized from a length field the peer controls.
//!
//! ```
//! use tracker::{parse_http_response, udp, AnnounceRequest, Event, TierList};
//! use rand::SeedableRng;
//!
//! // A compact BEP 23 response with one peer, 10.0.0.1:6881.
//! let resp = parse_http_response(b"d8:intervali900e5:peers6:\x0a\x00\x00\x01\x1a\xe1e").unwrap();
//! assert_eq!(resp.interval.as_secs(), 900);
//! assert_eq!(resp.peers, vec!["10.0.0.1:6881".parse().unwrap()]);
//!
//! // The 16-byte BEP 15 connect request: protocol magic, action 0, transaction id.
//! assert_eq!(udp::encode_connect(7)[..12], [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0]);
//!
//! let req = AnnounceRequest {
//!     info_hash: [0xaa; 20], peer_id: *b"-BT0001-abcdefghijkl", port: 6881, uploaded: 0,
//!     downloaded: 0, left: 100, event: Event::Started, num_want: None, key: 1, tracker_id: None,
//! };
//! let url = tracker::http::announce_url("http://t.example/announce", &req).unwrap();
//! assert!(url.contains("&left=100&compact=1&event=started"));
//!
//! // BEP 12: try tiers in order; a tracker that answers moves to the front of its tier.
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let mut tiers = TierList::new(vec![vec!["udp://a:1".into()], vec!["udp://b:1".into()]], &mut rng);
//! assert_eq!(tiers.current(), Some("udp://a:1"));
//! tiers.report_failure();
//! assert_eq!(tiers.current(), Some("udp://b:1"));
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::net::SocketAddr;
use std::time::Duration;

mod client;
pub mod http;
mod tiers;
pub mod udp;

pub use client::{Client, Config};
pub use http::parse_http_response;
pub use tiers::TierList;

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Event {
    /// A regular re-announce: the event is omitted (HTTP) or 0 (UDP).
    #[default]
    None,
    /// The first announce of a download.
    Started,
    /// The download just finished; sent once.
    Completed,
    /// The client is leaving the swarm.
    Stopped,
}

impl Event {
    /// The value of the HTTP `event` parameter, `None` when the parameter is omitted.
    pub fn as_http_str(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
        }
    }

    /// The BEP 15 event code (0 none, 1 completed, 2 started, 3 stopped).
    pub fn udp_code(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// What a client tells the tracker in one announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent's 20-byte info-hash (for v2, the truncated SHA-256 info-hash).
    pub info_hash: [u8; 20],
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// The port we accept peer connections on.
    pub port: u16,
    /// Bytes uploaded since the `started` event.
    pub uploaded: u64,
    /// Bytes downloaded since the `started` event.
    pub downloaded: u64,
    /// Bytes still needed to complete the torrent.
    pub left: u64,
    /// Why we announce.
    pub event: Event,
    /// How many peers we would like; `None` lets the tracker choose.
    pub num_want: Option<u32>,
    /// A per-session random value that lets the tracker recognise us across IP changes.
    pub key: u32,
    /// The `tracker id` an HTTP tracker gave us earlier, echoed back as `trackerid`.
    pub tracker_id: Option<String>,
}

/// What a tracker answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// How long to wait before the next regular announce. The tracker chooses it; callers should
    /// still enforce their own lower bound.
    pub interval: Duration,
    /// The tracker's minimum re-announce interval, if it gave one.
    pub min_interval: Option<Duration>,
    /// Peers, with port-0 entries dropped, in the order the tracker sent them.
    pub peers: Vec<SocketAddr>,
    /// Number of seeders, if reported.
    pub complete: Option<u32>,
    /// Number of leechers, if reported.
    pub incomplete: Option<u32>,
    /// A `warning message`: the announce succeeded but the tracker wants the user to know this.
    pub warning: Option<String>,
    /// A `tracker id` to send back in later announces to this tracker.
    pub tracker_id: Option<String>,
}

/// Why an announce failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tracker answered with a `failure reason` (HTTP) or an error packet (UDP).
    #[error("tracker refused the announce: {0}")]
    TrackerFailure(String),
    /// An `https://` announce URL.
    #[error("https trackers are not supported yet; use an http or udp tracker")]
    HttpsUnsupported,
    /// An announce URL whose scheme is neither `http` nor `udp`.
    #[error("unsupported tracker url {0:?}; use an http:// or udp:// announce url")]
    UnsupportedScheme(String),
    /// An announce URL that cannot be parsed.
    #[error("invalid tracker url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tracker's host name did not resolve to any address.
    #[error("could not resolve tracker host {host:?}: {source}; check the announce url and dns")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("network error talking to tracker: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP tracker did not finish answering in time.
    #[error(
        "http tracker did not answer within {0:?}; it may be down or overloaded, try again later"
    )]
    HttpTimeout(Duration),
    /// A UDP tracker never answered, even after every retransmission.
    #[error("udp tracker did not answer after {attempts} attempts; it may be down or udp may be blocked")]
    UdpTimeout {
        /// How many packets were sent before giving up.
        attempts: u32,
    },
    /// The HTTP tracker answered with a status other than 200 and no `failure reason`.
    #[error("http tracker answered {status} {reason}; check the announce url")]
    HttpStatus {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The HTTP tracker redirected; redirects are not followed.
    #[error(
        "http tracker redirected to {0:?}; redirects are not followed, use that url as the tracker"
    )]
    Redirect(String),
    /// The HTTP response (or its body) is larger than this crate accepts.
    #[error(
        "http tracker response exceeds {} bytes; the url probably does not point at a tracker",
        http::MAX_BODY_BYTES
    )]
    TooLarge,
    /// The HTTP response framing (status line, headers, chunks) is broken.
    #[error("malformed http response from tracker: {0}")]
    MalformedHttp(&'static str),
    /// The HTTP body is not bencode.
    #[error("tracker response is not valid bencode: {0}; the url may not point at a tracker")]
    Bencode(#[from] bencode::Error),
    /// The response is well-formed on the outside but its contents are not a valid announce answer.
    #[error("malformed tracker response: {0}")]
    Malformed(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes_follow_the_beps() {
        assert_eq!(Event::None.as_http_str(), None);
        assert_eq!(Event::Completed.as_http_str(), Some("completed"));
        assert_eq!(
            [
                Event::None,
                Event::Completed,
                Event::Started,
                Event::Stopped
            ]
            .map(Event::udp_code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn error_messages_are_actionable() {
        assert_eq!(
            Error::HttpsUnsupported.to_string(),
            "https trackers are not supported yet; use an http or udp tracker"
        );
        assert_eq!(
            Error::TrackerFailure("unregistered torrent".into()).to_string(),
            "tracker refused the announce: unregistered torrent"
        );
    }
}
