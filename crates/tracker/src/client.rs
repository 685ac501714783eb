//! The tokio driver: moves bytes between sockets and the sans-IO [`crate::http`] and
//! [`crate::udp`] codecs, and owns the UDP connection-id cache.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::http;
use crate::udp::{self, UdpResponse};
use crate::{AnnounceRequest, AnnounceResponse, Error};

/// BEP 15: a connection id may be used until one minute after it was received.
const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);

/// Large enough for any UDP datagram, so an answer is never truncated.
const UDP_RECV_BUF: usize = 64 * 1024;

/// Timeouts for [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Whole HTTP announce, from name resolution to the last body byte.
    pub http_timeout: Duration,
    /// UDP retransmission base: the n-th send waits `udp_base_timeout * 2^n` for an answer.
    pub udp_base_timeout: Duration,
    /// Highest n in `udp_base_timeout * 2^n`: a UDP announce gives up after
    /// `udp_max_retries + 1` unanswered sends.
    pub udp_max_retries: u32,
}

impl Default for Config {
    /// 30 s for HTTP; BEP 15's 15 s base and n up to 8 for UDP.
    fn default() -> Self {
        Self {
            http_timeout: Duration::from_secs(30),
            udp_base_timeout: Duration::from_secs(15),
            udp_max_retries: 8,
        }
    }
}

/// Announces to HTTP and UDP trackers. Cheap to clone; clones share the UDP connection-id cache.
#[derive(Debug, Clone, Default)]
pub struct Client {
    config: Config,
    udp_connections: Arc<Mutex<ConnectionCache>>,
}

/// UDP connection ids by tracker address, each with the time it was received. Time is a
/// parameter so the expiry rule is testable without waiting a minute.
#[derive(Debug, Default)]
struct ConnectionCache {
    ids: HashMap<SocketAddr, (u64, Instant)>,
}

impl ConnectionCache {
    /// The id for `addr` if it is still usable at `now`; expired entries are dropped.
    fn get(&mut self, addr: SocketAddr, now: Instant) -> Option<u64> {
        self.ids.retain(|_, (_, received)| {
            now.saturating_duration_since(*received) < CONNECTION_ID_LIFETIME
        });
        self.ids.get(&addr).map(|(id, _)| *id)
    }

    fn insert(&mut self, addr: SocketAddr, id: u64, received: Instant) {
        self.ids.insert(addr, (id, received));
    }

    fn remove(&mut self, addr: SocketAddr) {
        self.ids.remove(&addr);
    }
}

