//! Sans-IO HTTP tracker protocol (BEP 3 announce, BEP 23 compact peers, BEP 7 `peers6`).
//!
//! The driver in [`crate::Client`] only moves bytes: it sends [`Request::bytes`], appends what it
//! reads to a buffer, and calls [`decode_message`] until a whole response is there. The body then
//! goes to [`parse_http_response`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::{AnnounceRequest, AnnounceResponse, Error};

/// Largest response body accepted. Real announce answers are a few KiB; anything this big is not a
/// tracker.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// Largest status line plus headers accepted.
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// Largest raw response accepted: head, body and chunked-encoding overhead together. Bounds what
/// the driver buffers even when chunk headers are padded out.
pub const MAX_MESSAGE_BYTES: usize = MAX_HEAD_BYTES + MAX_BODY_BYTES + (64 << 10);

/// Used when a tracker omits `interval`, which BEP 3 requires; the common client choice.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1800);

/// A parsed `http://` announce URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpUrl<'a> {
    /// Host as written, with brackets for IPv6 literals (the `Host` header value without port).
    host: &'a str,
    /// Explicit port, if any.
    port: Option<u16>,
    /// Path and query, starting with `/`.
    target: &'a str,
}

/// An HTTP `GET` ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Host to resolve (IPv6 literals without brackets).
    pub host: String,
    /// TCP port to connect to.
    pub port: u16,
    /// The complete request: request line, headers, blank line.
    pub bytes: Vec<u8>,
}

/// A framed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body with any chunked transfer-encoding removed.
    pub body: Vec<u8>,
}

/// Checks the scheme of `url` and returns the part after `http://`.
fn strip_http_scheme(url: &str) -> Result<&str, Error> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| Error::UnsupportedScheme(url.to_owned()))?;
    let scheme = &url[..scheme_end];
    if scheme.eq_ignore_ascii_case("http") {
        Ok(&url[scheme_end + 3..])
    } else if scheme.eq_ignore_ascii_case("https") {
        Err(Error::HttpsUnsupported)
    } else {
        Err(Error::UnsupportedScheme(url.to_owned()))
    }
}

fn invalid(url: &str, reason: &'static str) -> Error {
    Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    }
}

/// Splits `host[:port]` or `[v6][:port]`. Shared with the UDP driver.
pub(crate) fn split_host_port<'a>(
    url: &str,
    authority: &'a str,
) -> Result<(&'a str, Option<u16>), Error> {
    if authority.contains('@') {
        return Err(invalid(
            url,
            "credentials in tracker urls are not supported",
        ));
    }
    split_authority(authority).map_err(|why| invalid(url, why))
}

/// Splits a URL authority, `host[:port]` or `[v6][:port]`, into the host (brackets kept) and the
/// port if one is given; the error says what is wrong. Shared with the engine's web-seed client.
pub fn split_authority(authority: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let close = rest.find(']').ok_or("unclosed '[' in the host")?;
        let port = match &rest[close + 1..] {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or("junk after the ipv6 host")?),
        };
        (&authority[..close + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("the host is empty");
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "the port is out of range")?)
        }
        Some(_) => return Err("the port is not a number"),
    };
    Ok((host, port))
}

fn parse_http_url(url: &str) -> Result<HttpUrl<'_>, Error> {
    // The URL ends up verbatim in the request line and Host header: refuse anything that could
    // split or smuggle a header.
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(invalid(url, "it contains spaces or control characters"));
    }
    let rest = strip_http_scheme(url)?;
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host, port) = split_host_port(url, &rest[..auth_end])?;
    let target = &rest[auth_end..];
    Ok(HttpUrl { host, port, target })
}

/// Appends `bytes` percent-encoded: RFC 3986 unreserved characters are kept, every other byte
/// becomes `%XX`. Info-hashes and peer ids are raw bytes, not text.
fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The full announce URL for `req`: `announce` plus the BEP 3 query parameters, joined with `&`
/// when `announce` already carries a query string. Always asks for compact peers.
pub fn announce_url(announce: &str, req: &AnnounceRequest) -> Result<String, Error> {
    let parsed = parse_http_url(announce)?;
    let base = announce.split_once('#').map_or(announce, |(b, _)| b);
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    if parsed.target.contains('?') {
        if !url.ends_with(['?', '&']) {
            url.push('&');
        }
    } else {
        if parsed.target.is_empty() {
            url.push('/');
        }
        url.push('?');
    }
    url.push_str("info_hash=");
    percent_encode_into(&mut url, &req.info_hash);
    url.push_str("&peer_id=");
    percent_encode_into(&mut url, &req.peer_id);
    url.push_str(&format!(
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1",
        req.port, req.uploaded, req.downloaded, req.left
    ));
    if let Some(event) = req.event.as_http_str() {
        url.push_str("&event=");
        url.push_str(event);
    }
    if let Some(n) = req.num_want {
        url.push_str(&format!("&numwant={n}"));
    }
    url.push_str(&format!("&key={:08X}", req.key));
    if let Some(id) = &req.tracker_id {
        url.push_str("&trackerid=");
        percent_encode_into(&mut url, id.as_bytes());
    }
    Ok(url)
}

/// The HTTP/1.1 `GET` for announcing `req` to `announce`, and where to send it.
pub fn build_request(announce: &str, req: &AnnounceRequest) -> Result<Request, Error> {
    let full = announce_url(announce, req)?;
    let url = parse_http_url(&full)?;
    let host_header = match url.port {
        Some(p) => format!("{}:{p}", url.host),
        None => url.host.to_owned(),
    };
    let bytes = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: btt/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.target,
        env!("CARGO_PKG_VERSION"),
    )
    .into_bytes();
    let host = url
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(Request {
        host,
        port: url.port.unwrap_or(80),
        bytes,
    })
}

/// How the body of a response is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilEof,
}

/// Frames an HTTP/1.x response from the bytes read so far.
///
/// Returns `Ok(None)` while more bytes are needed. `eof` says the peer closed the connection: a
/// body without `Content-Length` or chunking ends there, any other incomplete response is an
/// error. Bodies over [`MAX_BODY_BYTES`] and buffers over [`MAX_MESSAGE_BYTES`] are refused.
pub fn decode_message(buf: &[u8], eof: bool) -> Result<Option<Response>, Error> {
    if buf.len() > MAX_MESSAGE_BYTES {
        return Err(Error::TooLarge);
    }
    let Some(head_len) = find_head_end(buf) else {
        if buf.len() > MAX_HEAD_BYTES {
            return Err(Error::MalformedHttp("headers exceed 64 KiB"));
        }
        return if eof {
            Err(Error::MalformedHttp("connection closed inside the headers"))
        } else {
            Ok(None)
        };
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(Error::MalformedHttp("headers exceed 64 KiB"));
    }
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| Error::MalformedHttp("headers are not utf-8"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let (status, reason) = parse_status_line(status_line)?;

    let mut framing = Framing::UntilEof;
    let mut chunked = false;
    let mut location = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or(Error::MalformedHttp("header line without ':'"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| Error::MalformedHttp("bad content-length"))?;
            if n > MAX_BODY_BYTES as u64 {
                return Err(Error::TooLarge);
            }
            framing = Framing::Length(n as usize);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        }
    }
    // RFC 9112: chunked wins over Content-Length; 1xx, 204 and 304 carry no body.
    if chunked {
        framing = Framing::Chunked;
    }
    if status / 100 == 1 || status == 204 || status == 304 {
        framing = Framing::Length(0);
    }

    let rest = &buf[head_len..];
    let body = match framing {
        Framing::Length(n) => {
            if rest.len() < n {
                return if eof {
                    Err(Error::MalformedHttp(
                        "connection closed before content-length bytes",
                    ))
                } else {
                    Ok(None)
                };
            }
            rest[..n].to_vec()
        }
        Framing::UntilEof => {
            if rest.len() > MAX_BODY_BYTES {
                return Err(Error::TooLarge);
            }
            if !eof {
                return Ok(None);
            }
            rest.to_vec()
        }
        Framing::Chunked => match dechunk(rest)? {
            Some(body) => body,
            None if eof => {
                return Err(Error::MalformedHttp(
                    "connection closed inside chunked body",
                ))
            }
            None => return Ok(None),
        },
    };
    Ok(Some(Response {
        status,
        reason: reason.to_owned(),
        location,
        body,
    }))
}