impl Client {
    /// A client with the given timeouts.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            udp_connections: Arc::default(),
        }
    }

    /// The client's timeouts.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Announces `req` to the tracker at `url` (`http://…` or `udp://host:port…`).
    pub async fn announce(
        &self,
        url: &str,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, Error> {
        let url = url.trim();
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let result = match scheme.as_deref() {
            Some("http") => self.announce_http(url, req).await,
            Some("https") => Err(Error::HttpsUnsupported),
            Some("udp") => self.announce_udp(url, req).await,
            _ => Err(Error::UnsupportedScheme(url.to_owned())),
        };
        match &result {
            Ok(resp) => {
                tracing::debug!(url, peers = resp.peers.len(), interval = ?resp.interval, "announce ok")
            }
            Err(err) => tracing::debug!(url, %err, "announce failed"),
        }
        result
    }

    async fn announce_http(
        &self,
        url: &str,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, Error> {
        let request = http::build_request(url, req)?;
        let limit = self.config.http_timeout;
        let response = tokio::time::timeout(limit, http_exchange(&request))
            .await
            .map_err(|_| Error::HttpTimeout(limit))??;
        match response.status {
            200..=299 => http::parse_http_response(&response.body),
            300..=399 if response.location.is_some() => {
                Err(Error::Redirect(response.location.unwrap_or_default()))
            }
            status => match http::parse_http_response(&response.body) {
                // Some trackers send their `failure reason` with an error status.
                Err(failure @ Error::TrackerFailure(_)) => Err(failure),
                _ => Err(Error::HttpStatus {
                    status,
                    reason: response.reason,
                }),
            },
        }
    }

    async fn announce_udp(
        &self,
        url: &str,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, Error> {
        let (host, port) = parse_udp_url(url)?;
        let addr = *resolve(host, port)
            .await?
            .first()
            .ok_or_else(|| no_address(host))?;
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        // A connected socket only delivers datagrams from the tracker's address.
        socket.connect(addr).await?;
        let decode = if addr.is_ipv4() {
            udp::decode_response
        } else {
            udp::decode_response_ipv6
        };

        // One transaction id for the whole exchange: a late answer to an earlier retransmission
        // is as good as an answer to the latest one.
        let tx: u32 = rand::random();
        let mut buf = vec![0u8; UDP_RECV_BUF];
        let mut n = 0u32;
        loop {
            let connection_id = self.lock_connections().get(addr, Instant::now());
            match connection_id {
                Some(id) => socket.send(&udp::encode_announce(id, tx, req)).await?,
                None => socket.send(&udp::encode_connect(tx)).await?,
            };
            let wait = self
                .config
                .udp_base_timeout
                .saturating_mul(2u32.saturating_pow(n));
            let deadline = Instant::now() + wait;
            let sent_connect = connection_id.is_none();
            match recv_answer(&socket, tx, sent_connect, deadline, decode, &mut buf).await? {
                None => {
                    n += 1;
                    if n > self.config.udp_max_retries {
                        return Err(Error::UdpTimeout { attempts: n });
                    }
                    tracing::trace!(url, n, "udp tracker silent, retransmitting");
                }
                Some(UdpResponse::Connect {
                    connection_id: id, ..
                }) => {
                    self.lock_connections().insert(addr, id, Instant::now());
                }
                Some(UdpResponse::Announce { resp, .. }) => return Ok(resp),
                Some(UdpResponse::Error { message, .. }) => {
                    // The usual cause is a connection id the tracker no longer accepts.
                    self.lock_connections().remove(addr);
                    return Err(Error::TrackerFailure(message));
                }
            }
        }
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, ConnectionCache> {
        // The cache holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.udp_connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Resolves, connects, sends the request and reads one response.
async fn http_exchange(request: &http::Request) -> Result<http::Response, Error> {
    let mut last_error = None;
    let mut stream = None;
    for addr in resolve(&request.host, request.port).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut stream = match (stream, last_error) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(Error::Io(e)),
        (None, None) => return Err(no_address(&request.host)),
    };
    stream.write_all(&request.bytes).await?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        buf.extend_from_slice(&chunk[..read]);
        if let Some(response) = http::decode_message(&buf, read == 0)? {
            return Ok(response);
        }
        if read == 0 {
            // decode_message never returns Ok(None) at EOF; keep the loop finite regardless.
            return Err(Error::MalformedHttp(
                "connection closed before the response was complete",
            ));
        }
    }
}

/// Waits until `deadline` for a well-formed answer carrying `tx` that fits the request sent (a
/// connect answer after a connect, an announce answer after an announce, or an error). Other
/// datagrams, such as a late duplicate connect answer, are ignored.
async fn recv_answer(
    socket: &UdpSocket,
    tx: u32,
    sent_connect: bool,
    deadline: Instant,
    decode: fn(&[u8]) -> Result<UdpResponse, Error>,
    buf: &mut [u8],
) -> Result<Option<UdpResponse>, Error> {
    loop {
        let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(buf)).await else {
            return Ok(None);
        };
        let len = received?;
        match decode(&buf[..len]) {
            Ok(answer) if answer.tx() == tx && fits(&answer, sent_connect) => {
                return Ok(Some(answer))
            }
            Ok(answer) => tracing::trace!(?answer, want = tx, "ignoring stale udp tracker answer"),
            Err(err) => tracing::debug!(%err, "ignoring malformed udp tracker packet"),
        }
    }
}

/// Whether `answer` can be the reply to the request just sent.
fn fits(answer: &UdpResponse, sent_connect: bool) -> bool {
    match answer {
        UdpResponse::Connect { .. } => sent_connect,
        UdpResponse::Announce { .. } => !sent_connect,
        UdpResponse::Error { .. } => true,
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Error::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(no_address(host));
    }
    Ok(addrs)
}

fn no_address(host: &str) -> Error {
    Error::Resolve {
        host: host.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses found"),
    }
}

/// `udp://host:port[/path][?query]` → host (IPv6 without brackets) and port. The path is ignored:
/// BEP 15 has no field for it.
fn parse_udp_url(url: &str) -> Result<(&str, u16), Error> {
    let rest = url.get(6..).filter(|_| {
        url.get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("udp://"))
    });
    let rest = rest.ok_or_else(|| Error::UnsupportedScheme(url.to_owned()))?;
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, port) = http::split_host_port(url, &rest[..auth_end])?;
    let port = port.ok_or(Error::InvalidUrl {
        url: url.to_owned(),
        reason: "udp tracker urls need a port",
    })?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udp_urls() {
        assert_eq!(
            parse_udp_url("udp://tracker.example:1337/announce").unwrap(),
            ("tracker.example", 1337)
        );
        assert_eq!(parse_udp_url("UDP://[::1]:80").unwrap(), ("::1", 80));
        assert_eq!(
            parse_udp_url("udp://1.2.3.4:6969?x=1").unwrap(),
            ("1.2.3.4", 6969)
        );
        assert!(matches!(
            parse_udp_url("udp://tracker.example/announce"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_udp_url("udp://:80"),
            Err(Error::InvalidUrl { .. })
        ));
    }

    #[test]
    fn connection_ids_expire_after_one_minute() {
        let mut cache = ConnectionCache::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let t0 = Instant::now();
        cache.insert(a, 11, t0);
        cache.insert(b, 22, t0 + Duration::from_secs(30));
        assert_eq!(cache.get(a, t0 + Duration::from_millis(59_999)), Some(11));
        assert_eq!(cache.get(a, t0 + Duration::from_secs(60)), None);
        assert_eq!(cache.get(b, t0 + Duration::from_secs(60)), Some(22));
        cache.remove(b);
        assert_eq!(cache.get(b, t0 + Duration::from_secs(60)), None);
        assert!(cache.ids.is_empty());
    }

    #[test]
    fn default_config_follows_bep_15() {
        let c = Config::default();
        assert_eq!(
            (
                c.http_timeout.as_secs(),
                c.udp_base_timeout.as_secs(),
                c.udp_max_retries
            ),
            (30, 15, 8)
        );
    }

    #[tokio::test]
    async fn rejects_unsupported_schemes_without_io() {
        let client = Client::default();
        let req = AnnounceRequest {
            info_hash: [0; 20],
            peer_id: [0; 20],
            port: 1,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: crate::Event::None,
            num_want: None,
            key: 0,
            tracker_id: None,
        };
        let err = client
            .announce("https://tracker.example/announce", &req)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "https trackers are not supported yet; use an http or udp tracker"
        );
        assert!(matches!(
            client.announce("wss://t/a", &req).await,
            Err(Error::UnsupportedScheme(_))
        ));
        assert!(matches!(
            client.announce("magnet:?xt=x", &req).await,
            Err(Error::UnsupportedScheme(_))
        ));
    }
}