/// Length of an HTTP/1.x response head including the blank line, accepting bare `\n` line
/// ends; `None` until the blank line has arrived. Shared with the engine's web-seed client.
pub fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let next = &buf[nl + 1..];
        if next.starts_with(b"\n") {
            return Some(nl + 2);
        }
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

fn parse_status_line(line: &str) -> Result<(u16, &str), Error> {
    let rest = line
        .strip_prefix("HTTP/1.")
        .ok_or(Error::MalformedHttp("no HTTP/1.x status line"))?;
    let mut parts = rest.splitn(3, ' ');
    let _minor = parts.next();
    let code = parts.next().unwrap_or("");
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::MalformedHttp("bad status code"));
    }
    let status = code
        .parse()
        .map_err(|_| Error::MalformedHttp("bad status code"))?;
    Ok((status, parts.next().unwrap_or("").trim()))
}

/// Removes chunked transfer-encoding. `Ok(None)` while the terminating chunk and trailers have
/// not all arrived. Walks chunk headers before copying so repeated calls on a growing buffer stay
/// cheap.
fn dechunk(buf: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut spans = Vec::new();
    let mut total = 0usize;
    let mut pos = 0usize;
    loop {
        let Some(line_len) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = &buf[pos..pos + line_len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let size_field = line.split(|&b| b == b';').next().unwrap_or(b"");
        let size_field = size_field.trim_ascii();
        if size_field.is_empty()
            || size_field.len() > 8
            || !size_field.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(Error::MalformedHttp("bad chunk size"));
        }
        let size = size_field.iter().fold(0usize, |n, &d| {
            n * 16 + usize::from(char::from(d).to_digit(16).unwrap_or(0) as u8)
        });
        pos += line_len + 1;
        if size == 0 {
            break;
        }
        total = total.saturating_add(size);
        if total > MAX_BODY_BYTES {
            return Err(Error::TooLarge);
        }
        let end = pos.saturating_add(size);
        if buf.len() < end {
            return Ok(None);
        }
        spans.push(pos..end);
        pos = end;
        // Each chunk's data is followed by CRLF (tolerate a bare LF).
        match buf.get(pos..) {
            Some([b'\r', b'\n', ..]) => pos += 2,
            Some([b'\n', ..]) => pos += 1,
            Some([]) | Some([b'\r']) => return Ok(None),
            _ => {
                return Err(Error::MalformedHttp(
                    "chunk data not followed by a line end",
                ))
            }
        }
    }
    // Trailer section: header lines until an empty line.
    loop {
        let Some(line_len) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = &buf[pos..pos + line_len];
        pos += line_len + 1;
        if line.is_empty() || line == b"\r" {
            break;
        }
    }
    let mut body = Vec::with_capacity(total);
    for span in spans {
        body.extend_from_slice(&buf[span]);
    }
    Ok(Some(body))
}

/// Parses a bencoded announce response body.
///
/// A `failure reason` becomes [`Error::TrackerFailure`]. `peers` may be compact (6 bytes per IPv4
/// peer, BEP 23) or a list of `{ip, port}` dictionaries; compact `peers6` (18 bytes per IPv6
/// peer) is appended. Peers with port 0 and dictionary peers whose `ip` is not an IP literal are
/// skipped. A missing `interval` defaults to 30 minutes. Trailing whitespace after the dictionary
/// is tolerated.
pub fn parse_http_response(body: &[u8]) -> Result<AnnounceResponse, Error> {
    let (value, used) = bencode::decode_prefix(body)?;
    if !body[used..].iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Bencode(bencode::Error::Trailing(body.len() - used)));
    }
    let dict = value
        .as_dict()
        .ok_or(Error::Malformed("the body is not a bencoded dictionary"))?;
    if let Some(reason) = dict.get(b"failure reason") {
        let reason = reason
            .as_bytes()
            .ok_or(Error::Malformed("`failure reason` is not a string"))?;
        return Err(Error::TrackerFailure(
            String::from_utf8_lossy(reason).into_owned(),
        ));
    }

    let seconds = |key: &[u8], what: &'static str| -> Result<Option<Duration>, Error> {
        match dict.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = v
                    .as_int()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or(Error::Malformed(what))?;
                Ok(Some(Duration::from_secs(n)))
            }
        }
    };
    let interval = seconds(b"interval", "`interval` is not a non-negative integer")?
        .unwrap_or(DEFAULT_INTERVAL);
    let min_interval = seconds(
        b"min interval",
        "`min interval` is not a non-negative integer",
    )?;
    let count = |key: &[u8]| {
        dict.get(key)
            .and_then(|v| v.as_int())
            .and_then(|n| u32::try_from(n).ok())
    };
    let text = |key: &[u8]| {
        dict.get(key)
            .and_then(|v| v.as_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };

    let mut peers = Vec::new();
    match dict.get(b"peers") {
        None => {}
        Some(bencode::Value::Bytes(compact)) => {
            if compact.len() % 6 != 0 {
                return Err(Error::Malformed(
                    "compact `peers` length is not a multiple of 6",
                ));
            }
            peers.extend(compact.chunks_exact(6).filter_map(compact_v4));
        }
        Some(bencode::Value::List(list)) => {
            peers.extend(list.items.iter().filter_map(dict_peer));
        }
        Some(_) => return Err(Error::Malformed("`peers` is neither a string nor a list")),
    }
    match dict.get(b"peers6") {
        None => {}
        Some(v) => {
            let compact = v
                .as_bytes()
                .ok_or(Error::Malformed("`peers6` is not a string"))?;
            if compact.len() % 18 != 0 {
                return Err(Error::Malformed(
                    "compact `peers6` length is not a multiple of 18",
                ));
            }
            peers.extend(compact.chunks_exact(18).filter_map(compact_v6));
        }
    }

    Ok(AnnounceResponse {
        interval,
        min_interval,
        peers,
        complete: count(b"complete"),
        incomplete: count(b"incomplete"),
        warning: text(b"warning message"),
        tracker_id: text(b"tracker id"),
    })
}

/// One 6-byte compact IPv4 peer; `None` for port 0.
pub(crate) fn compact_v4(b: &[u8]) -> Option<SocketAddr> {
    let ip = Ipv4Addr::new(*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?);
    let port = u16::from_be_bytes([*b.get(4)?, *b.get(5)?]);
    (port != 0).then(|| SocketAddr::new(IpAddr::V4(ip), port))
}

/// One 18-byte compact IPv6 peer; `None` for port 0.
pub(crate) fn compact_v6(b: &[u8]) -> Option<SocketAddr> {
    let ip: [u8; 16] = b.get(..16)?.try_into().ok()?;
    let port = u16::from_be_bytes([*b.get(16)?, *b.get(17)?]);
    (port != 0).then(|| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
}

/// One `{ip, port, peer id}` dictionary peer; `None` when it is unusable without a resolver or
/// malformed (one bad entry does not spoil the rest of the list).
fn dict_peer(v: &bencode::Value<'_>) -> Option<SocketAddr> {
    let ip: IpAddr = v.get(b"ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(v.get(b"port")?.as_int()?).ok()?;
    (port != 0).then_some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: [
                0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
                0xef, 0x12, 0x34, 0x56, 0x78, 0x9a,
            ],
            peer_id: *b"-BT0001-a.b_c~d e/f%",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Started,
            num_want: Some(50),
            key: 0xdead_beef,
            tracker_id: None,
        }
    }

    #[test]
    fn builds_the_exact_request() {
        let r = build_request("http://tracker.example:8080/announce", &request()).unwrap();
        assert_eq!(r.host, "tracker.example");
        assert_eq!(r.port, 8080);
        let expected = concat!(
            "GET /announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A",
            "&peer_id=-BT0001-a.b_c~d%20e%2Ff%25",
            "&port=6881&uploaded=1&downloaded=2&left=3&compact=1&event=started&numwant=50&key=DEADBEEF HTTP/1.1\r\n",
            "Host: tracker.example:8080\r\n",
            "User-Agent: btt/0.1.0\r\n",
            "Accept-Encoding: identity\r\n",
            "Connection: close\r\n\r\n",
        );
        assert_eq!(String::from_utf8(r.bytes).unwrap(), expected);
    }

    #[test]
    fn url_joins_existing_query_and_optional_fields() {
        let mut req = request();
        req.event = Event::None;
        req.num_want = None;
        req.tracker_id = Some("id 1".into());
        let url = announce_url("http://t.example/a?passkey=abc#frag", &req).unwrap();
        assert!(
            url.starts_with("http://t.example/a?passkey=abc&info_hash=%124Vx"),
            "{url}"
        );
        assert!(
            url.ends_with("&left=3&compact=1&key=DEADBEEF&trackerid=id%201"),
            "{url}"
        );
        assert!(announce_url("http://t.example/a?", &req)
            .unwrap()
            .starts_with("http://t.example/a?info_hash="));
        assert!(announce_url("http://t.example", &req)
            .unwrap()
            .starts_with("http://t.example/?info_hash="));
    }

    #[test]
    fn ipv6_hosts_and_default_port() {
        let r = build_request("http://[::1]/ann", &request()).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 80));
        assert!(r.bytes.windows(12).any(|w| w == b"Host: [::1]\r"));
        let r = build_request("HTTP://[::1]:81/ann", &request()).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 81));
    }

    #[test]
    fn rejects_bad_urls() {
        let req = request();
        assert!(matches!(
            announce_url("https://t.example/a", &req),
            Err(Error::HttpsUnsupported)
        ));
        assert!(matches!(
            announce_url("wss://t.example/a", &req),
            Err(Error::UnsupportedScheme(_))
        ));
        assert!(matches!(
            announce_url("t.example/a", &req),
            Err(Error::UnsupportedScheme(_))
        ));
        for bad in [
            "http:///a",
            "http://h:99999/",
            "http://h:x/",
            "http://[::1/",
            "http://u@h/",
            "http://h/a b",
            "http://h/\r\nX: y",
        ] {
            assert!(
                matches!(announce_url(bad, &req), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn frames_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
        assert_eq!(decode_message(&raw[..raw.len() - 1], false).unwrap(), None);
        assert!(decode_message(&raw[..raw.len() - 1], true).is_err());
        let r = decode_message(raw, false).unwrap().unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), r.body.as_slice()),
            (200, "OK", &b"hello"[..])
        );
        // Bytes past Content-Length are ignored.
        assert_eq!(
            decode_message(b"HTTP/1.0 200 OK\nContent-Length: 2\n\nhiXX", false)
                .unwrap()
                .unwrap()
                .body,
            b"hi"
        );
    }

    #[test]
    fn frames_chunked_and_until_eof() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n4;x=y\r\nd1:a\r\n3\r\ni1e\r\n1\r\ne\r\n0\r\nTrailer: t\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(
                decode_message(&raw[..cut], false).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode_message(raw, false).unwrap().unwrap().body,
            b"d1:ai1ee"
        );
        let raw = b"HTTP/1.1 200 OK\r\n\r\nabc";
        assert_eq!(decode_message(raw, false).unwrap(), None);
        assert_eq!(decode_message(raw, true).unwrap().unwrap().body, b"abc");
    }

    #[test]
    fn rejects_bad_framing_and_oversize() {
        assert!(matches!(
            decode_message(b"SSH-2.0\r\n\r\n", false),
            Err(Error::MalformedHttp(_))
        ));
        assert!(matches!(
            decode_message(b"HTTP/1.1 2000 OK\r\n\r\n", false),
            Err(Error::MalformedHttp(_))
        ));
        assert!(matches!(
            decode_message(b"HTTP/1.1 200 OK\r\nbad\r\n\r\n", false),
            Err(Error::MalformedHttp(_))
        ));
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert!(matches!(
            decode_message(big.as_bytes(), false),
            Err(Error::TooLarge)
        ));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(
            decode_message(chunked, false),
            Err(Error::MalformedHttp(_))
        ));
        let huge_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n500000\r\n";
        assert!(matches!(
            decode_message(huge_chunk, false),
            Err(Error::TooLarge)
        ));
        let mut until_eof = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        until_eof.resize(until_eof.len() + MAX_BODY_BYTES + 1, b'x');
        assert!(matches!(
            decode_message(&until_eof, false),
            Err(Error::TooLarge)
        ));
        assert_eq!(
            decode_message(b"HTTP/1.1 204 No Content\r\n\r\n", false)
                .unwrap()
                .unwrap()
                .body,
            b""
        );
    }

    #[test]
    fn parses_compact_and_optional_fields() {
        let body = b"d8:completei5e10:incompletei3e8:intervali1800e12:min intervali60e5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x0010:tracker id3:xyz15:warning message4:slowe";
        let r = parse_http_response(body).unwrap();
        assert_eq!(
            r,
            AnnounceResponse {
                interval: Duration::from_secs(1800),
                min_interval: Some(Duration::from_secs(60)),
                // The second peer has port 0 and is dropped.
                peers: vec!["127.0.0.1:6881".parse().unwrap()],
                complete: Some(5),
                incomplete: Some(3),
                warning: Some("slow".into()),
                tracker_id: Some("xyz".into()),
            }
        );
    }

    #[test]
    fn parses_dict_peers_and_peers6() {
        let body = b"d8:intervali60e5:peersld2:ip8:10.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti51413eed2:ip11:example.com4:porti1eed2:ip3:::14:porti70000eed2:ip3:::14:porti2eee6:peers618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe1e\n";
        let r = parse_http_response(body).unwrap();
        let want: Vec<SocketAddr> = ["10.0.0.1:51413", "[::1]:2", "[2001:db8::1]:6881"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(r.peers, want);
        assert_eq!(r.interval, Duration::from_secs(60));
        assert_eq!(
            (r.complete, r.incomplete, r.min_interval),
            (None, None, None)
        );
    }

    #[test]
    fn failure_reason_wins() {
        let r = parse_http_response(
            b"d14:failure reason36:Requested download is not authorized8:intervali5ee",
        );
        assert!(
            matches!(r, Err(Error::TrackerFailure(m)) if m == "Requested download is not authorized")
        );
    }

    #[test]
    fn missing_fields_default() {
        let r = parse_http_response(b"de").unwrap();
        assert_eq!(r.interval, DEFAULT_INTERVAL);
        assert!(r.peers.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"<html>nope</html>",
            b"le",
            b"d8:intervali-1ee",
            b"d8:interval3:abce",
            b"d5:peers5:abcdee",
            b"d5:peersi1ee",
            b"d6:peers67:abcdefge",
            b"d14:failure reasoni1ee",
            b"de junk",
        ] {
            assert!(
                parse_http_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
