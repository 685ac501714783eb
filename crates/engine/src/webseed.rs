//! BEP 19 web seeds ("GetRight style"): piece data from a plain HTTP server that holds the
//! torrent's files.
//!
//! A torrent's `url-list` names servers that serve the same files the torrent describes. Such a
//! server behaves like a seed that never chokes and has every piece; it knows nothing about
//! pieces, so each block is fetched as byte ranges of the files it covers, and the piece is
//! checked against its SHA-1 like any other (a server whose file differs shows up as hash
//! failures, never as corrupt data on disk).
//!
//! # Where a file lives (BEP 19)
//! - **Single-file torrent:** the URL *is* the file. If it ends in `/`, the torrent `name` is
//!   appended (`http://host/dir/` + `name`).
//! - **Multi-file torrent:** the URL is the directory that holds the torrent's top directory:
//!   file `i` is at `url + name + "/" + path[0] + "/" + … + path[n]`. A `/` is added to a URL
//!   that does not end in one.
//! - The name and each path component are percent-encoded (every byte except the RFC 3986
//!   unreserved characters). The URL from the torrent is used as written, except that spaces,
//!   control bytes and non-ASCII bytes are percent-encoded so they cannot break the request line.
//!   A query string in the URL stays at the end.
//!
//! # Fetching a block
//! `[begin, begin + len)` of a piece maps to one range per file it touches
//! ([`metainfo::Info::piece_spans`]); each becomes one `GET` with `Range: bytes=first-last` on
//! one keep-alive HTTP/1.1 connection per web seed. The answer decides what happens next:
//! - `206 Partial Content`: `Content-Range` must name exactly the range asked for, otherwise the
//!   response is rejected. Bodies framed by `Content-Length` or chunked are read to the end so the
//!   connection can carry the next request.
//! - `200 OK` (**fallback**): the server ignored `Range` and sends the whole file, as simple
//!   servers such as `python3 -m http.server` do. The bytes before the range are read and
//!   discarded (counted in [`Stats::bytes_discarded`]), the wanted bytes are kept, and the
//!   connection is dropped rather than read to the end of the file.
//! - `301`/`302`/`303`/`307`/`308`: the `Location` is followed, up to [`MAX_REDIRECTS`] hops,
//!   `http://` only.
//! - Anything else (`404`, `5xx`, …): [`WebSeedError::Status`], with the server's
//!   `Retry-After` when it sent one in seconds. Every failed fetch puts the seed into an
//!   exponential back-off ([`WebSeed::is_ready`]).
//!
//! # Layout
//! - Pure functions with exact-bytes tests: [`HttpUrl`] parsing and redirect resolution,
//!   [`file_url`], [`build_request`], [`parse_head`] (status line and headers), and
//!   [`backoff_delay`].
//! - The driver: `Conn` (a buffered `TcpStream` with per-read timeouts), `Body` (reads a
//!   response body by its framing without ever allocating from a header value), and [`WebSeed`],
//!   which owns the connection, the statistics and the back-off state.
//!
//! Only `http://` is supported; `https://` web seeds are refused with a clear error.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Redirects followed for one range request before giving up.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Largest status line plus headers accepted.
pub(crate) const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Largest chunk-size or trailer line accepted in a chunked body.
const MAX_LINE_BYTES: usize = 4 * 1024;

/// A redirect's body is read (so the connection stays usable) only when it is at most this big.
const MAX_DRAIN_BYTES: u64 = 64 * 1024;

/// Longest `Retry-After` honoured; a bigger value is clamped.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Size of the read buffer and of the scratch space used to discard bytes.
const READ_CHUNK: usize = 16 * 1024;

/// Timeouts and back-off for one web seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Limit for establishing a TCP connection.
    pub(crate) connect_timeout: Duration,
    /// Limit for each single read or write on the connection (not for a whole response).
    pub(crate) read_timeout: Duration,
    /// Back-off after the first failure; doubled for each further consecutive failure.
    pub(crate) backoff_base: Duration,
    /// Longest back-off (a server's `Retry-After` may ask for more and is honoured).
    pub(crate) backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
        }
    }
}

/// What can go wrong talking to a web seed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebSeedError {
    /// The URL is `https://`, which needs TLS.
    #[error("web seed {0} uses https, which is not supported yet; use an http:// mirror")]
    HttpsUnsupported(String),
    /// The URL is neither `http://` nor `https://` (for example `ftp://`).
    #[error("web seed {0} is not an http:// url; only http web seeds are supported")]
    UnsupportedScheme(String),
    /// The URL cannot be used as written.
    #[error("web seed url {url} is invalid: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The block asked for is not inside the piece; check the request against the piece size.
    #[error("block at {begin} with length {len} is outside piece {piece}; check the request against the piece size")]
    OutOfRange {
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        begin: u32,
        /// Bytes asked for.
        len: u32,
    },
    /// The TCP connection could not be established.
    #[error(
        "cannot connect to web seed {host}:{port}: {source}; it will be retried after a back-off"
    )]
    Connect {
        /// Host connected to.
        host: String,
        /// Port connected to.
        port: u16,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Connecting, or one read or write, took longer than the configured timeout.
    #[error("web seed {host} timed out while {during}; it will be retried after a back-off")]
    Timeout {
        /// Host of the connection.
        host: String,
        /// What was being waited for.
        during: &'static str,
    },
    /// Reading or writing the connection failed.
    #[error("web seed connection failed: {0}; it will be retried after a back-off")]
    Io(#[from] io::Error),
    /// The server answered with a status that carries no data (`404`, `5xx`, …).
    #[error("web seed answered HTTP {status} for {url}; {}", retry_hint(*.retry_after))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The URL that was asked for.
        url: String,
        /// How long the server asked us to wait (`Retry-After` in seconds), if it did.
        retry_after: Option<Duration>,
    },
    /// A `206` for a different range than the one asked for.
    #[error("web seed sent bytes {got} of {url} but {want} were asked for; the server is not usable as a web seed")]
    RangeMismatch {
        /// The URL that was asked for.
        url: String,
        /// `first-last` asked for.
        want: String,
        /// `first-last` (or the raw header) received.
        got: String,
    },
    /// The file on the server ends before the bytes the torrent places in it.
    #[error(
        "web seed file {url} ends before byte {needed}; the server's copy differs from the torrent"
    )]
    ShortFile {
        /// The URL that was asked for.
        url: String,
        /// One past the last byte needed.
        needed: u64,
    },
    /// The server closed the connection before the response was complete.
    #[error("web seed closed the connection before the response was complete; it will be retried after a back-off")]
    Truncated,
    /// The response is not valid HTTP/1.x or uses a feature this client does not speak.
    #[error("web seed sent a response this client cannot use: {0}")]
    Malformed(&'static str),
    /// The status line and headers exceed [`MAX_HEAD_BYTES`].
    #[error("web seed response headers exceed {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("web seed {url} redirected more than {MAX_REDIRECTS} times; check the url")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
    },
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("the server asked to retry after {} s", d.as_secs()),
        None => "it will be retried after a back-off".to_owned(),
    }
}

impl WebSeedError {
    /// The server's `Retry-After`, if this error carries one.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            WebSeedError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether retrying this web seed cannot help: the URL (or a redirect) is unusable. The
    /// caller should drop the seed rather than back off.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(
            self,
            WebSeedError::HttpsUnsupported(_)
                | WebSeedError::UnsupportedScheme(_)
                | WebSeedError::InvalidUrl { .. }
                | WebSeedError::TooManyRedirects { .. }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------------

/// A parsed `http://` URL, ready to build a request from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    /// Host to connect to (IPv6 literals without brackets).
    pub(crate) host: String,
    /// Port to connect to (80 unless given).
    pub(crate) port: u16,
    /// The `Host` header value: the host as written, plus `:port` when the URL gave one.
    pub(crate) authority: String,
    /// Path, starting with `/`, percent-encoded, without the query.
    pub(crate) path: String,
    /// Query string without the `?`, if any.
    pub(crate) query: Option<String>,
}

impl HttpUrl {
    /// Parses an `http://` URL. Spaces, control bytes and non-ASCII bytes in the path and query
    /// are percent-encoded; a fragment is dropped; credentials are refused.
    pub(crate) fn parse(url: &str) -> Result<HttpUrl, WebSeedError> {
        let url = url.trim();
        let invalid = |reason| WebSeedError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(WebSeedError::UnsupportedScheme(url.to_owned()));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err(WebSeedError::HttpsUnsupported(url.to_owned()));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(WebSeedError::UnsupportedScheme(url.to_owned()));
        }
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..auth_end];
        if authority.contains('@') {
            return Err(invalid("credentials in web seed urls are not supported"));
        }
        if authority.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(invalid("the host contains spaces or control characters"));
        }
        let (host, port) = tracker::http::split_authority(authority).map_err(invalid)?;
        let target = &rest[auth_end..];
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(escape_unsafe(q.as_bytes()))),
            None => (target, None),
        };
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            escape_unsafe(path.as_bytes())
        };
        Ok(HttpUrl {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: port.unwrap_or(80),
            authority: authority.to_owned(),
            path,
            query,
        })
    }

    /// The request target: path and query.
    pub(crate) fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// Resolves a redirect's `Location` against this URL: absolute `http://` URLs,
    /// scheme-relative `//host/…`, absolute paths and relative paths (dot segments are kept as
    /// sent). `https://` targets are refused.
    pub(crate) fn join(&self, location: &str) -> Result<HttpUrl, WebSeedError> {
        let loc = escape_unsafe(location.trim().as_bytes());
        let loc = loc.split_once('#').map_or(loc.as_str(), |(l, _)| l);
        if has_scheme(loc) {
            return HttpUrl::parse(loc);
        }
        if loc.starts_with("//") {
            return HttpUrl::parse(&format!("http:{loc}"));
        }
        let (path, query) = match loc.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (loc, None),
        };
        let path = if path.is_empty() {
            // "?query" alone keeps the current path.
            self.path.clone()
        } else if path.starts_with('/') {
            path.to_owned()
        } else {
            let dir = self.path.rfind('/').map_or("/", |i| &self.path[..=i]);
            format!("{dir}{path}")
        };
        Ok(HttpUrl {
            path,
            query,
            ..self.clone()
        })
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// `scheme://…` where the scheme is letters, digits, `+`, `-`, `.` starting with a letter.
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once("://") else {
        return false;
    };
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_pct(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// Percent-encodes every byte except the RFC 3986 unreserved characters: for file names, where
/// `/`, `?`, `#` and `%` must not keep their URL meaning.
fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            push_pct(out, b);
        }
    }
}

/// Percent-encodes only what may not appear in a request line (spaces, control bytes,
/// non-ASCII); everything else, including existing `%XX` escapes, is kept.
fn escape_unsafe(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b <= b' ' || b >= 0x7f {
            push_pct(&mut out, b);
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Where file `file` of `info` lives under the web seed `base`, by the BEP 19 rules in the module
/// docs.
///
/// # Panics
/// If `file` is not an index into `info.files`.
pub(crate) fn file_url(base: &HttpUrl, info: &metainfo::Info, file: usize) -> HttpUrl {
    let mut path = base.path.clone();
    if info.single_file {
        if path.ends_with('/') {
            percent_encode_into(&mut path, info.name.as_bytes());
        }
    } else {
        if !path.ends_with('/') {
            path.push('/');
        }
        percent_encode_into(&mut path, info.name.as_bytes());
        for component in &info.files[file].path {
            path.push('/');
            percent_encode_into(&mut path, component.as_bytes());
        }
    }
    HttpUrl {
        path,
        ..base.clone()
    }
}

/// Whether `file` is a BEP 47 pad file, whose bytes are zeros by definition and are never
/// requested.
fn is_pad_file(file: &metainfo::FileEntry) -> bool {
    file.pad
}

// ---------------------------------------------------------------------------------------------
// Request and response head (sans-IO)
// ---------------------------------------------------------------------------------------------

/// The HTTP/1.1 `GET` for bytes `first..=last` of `url`.
pub(crate) fn build_request(url: &HttpUrl, first: u64, last: u64) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: btt/{}\r\nRange: bytes={first}-{last}\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n",
        url.target(),
        url.authority,
        env!("CARGO_PKG_VERSION"),
    )
    .into_bytes()
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes (`Content-Length`; 0 for `1xx`, `204`, `304`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilEof,
}

/// A `Content-Range: bytes first-last/total` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First byte sent.
    pub(crate) first: u64,
    /// Last byte sent (inclusive).
    pub(crate) last: u64,
    /// Length of the whole file, unless the server sent `*`.
    pub(crate) total: Option<u64>,
}

/// The parts of a response head the driver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    /// Status code.
    pub(crate) status: u16,
    /// How the body is delimited.
    pub(crate) framing: Framing,
    /// `Content-Range`, if present.
    pub(crate) content_range: Option<ContentRange>,
    /// `Location`, with unsafe bytes percent-encoded.
    pub(crate) location: Option<String>,
    /// `Retry-After` in seconds (an HTTP-date is ignored), clamped to a day.
    pub(crate) retry_after: Option<Duration>,
    /// Whether the connection may carry another request after this response's body.
    pub(crate) keep_alive: bool,
}

/// Parses a response's status line and headers from the start of `buf`.
///
/// Returns `Ok(None)` while the blank line that ends the head has not arrived, and otherwise the
/// head and its length in bytes (the body starts there). Accepts bare `\n` line ends. Never reads
/// past [`MAX_HEAD_BYTES`]; values are checked, never trusted to size anything.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, WebSeedError> {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let Some(head_len) = tracker::http::find_head_end(window) else {
        return if buf.len() >= MAX_HEAD_BYTES {
            Err(WebSeedError::HeadTooLarge)
        } else {
            Ok(None)
        };
    };
    let malformed = WebSeedError::Malformed;
    let mut lines = buf[..head_len]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let (http11, status) = parse_status_line(lines.next().unwrap_or(b""))?;

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut content_range = None;
    let mut location = None;
    let mut retry_after = None;
    let mut close = false;
    let mut keep_alive_token = false;
    for line in lines.filter(|l| !l.is_empty()) {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            return Err(malformed("folded header lines are not supported"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(malformed("a header line has no ':'"))?;
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is("content-length") {
            let n = parse_decimal(value).ok_or(malformed("bad content-length"))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(malformed("conflicting content-length headers"));
            }
            content_length = Some(n);
        } else if is("transfer-encoding") {
            let mut codings = value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|c| !c.is_empty())
                .peekable();
            while let Some(coding) = codings.next() {
                if !coding.eq_ignore_ascii_case(b"chunked") || codings.peek().is_some() {
                    return Err(malformed("transfer-encoding other than chunked"));
                }
                chunked = true;
            }
        } else if is("content-encoding") {
            if !value.is_empty() && !value.eq_ignore_ascii_case(b"identity") {
                return Err(malformed(
                    "the body is compressed although identity encoding was asked for",
                ));
            }
        } else if is("content-range") {
            content_range = Some(parse_content_range(value).ok_or(malformed("bad content-range"))?);
        } else if is("location") {
            location = Some(escape_unsafe(value));
        } else if is("retry-after") {
            retry_after = parse_decimal(value)
                .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
                .or(retry_after);
        } else if is("connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // RFC 9112: chunked wins over Content-Length; 1xx, 204 and 304 carry no body.
    let framing = if status / 100 == 1 || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::UntilEof
    };
    let keep_alive =
        !close && (http11 || keep_alive_token) && !matches!(framing, Framing::UntilEof);
    Ok(Some((
        ResponseHead {
            status,
            framing,
            content_range,
            location,
            retry_after,
            keep_alive,
        },
        head_len,
    )))
}

/// `HTTP/1.x SSS reason` → (is HTTP/1.1 or later minor, status).
fn parse_status_line(line: &[u8]) -> Result<(bool, u16), WebSeedError> {
    let (minor, rest) = line
        .strip_prefix(b"HTTP/1.")
        .and_then(<[u8]>::split_first)
        .filter(|(minor, _)| minor.is_ascii_digit())
        .ok_or(WebSeedError::Malformed("no HTTP/1.x status line"))?;
    let code = rest
        .strip_prefix(b" ")
        .and_then(|r| r.get(..3))
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .ok_or(WebSeedError::Malformed("bad status code"))?;
    if rest.get(4).is_some_and(|&b| b != b' ') {
        return Err(WebSeedError::Malformed("bad status code"));
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    Ok((*minor != b'0', status))
}

/// A non-empty run of ASCII digits as `u64`; `None` on anything else or overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `bytes first-last/total` or `bytes first-last/*`, with `first <= last < total`.
pub(crate) fn parse_content_range(value: &[u8]) -> Option<ContentRange> {
    let unit_end = value.iter().position(|&b| b == b' ')?;
    if !value[..unit_end].eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let spec = value[unit_end..].trim_ascii();
    let slash = spec.iter().position(|&b| b == b'/')?;
    let (range, total) = (&spec[..slash], &spec[slash + 1..]);
    let dash = range.iter().position(|&b| b == b'-')?;
    let first = parse_decimal(&range[..dash])?;
    let last = parse_decimal(&range[dash + 1..])?;
    let total = match total {
        b"*" => None,
        t => Some(parse_decimal(t)?),
    };
    if first > last || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// A chunk-size line (`hex[;ext]`) as a byte count.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|&b| b == b';').next()?.trim_ascii();
    if size.is_empty() || size.len() > 16 {
        return None;
    }
    size.iter().try_fold(0u64, |n, &d| {
        let digit = char::from(d).to_digit(16)?;
        Some(n.checked_mul(16)? | u64::from(digit))
    })
}

/// How long to leave a web seed alone after its `consecutive_failures`-th failure in a row:
/// `backoff_base * 2^(n-1)` capped at `backoff_max`, but at least the server's `Retry-After`.
pub(crate) fn backoff_delay(
    consecutive_failures: u32,
    retry_after: Option<Duration>,
    config: &Config,
) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(31);
    let exponential = config
        .backoff_base
        .saturating_mul(1u32 << doublings)
        .min(config.backoff_max);
    exponential.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

/// Counters for one web seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Block bytes delivered to the caller (pad bytes excluded).
    pub(crate) bytes_received: u64,
    /// Bytes read and thrown away because a server ignored `Range` (the `200` fallback).
    pub(crate) bytes_discarded: u64,
    /// HTTP requests sent, redirects and retries included.
    pub(crate) requests: u64,
    /// TCP connections opened.
    pub(crate) connections: u64,
    /// Fetches that failed.
    pub(crate) failures: u64,
}

/// One BEP 19 web seed: its URL, one keep-alive connection, statistics and back-off state.
///
/// A `WebSeed` serves one request at a time (`&mut self`); a torrent that wants parallel
/// downloads from the same server makes several.
#[derive(Debug)]
pub(crate) struct WebSeed {
    url: String,
    base: HttpUrl,
    config: Config,
    conn: Option<Conn>,
    stats: Stats,
    consecutive_failures: u32,
    retry_at: Option<Instant>,
}

impl WebSeed {
    /// A web seed for `url` (an entry of the torrent's `url-list`) with default timeouts.
    /// `https://` and other schemes are refused.
    pub(crate) fn new(url: &str) -> Result<WebSeed, WebSeedError> {
        WebSeed::with_config(url, Config::default())
    }

    /// A web seed with the given timeouts and back-off.
    pub(crate) fn with_config(url: &str, config: Config) -> Result<WebSeed, WebSeedError> {
        Ok(WebSeed {
            base: HttpUrl::parse(url)?,
            url: url.trim().to_owned(),
            config,
            conn: None,
            stats: Stats::default(),
            consecutive_failures: 0,
            retry_at: None,
        })
    }

    /// The URL as given.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Failed fetches since the last successful one.
    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// When the back-off after the last failure ends; `None` after a success.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Whether the seed may be asked for data at `now` (it is not backing off).
    pub(crate) fn is_ready(&self, now: Instant) -> bool {
        !matches!(self.retry_at, Some(at) if now < at)
    }

    /// Bytes `[begin, begin + len)` of piece `piece`. See [`WebSeed::fetch_into`].
    pub(crate) async fn fetch(
        &mut self,
        info: &metainfo::Info,
        piece: u32,
        begin: u32,
        len: u32,
    ) -> Result<Vec<u8>, WebSeedError> {
        check_block(info, piece, begin, len)?;
        // Bounded by the piece size just checked, not by anything the server sent.
        let mut out = vec![0u8; len as usize];
        self.fetch_into(info, piece, begin, &mut out).await?;
        Ok(out)
    }

    /// Fills `dst` with bytes `[begin, begin + dst.len())` of piece `piece`: one range request
    /// per file the block touches, on the kept-alive connection.
    ///
    /// A failure (other than a block outside the piece) drops the connection and starts or
    /// extends the back-off; a success ends it. This does not consult [`WebSeed::is_ready`]
    /// itself: the caller decides when to ask again. Timeouts apply to each connect, read and
    /// write, not to the whole fetch; a caller that needs a deadline wraps the call in one. The
    /// caller still checks the piece hash.
    pub(crate) async fn fetch_into(
        &mut self,
        info: &metainfo::Info,
        piece: u32,
        begin: u32,
        dst: &mut [u8],
    ) -> Result<(), WebSeedError> {
        let len = u32::try_from(dst.len()).map_err(|_| WebSeedError::OutOfRange {
            piece,
            begin,
            len: u32::MAX,
        })?;
        check_block(info, piece, begin, len)?;
        let result = self.fetch_spans(info, piece, begin, dst).await;
        match &result {
            Ok(()) => {
                self.consecutive_failures = 0;
                self.retry_at = None;
            }
            Err(e) => {
                self.conn = None;
                self.stats.failures += 1;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let delay = backoff_delay(self.consecutive_failures, e.retry_after(), &self.config);
                let now = Instant::now();
                // A configured back-off can be absurd; never let it overflow the clock.
                self.retry_at = Some(now.checked_add(delay).unwrap_or(now + MAX_RETRY_AFTER));
            }
        }
        result
    }

    async fn fetch_spans(
        &mut self,
        info: &metainfo::Info,
        piece: u32,
        begin: u32,
        dst: &mut [u8],
    ) -> Result<(), WebSeedError> {
        let mut pos = 0usize;
        for span in info.piece_spans(piece, begin, len_u32(dst)) {
            let n = span.len as usize;
            let out = &mut dst[pos..pos + n];
            pos += n;
            if is_pad_file(&info.files[span.file]) {
                out.fill(0);
                continue;
            }
            let url = file_url(&self.base, info, span.file);
            self.get_range(&url, span.file_offset, out).await?;
            self.stats.bytes_received += u64::from(span.len);
        }
        Ok(())
    }

    /// Fills `dst` with the bytes of `url` starting at `offset`, following redirects.
    async fn get_range(
        &mut self,
        url: &HttpUrl,
        offset: u64,
        dst: &mut [u8],
    ) -> Result<(), WebSeedError> {
        let first = offset;
        let last = offset + dst.len() as u64 - 1;
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let request = build_request(&url, first, last);
            let head = self.send(&url, &request).await?;
            let Some(conn) = self.conn.as_mut() else {
                return Err(WebSeedError::Truncated);
            };
            let mut body = Body::new(head.framing);
            match head.status {
                206 => {
                    let got = head
                        .content_range
                        .ok_or(WebSeedError::Malformed("206 without content-range"))?;
                    if got.first != first || got.last != last {
                        return Err(WebSeedError::RangeMismatch {
                            url: url.to_string(),
                            want: format!("{first}-{last}"),
                            got: format!("{}-{}", got.first, got.last),
                        });
                    }
                    if matches!(head.framing, Framing::Length(n) if n != dst.len() as u64) {
                        return Err(WebSeedError::Malformed(
                            "content-length disagrees with content-range",
                        ));
                    }
                    if body.read_full(conn, dst, &self.config).await? < dst.len() {
                        return Err(WebSeedError::Truncated);
                    }
                    if head.framing == Framing::UntilEof || !head.keep_alive {
                        self.conn = None;
                        return Ok(());
                    }
                    // Reading past the range consumes a chunked body's last chunk and trailers,
                    // so the connection is ready for the next request.
                    let mut probe = [0u8; 1];
                    if body.read(conn, &mut probe, &self.config).await? != 0 {
                        return Err(WebSeedError::Malformed("206 body longer than the range"));
                    }
                    return Ok(());
                }
                200 => {
                    let needed = last + 1;
                    let short = || WebSeedError::ShortFile {
                        url: url.to_string(),
                        needed,
                    };
                    if matches!(head.framing, Framing::Length(n) if n < needed) {
                        return Err(short());
                    }
                    if offset > 0 {
                        tracing::debug!(%url, offset, "web seed ignored Range; discarding the bytes before it");
                    }
                    let skipped = body.skip(conn, offset, &self.config).await?;
                    self.stats.bytes_discarded += skipped;
                    if skipped < offset
                        || body.read_full(conn, dst, &self.config).await? < dst.len()
                    {
                        return Err(short());
                    }
                    // The rest of the file is not wanted: drop the connection rather than read it.
                    self.conn = None;
                    return Ok(());
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = head
                        .location
                        .ok_or(WebSeedError::Malformed("redirect without location"))?;
                    let next = url.join(&location)?;
                    let drained = match head.framing {
                        Framing::Length(n) if head.keep_alive && n <= MAX_DRAIN_BYTES => {
                            body.skip(conn, n, &self.config).await? == n
                        }
                        _ => false,
                    };
                    if !drained {
                        self.conn = None;
                    }
                    url = next;
                }
                416 => {
                    self.conn = None;
                    return Err(WebSeedError::ShortFile {
                        url: url.to_string(),
                        needed: last + 1,
                    });
                }
                status => {
                    self.conn = None;
                    return Err(WebSeedError::Status {
                        status,
                        url: url.to_string(),
                        retry_after: head.retry_after,
                    });
                }
            }
        }
        Err(WebSeedError::TooManyRedirects {
            url: self.url.clone(),
        })
    }

    /// Sends `request` to `url`'s server and reads the final (non-`1xx`) response head.
    ///
    /// Reuses the kept-alive connection when it goes to the same host and port. A reused
    /// connection the server has meanwhile closed fails before any response byte; then the
    /// request is sent once more on a fresh connection (a `GET` is safe to repeat).
    async fn send(&mut self, url: &HttpUrl, request: &[u8]) -> Result<ResponseHead, WebSeedError> {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.host != url.host || c.port != url.port)
        {
            self.conn = None;
        }
        loop {
            let reused = self.conn.is_some();
            let conn = match &mut self.conn {
                Some(conn) => conn,
                None => {
                    let conn = Conn::connect(&url.host, url.port, &self.config).await?;
                    self.stats.connections += 1;
                    self.conn.insert(conn)
                }
            };
            self.stats.requests += 1;
            match conn.exchange(request, &self.config).await {
                Ok(Some(head)) => return Ok(head),
                Ok(None) | Err(WebSeedError::Io(_)) if reused => self.conn = None,
                Ok(None) => {
                    self.conn = None;
                    return Err(WebSeedError::Truncated);
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }
}

fn len_u32(buf: &[u8]) -> u32 {
    u32::try_from(buf.len()).unwrap_or(u32::MAX)
}

/// Checks that `[begin, begin + len)` lies inside piece `piece`.
fn check_block(
    info: &metainfo::Info,
    piece: u32,
    begin: u32,
    len: u32,
) -> Result<(), WebSeedError> {
    let inside = piece < info.num_pieces()
        && u64::from(begin) + u64::from(len) <= u64::from(info.piece_size(piece));
    if inside {
        Ok(())
    } else {
        Err(WebSeedError::OutOfRange { piece, begin, len })
    }
}

async fn timed<T>(
    limit: Duration,
    host: &str,
    during: &'static str,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, WebSeedError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(WebSeedError::Timeout {
            host: host.to_owned(),
            during,
        }),
    }
}

/// A TCP connection with a read-ahead buffer: `buf[pos..]` was read but not yet consumed.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    host: String,
    port: u16,
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    async fn connect(host: &str, port: u16, config: &Config) -> Result<Conn, WebSeedError> {
        let connect = TcpStream::connect((host, port));
        let stream = match tokio::time::timeout(config.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(WebSeedError::Connect {
                    host: host.to_owned(),
                    port,
                    source,
                })
            }
            Err(_) => {
                return Err(WebSeedError::Timeout {
                    host: host.to_owned(),
                    during: "connecting",
                })
            }
        };
        // Requests are small and latency-bound; do not wait to coalesce them.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            host: host.to_owned(),
            port,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
        })
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes into the buffer; 0 at end of stream.
    async fn fill(&mut self, config: &Config) -> Result<usize, WebSeedError> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let read = timed(
            config.read_timeout,
            &self.host,
            "reading the response",
            self.stream.read(&mut self.buf[old..]),
        )
        .await;
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        read
    }

    /// Writes `request` and reads the first non-`1xx` response head. `Ok(None)` if the server
    /// closed the connection before sending a byte.
    async fn exchange(
        &mut self,
        request: &[u8],
        config: &Config,
    ) -> Result<Option<ResponseHead>, WebSeedError> {
        timed(
            config.read_timeout,
            &self.host,
            "sending the request",
            self.stream.write_all(request),
        )
        .await?;
        let mut sent_any = false;
        loop {
            if let Some((head, len)) = parse_head(self.buffered())? {
                self.pos += len;
                sent_any = true;
                if head.status / 100 == 1 {
                    continue;
                }
                return Ok(Some(head));
            }
            if self.fill(config).await? == 0 {
                return if sent_any || !self.buffered().is_empty() {
                    Err(WebSeedError::Truncated)
                } else {
                    Ok(None)
                };
            }
        }
    }

    /// Reads up to `dst.len()` bytes, from the buffer first, else straight from the socket.
    async fn read_some(&mut self, dst: &mut [u8], config: &Config) -> Result<usize, WebSeedError> {
        let buffered = self.buffered();
        if !buffered.is_empty() {
            let n = buffered.len().min(dst.len());
            dst[..n].copy_from_slice(&buffered[..n]);
            self.pos += n;
            return Ok(n);
        }
        timed(
            config.read_timeout,
            &self.host,
            "reading the response",
            self.stream.read(dst),
        )
        .await
    }

    /// One line without its `\r\n` (or `\n`), at most [`MAX_LINE_BYTES`].
    async fn read_line(&mut self, config: &Config) -> Result<Vec<u8>, WebSeedError> {
        loop {
            let buffered = self.buffered();
            if let Some(nl) = buffered.iter().position(|&b| b == b'\n') {
                let line = &buffered[..nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.pos += nl + 1;
                return Ok(line);
            }
            if buffered.len() > MAX_LINE_BYTES {
                return Err(WebSeedError::Malformed("chunked-encoding line too long"));
            }
            if self.fill(config).await? == 0 {
                return Err(WebSeedError::Truncated);
            }
        }
    }
}

/// Reads one response body according to its framing.
#[derive(Debug)]
enum Body {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    /// Chunked: bytes left in the current chunk, whether its trailing CRLF is still to read,
    /// and whether the last chunk and trailers have been read.
    Chunked {
        left_in_chunk: u64,
        crlf_pending: bool,
        done: bool,
    },
    /// Until the connection closes; `true` once it has.
    UntilEof(bool),
}

impl Body {
    fn new(framing: Framing) -> Body {
        match framing {
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked {
                left_in_chunk: 0,
                crlf_pending: false,
                done: false,
            },
            Framing::UntilEof => Body::UntilEof(false),
        }
    }

    /// Reads up to `dst.len()` body bytes; 0 at the end of the body. A connection closed inside
    /// a `Content-Length` or chunked body is [`WebSeedError::Truncated`].
    async fn read(
        &mut self,
        conn: &mut Conn,
        dst: &mut [u8],
        config: &Config,
    ) -> Result<usize, WebSeedError> {
        if dst.is_empty() {
            return Ok(0);
        }
        match self {
            Body::Length(left) => {
                let want = dst.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                if want == 0 {
                    return Ok(0);
                }
                let n = conn.read_some(&mut dst[..want], config).await?;
                if n == 0 {
                    return Err(WebSeedError::Truncated);
                }
                *left -= n as u64;
                Ok(n)
            }
            Body::Chunked {
                left_in_chunk,
                crlf_pending,
                done,
            } => {
                while *left_in_chunk == 0 {
                    if *done {
                        return Ok(0);
                    }
                    if *crlf_pending {
                        if !conn.read_line(config).await?.is_empty() {
                            return Err(WebSeedError::Malformed("chunk longer than its size"));
                        }
                        *crlf_pending = false;
                    }
                    let line = conn.read_line(config).await?;
                    let size =
                        parse_chunk_size(&line).ok_or(WebSeedError::Malformed("bad chunk size"))?;
                    if size == 0 {
                        // Trailer fields up to the blank line; their content is not needed.
                        while !conn.read_line(config).await?.is_empty() {}
                        *done = true;
                        return Ok(0);
                    }
                    *left_in_chunk = size;
                    *crlf_pending = true;
                }
                let want = dst
                    .len()
                    .min(usize::try_from(*left_in_chunk).unwrap_or(usize::MAX));
                let n = conn.read_some(&mut dst[..want], config).await?;
                if n == 0 {
                    return Err(WebSeedError::Truncated);
                }
                *left_in_chunk -= n as u64;
                Ok(n)
            }
            Body::UntilEof(closed) => {
                if *closed {
                    return Ok(0);
                }
                let n = conn.read_some(dst, config).await?;
                *closed = n == 0;
                Ok(n)
            }
        }
    }

    /// Reads until `dst` is full or the body ends; returns the bytes read.
    async fn read_full(
        &mut self,
        conn: &mut Conn,
        dst: &mut [u8],
        config: &Config,
    ) -> Result<usize, WebSeedError> {
        let mut filled = 0;
        while filled < dst.len() {
            let n = self.read(conn, &mut dst[filled..], config).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }

    /// Reads and discards up to `n` body bytes through a fixed scratch buffer; returns how many
    /// there were.
    async fn skip(
        &mut self,
        conn: &mut Conn,
        n: u64,
        config: &Config,
    ) -> Result<u64, WebSeedError> {
        let mut scratch = vec![0u8; READ_CHUNK.min(usize::try_from(n).unwrap_or(usize::MAX))];
        let mut skipped = 0u64;
        while skipped < n {
            let want = scratch
                .len()
                .min(usize::try_from(n - skipped).unwrap_or(usize::MAX));
            let got = self.read(conn, &mut scratch[..want], config).await?;
            if got == 0 {
                break;
            }
            skipped += got as u64;
        }
        Ok(skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use sha1::{Digest, Sha1};
    use tokio::net::TcpListener;

    // ---- pure parts ----------------------------------------------------------------------------

    fn url(s: &str) -> HttpUrl {
        HttpUrl::parse(s).unwrap()
    }

    #[test]
    fn parses_http_urls() {
        assert_eq!(
            url("http://example.com:8080/a/b?x=1#frag"),
            HttpUrl {
                host: "example.com".into(),
                port: 8080,
                authority: "example.com:8080".into(),
                path: "/a/b".into(),
                query: Some("x=1".into()),
            }
        );
        let u = url(" HTTP://[::1]/dir/ ");
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        assert_eq!(u.authority, "[::1]");
        assert_eq!(url("http://h").path, "/");
        assert_eq!(url("http://h?q").target(), "/?q");
        // Unsafe bytes are escaped, existing escapes are kept.
        assert_eq!(url("http://h/a b/%41é").path, "/a%20b/%41%C3%A9");
        assert_eq!(url("http://h/a b?c d").to_string(), "http://h/a%20b?c%20d");
    }

    #[test]
    fn refuses_unusable_urls() {
        let err = |s: &str| HttpUrl::parse(s).unwrap_err();
        assert!(matches!(
            err("https://h/f"),
            WebSeedError::HttpsUnsupported(_)
        ));
        assert!(err("https://h/f").to_string().contains("not supported"));
        assert!(matches!(
            err("ftp://h/f"),
            WebSeedError::UnsupportedScheme(_)
        ));
        assert!(matches!(err("h/f"), WebSeedError::UnsupportedScheme(_)));
        for bad in [
            "http://user:pw@h/",
            "http:///path",
            "http://h:99999/",
            "http://h:x/",
            "http://[::1/",
            "http://h\r\nX: y/",
        ] {
            assert!(
                matches!(err(bad), WebSeedError::InvalidUrl { .. }),
                "{bad:?}"
            );
            assert!(err(bad).is_permanent());
        }
    }

    #[test]
    fn resolves_redirect_locations() {
        let base = url("http://h:81/dir/file?q=1");
        assert_eq!(
            base.join("http://other/x").unwrap().to_string(),
            "http://other/x"
        );
        assert_eq!(
            base.join("//other:82/x").unwrap().to_string(),
            "http://other:82/x"
        );
        assert_eq!(
            base.join("/abs?y").unwrap().to_string(),
            "http://h:81/abs?y"
        );
        assert_eq!(
            base.join("rel#f").unwrap().to_string(),
            "http://h:81/dir/rel"
        );
        assert_eq!(
            base.join("?z").unwrap().to_string(),
            "http://h:81/dir/file?z"
        );
        assert_eq!(base.join("/a b").unwrap().path, "/a%20b");
        assert!(matches!(
            base.join("https://h/x"),
            Err(WebSeedError::HttpsUnsupported(_))
        ));
    }

    fn info(name: &str, files: &[(&[&str], u64)], piece_len: u32) -> metainfo::Info {
        let files = files
            .iter()
            .map(|(p, l)| (p.iter().map(|s| (*s).to_owned()).collect(), *l))
            .collect();
        let builder = metainfo::create::Builder::new(name, files)
            .unwrap()
            .piece_length(piece_len)
            .unwrap();
        let n = builder.piece_count() as usize;
        builder.build(vec![[0; 20]; n]).unwrap().info
    }

    #[test]
    fn file_urls_follow_bep19() {
        let single = info("my file.iso", &[(&[], 10)], 16384);
        assert_eq!(
            file_url(&url("http://h/pub/"), &single, 0).to_string(),
            "http://h/pub/my%20file.iso"
        );
        // Without a trailing slash the URL is the file itself, whatever its name.
        assert_eq!(
            file_url(&url("http://h/pub/other.iso"), &single, 0).to_string(),
            "http://h/pub/other.iso"
        );
        let multi = info(
            "top",
            &[(&["a"], 1), (&["sub dir", "b%c+d é?#.bin"], 2)],
            16384,
        );
        assert_eq!(
            file_url(&url("http://h/pub"), &multi, 0).to_string(),
            "http://h/pub/top/a"
        );
        assert_eq!(
            file_url(&url("http://h:8/pub/?k=v"), &multi, 1).to_string(),
            "http://h:8/pub/top/sub%20dir/b%25c%2Bd%20%C3%A9%3F%23.bin?k=v"
        );
    }

    #[test]
    fn builds_range_requests() {
        let req = build_request(&url("http://h:8080/top/a%20b?x"), 16384, 32767);
        let expected = format!(
            "GET /top/a%20b?x HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: btt/{}\r\nRange: bytes=16384-32767\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(String::from_utf8(req).unwrap(), expected);
        let req = build_request(&url("http://[::1]/f"), 0, 0);
        assert!(req.starts_with(b"GET /f HTTP/1.1\r\nHost: [::1]\r\n"));
    }

    fn head(s: &str) -> Result<Option<(ResponseHead, usize)>, WebSeedError> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn parses_partial_content_head() {
        let text = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-19/100\r\ncontent-length: 10\r\nX: y\r\n\r\n0123456789";
        let (h, len) = head(text).unwrap().unwrap();
        assert_eq!(len, text.len() - 10);
        assert_eq!(
            h,
            ResponseHead {
                status: 206,
                framing: Framing::Length(10),
                content_range: Some(ContentRange {
                    first: 10,
                    last: 19,
                    total: Some(100)
                }),
                location: None,
                retry_after: None,
                keep_alive: true,
            }
        );
    }

    #[test]
    fn head_framing_and_connection_rules() {
        // Incomplete heads ask for more bytes.
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n")
            .unwrap()
            .is_none());
        assert!(head("").unwrap().is_none());
        // HTTP/1.0 closes unless asked otherwise; bare \n line ends are accepted.
        let (h, len) = head("HTTP/1.0 200 OK\nContent-Length: 3\n\nabc")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.framing, h.keep_alive, len),
            (Framing::Length(3), false, 35)
        );
        let (h, _) = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let (h, _) = head("HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        // No length: the body runs to the close, so the connection cannot be reused.
        let (h, _) = head("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilEof, false));
        // Chunked wins over Content-Length.
        let (h, _) =
            head("HTTP/1.1 206 P\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        // Interim and bodiless statuses.
        let (h, _) = head("HTTP/1.1 100 Continue\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.status, h.framing), (100, Framing::Length(0)));
        let (h, _) = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        // No reason phrase is fine.
        assert_eq!(head("HTTP/1.1 404\r\n\r\n").unwrap().unwrap().0.status, 404);
    }

    #[test]
    fn head_location_and_retry_after() {
        let (h, _) =
            head("HTTP/1.1 302 Found\r\nLocation: /new place\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.location.as_deref(), Some("/new%20place"));
        let (h, _) = head("HTTP/1.1 503 Busy\r\nRetry-After: 120\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.retry_after, Some(Duration::from_secs(120)));
        let (h, _) = head("HTTP/1.1 503 Busy\r\nRetry-After: 99999999999\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.retry_after, Some(MAX_RETRY_AFTER));
        let (h, _) =
            head("HTTP/1.1 503 Busy\r\nRetry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.retry_after, None);
    }

    #[test]
    fn rejects_bad_heads() {
        for bad in [
            "HTTP/2 200 OK\r\n\r\n",
            "ICY 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 5-4/10\r\n\r\n",
        ] {
            assert!(
                matches!(head(bad), Err(WebSeedError::Malformed(_))),
                "{bad:?}"
            );
        }
        // Headers are bounded whether or not the blank line ever comes.
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.resize(MAX_HEAD_BYTES, b'a');
        assert!(matches!(parse_head(&big), Err(WebSeedError::HeadTooLarge)));
        big.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse_head(&big), Err(WebSeedError::HeadTooLarge)));
    }

    #[test]
    fn parses_content_range() {
        let cr = |s: &str| parse_content_range(s.as_bytes());
        assert_eq!(
            cr("bytes 0-0/1"),
            Some(ContentRange {
                first: 0,
                last: 0,
                total: Some(1)
            })
        );
        assert_eq!(
            cr("BYTES 7-9/*"),
            Some(ContentRange {
                first: 7,
                last: 9,
                total: None
            })
        );
        for bad in [
            "bytes 0-9/9",
            "bytes */100",
            "bytes 1-/5",
            "items 0-1/5",
            "bytes 0-1",
            "bytes=0-1/5",
        ] {
            assert_eq!(cr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1A"), Some(26));
        assert_eq!(parse_chunk_size(b"ff ; name=value"), Some(255));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"FFFFFFFFFFFFFFFF"), Some(u64::MAX));
        for bad in [&b""[..], b"x", b"-1", b"10000000000000000", b";ext"] {
            assert_eq!(parse_chunk_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let c = Config::default();
        let s = Duration::from_secs;
        assert_eq!(backoff_delay(1, None, &c), s(5));
        assert_eq!(backoff_delay(2, None, &c), s(10));
        assert_eq!(backoff_delay(4, None, &c), s(40));
        assert_eq!(backoff_delay(30, None, &c), s(600));
        assert_eq!(backoff_delay(u32::MAX, None, &c), s(600));
        assert_eq!(backoff_delay(1, Some(s(90)), &c), s(90));
        assert_eq!(backoff_delay(4, Some(s(1)), &c), s(40));
        assert_eq!(backoff_delay(1, Some(s(7200)), &c), s(7200));
    }

    // ---- driver against small in-process servers -------------------------------------------------

    /// Deterministic test data (xorshift32).
    fn data(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// A torrent over `files` with real piece hashes, and each file's data.
    fn layout(
        name: &str,
        files: &[(&[&str], usize)],
        piece_len: u32,
    ) -> (metainfo::Info, Vec<Vec<u8>>) {
        let contents: Vec<Vec<u8>> = files
            .iter()
            .enumerate()
            .map(|(i, (_, len))| data(*len, i as u32 + 7))
            .collect();
        let entries = files
            .iter()
            .map(|(p, l)| (p.iter().map(|s| (*s).to_owned()).collect(), *l as u64))
            .collect();
        let builder = metainfo::create::Builder::new(name, entries)
            .unwrap()
            .piece_length(piece_len)
            .unwrap();
        let mut hasher = builder.hasher();
        for c in &contents {
            hasher.update(c);
        }
        (builder.build(hasher.finish()).unwrap().info, contents)
    }

    fn piece_ok(info: &metainfo::Info, piece: u32, bytes: &[u8]) -> bool {
        <[u8; 20]>::from(Sha1::digest(bytes)) == info.pieces[piece as usize]
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        /// 206 with Content-Length, keep-alive.
        Ranges,
        /// 206 then close the socket without saying so.
        CloseAfterEach,
        /// 200 with the whole file, like `python3 -m http.server`.
        IgnoreRange,
        /// 206 with a chunked body and a trailer.
        Chunked,
        /// `/a/x` → 301 absolute `/b/x` → 307 relative `/c/x` → served; `/loop/x` → itself;
        /// `/tls/x` → https.
        Redirect,
        /// 206 headers, half the body, close.
        CloseMidBody,
        /// 206 whose Content-Range is one byte off.
        WrongRange,
        /// This status with an optional Retry-After.
        Status(u16, Option<u64>),
        /// Read the request and never answer.
        Silent,
    }

    #[derive(Debug, Default)]
    struct Log {
        connections: usize,
        requests: Vec<(String, Option<(u64, u64)>)>,
    }

    struct Server {
        addr: SocketAddr,
        log: Arc<Mutex<Log>>,
    }

    impl Server {
        fn connections(&self) -> usize {
            self.log.lock().unwrap().connections
        }
        fn requests(&self) -> Vec<(String, Option<(u64, u64)>)> {
            self.log.lock().unwrap().requests.clone()
        }
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
    }

    async fn serve(files: Vec<(&str, Vec<u8>)>, mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let files: Arc<HashMap<String, Vec<u8>>> =
            Arc::new(files.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let log = Arc::new(Mutex::new(Log::default()));
        let server_log = log.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                server_log.lock().unwrap().connections += 1;
                tokio::spawn(handle(
                    stream,
                    files.clone(),
                    mode,
                    server_log.clone(),
                    addr,
                ));
            }
        });
        Server { addr, log }
    }

    async fn handle(
        mut stream: TcpStream,
        files: Arc<HashMap<String, Vec<u8>>>,
        mode: Mode,
        log: Arc<Mutex<Log>>,
        addr: SocketAddr,
    ) {
        let mut buf = Vec::new();
        loop {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut tmp = vec![0u8; 4096];
                match stream.read(&mut tmp).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            };
            let head = String::from_utf8(buf.drain(..head_end).collect()).unwrap();
            let target = head.split(' ').nth(1).unwrap().to_owned();
            let range = head
                .lines()
                .find_map(|l| l.strip_prefix("Range: bytes="))
                .map(|r| {
                    let (a, b) = r.split_once('-').unwrap();
                    (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap())
                });
            log.lock().unwrap().requests.push((target.clone(), range));
            let (first, last) = range.unwrap_or((0, u64::MAX));

            let status = |code: u16, extra: &str| {
                format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n{extra}\r\n").into_bytes()
            };
            let partial = |data: &[u8], shift: u64| -> (Vec<u8>, Vec<u8>) {
                let body = data[first as usize..=last as usize].to_vec();
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {}-{}/{}\r\nContent-Length: {}\r\n\r\n",
                    first + shift,
                    last + shift,
                    data.len(),
                    body.len()
                );
                (head.into_bytes(), body)
            };
            let redirected = match mode {
                Mode::Redirect if target.contains("/c/") => {
                    target.split_once("/c/").map(|(_, rest)| format!("/{rest}"))
                }
                Mode::Redirect => {
                    let response = if let Some(rest) = target.strip_prefix("/a/") {
                        Some(status(
                            301,
                            &format!("Location: http://{addr}/b/{rest}\r\n"),
                        ))
                    } else if let Some(rest) = target.strip_prefix("/b/") {
                        Some(
                            format!("HTTP/1.1 307 X\r\nLocation: ../c/{rest}\r\nContent-Length: 5\r\n\r\nmoved")
                                .into_bytes(),
                        )
                    } else if target.starts_with("/loop/") {
                        Some(status(302, &format!("Location: {target}\r\n")))
                    } else {
                        target
                            .strip_prefix("/tls/")
                            .map(|rest| status(302, &format!("Location: https://h/{rest}\r\n")))
                    };
                    let Some(response) = response else {
                        let _ = stream.write_all(&status(404, "")).await;
                        continue;
                    };
                    if stream.write_all(&response).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ => None,
            };
            let Some(file) = files.get(redirected.as_ref().unwrap_or(&target)) else {
                let _ = stream.write_all(&status(404, "")).await;
                continue;
            };
            let mut close = false;
            let response = match mode {
                Mode::Ranges | Mode::Redirect | Mode::CloseAfterEach => {
                    close = mode == Mode::CloseAfterEach;
                    let (h, b) = partial(file, 0);
                    [h, b].concat()
                }
                Mode::WrongRange => {
                    let (h, b) = partial(file, 1);
                    [h, b].concat()
                }
                Mode::CloseMidBody => {
                    close = true;
                    let (h, b) = partial(file, 0);
                    [h, b[..b.len() / 2].to_vec()].concat()
                }
                Mode::IgnoreRange => {
                    let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", file.len());
                    [h.as_bytes(), file].concat()
                }
                Mode::Chunked => {
                    let (_, body) = partial(file, 0);
                    let mut out = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{}\r\nTransfer-Encoding: chunked\r\n\r\n",
                        file.len()
                    )
                    .into_bytes();
                    for (i, chunk) in body.chunks(1000).enumerate() {
                        let ext = if i == 0 { ";ext=1" } else { "" };
                        out.extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\nX-Trailer: yes\r\n\r\n");
                    out
                }
                Mode::Status(code, retry) => {
                    let extra = retry.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
                    status(code, &extra)
                }
                Mode::Silent => {
                    std::future::pending::<()>().await;
                    return;
                }
            };
            if stream.write_all(&response).await.is_err() || close {
                return;
            }
        }
    }

    fn fast_config() -> Config {
        Config {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            ..Config::default()
        }
    }

    /// A multi-file layout whose pieces cross file boundaries, a zero-length file included.
    fn multi_layout() -> (metainfo::Info, Vec<Vec<u8>>) {
        layout(
            "multi",
            &[
                (&["a.bin"], 20_000),
                (&["sub dir", "b%c.bin"], 30_001),
                (&["empty"], 0),
                (&["z"], 7),
            ],
            16384,
        )
    }

    const MULTI_PATHS: [&str; 4] = [
        "/seed/multi/a.bin",
        "/seed/multi/sub%20dir/b%25c.bin",
        "/seed/multi/empty",
        "/seed/multi/z",
    ];

    async fn multi_server(mode: Mode) -> (metainfo::Info, Server) {
        let (info, contents) = multi_layout();
        let files = MULTI_PATHS.iter().copied().zip(contents).collect();
        (info, serve(files, mode).await)
    }

    #[tokio::test]
    async fn fetches_pieces_across_files_on_one_connection() {
        let (info, server) = multi_server(Mode::Ranges).await;
        let mut seed = WebSeed::with_config(&server.url("/seed/"), fast_config()).unwrap();
        for piece in 0..info.num_pieces() {
            let bytes = seed
                .fetch(&info, piece, 0, info.piece_size(piece))
                .await
                .unwrap();
            assert!(piece_ok(&info, piece, &bytes), "piece {piece}");
        }
        let requests = server.requests();
        // Piece 1 is the tail of a.bin and the head of b%c.bin; the empty file is never asked for.
        assert_eq!(
            requests[1..3],
            [
                (MULTI_PATHS[0].to_owned(), Some((16384, 19_999))),
                (MULTI_PATHS[1].to_owned(), Some((0, 12_767))),
            ]
        );
        assert_eq!(
            requests.last().unwrap(),
            &(MULTI_PATHS[3].to_owned(), Some((0, 6)))
        );
        assert!(requests.iter().all(|(p, _)| p != MULTI_PATHS[2]));
        assert_eq!(requests.len(), 6);
        assert_eq!(server.connections(), 1, "keep-alive reuses one connection");
        assert_eq!(
            *seed.stats(),
            Stats {
                bytes_received: info.total_length,
                bytes_discarded: 0,
                requests: 6,
                connections: 1,
                failures: 0,
            }
        );
        // A block inside a piece, and an empty one.
        let block = seed.fetch(&info, 1, 3000, 2000).await.unwrap();
        let whole = seed.fetch(&info, 1, 0, 16384).await.unwrap();
        assert_eq!(block, whole[3000..5000]);
        assert!(seed.fetch(&info, 0, 5, 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn single_file_url_rules() {
        let (info, contents) = layout("single.bin", &[(&[], 40_000)], 16384);
        let server = serve(
            vec![
                ("/dir/single.bin", contents[0].clone()),
                ("/direct", contents[0].clone()),
            ],
            Mode::Ranges,
        )
        .await;
        for base in ["/dir/", "/direct"] {
            let mut seed = WebSeed::with_config(&server.url(base), fast_config()).unwrap();
            let bytes = seed.fetch(&info, 2, 0, info.piece_size(2)).await.unwrap();
            assert!(piece_ok(&info, 2, &bytes), "{base}");
        }
        let paths: Vec<_> = server.requests().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["/dir/single.bin", "/direct"]);
    }

    #[tokio::test]
    async fn range_ignored_falls_back_to_the_whole_file_and_drops_the_connection() {
        let (info, contents) = layout("big.bin", &[(&[], 1 << 20)], 65536);
        let server = serve(vec![("/big.bin", contents[0].clone())], Mode::IgnoreRange).await;
        let mut seed = WebSeed::with_config(&server.url("/"), fast_config()).unwrap();
        let block = seed.fetch(&info, 3, 1000, 5000).await.unwrap();
        let start = 3 * 65536 + 1000;
        assert_eq!(block, contents[0][start..start + 5000]);
        assert_eq!(seed.stats().bytes_discarded, start as u64);
        let bytes = seed.fetch(&info, 0, 0, 65536).await.unwrap();
        assert!(piece_ok(&info, 0, &bytes));
        // Each 200 was abandoned after the wanted bytes, so the second fetch needed a new
        // connection.
        assert_eq!(server.connections(), 2);
        assert_eq!(seed.stats().connections, 2);
    }

    #[tokio::test]
    async fn chunked_bodies_are_decoded_and_the_connection_reused() {
        let (info, server) = multi_server(Mode::Chunked).await;
        let mut seed = WebSeed::with_config(&server.url("/seed"), fast_config()).unwrap();
        for piece in 0..info.num_pieces() {
            let bytes = seed
                .fetch(&info, piece, 0, info.piece_size(piece))
                .await
                .unwrap();
            assert!(piece_ok(&info, piece, &bytes), "piece {piece}");
        }
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn follows_redirects() {
        let (info, contents) = layout("f", &[(&[], 20_000)], 16384);
        let server = serve(vec![("/f", contents[0].clone())], Mode::Redirect).await;
        let mut seed = WebSeed::with_config(&server.url("/a/"), fast_config()).unwrap();
        let bytes = seed.fetch(&info, 1, 0, info.piece_size(1)).await.unwrap();
        assert!(piece_ok(&info, 1, &bytes));
        let paths: Vec<_> = server.requests().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["/a/f", "/b/f", "/b/../c/f"]);
        // Redirect bodies were drained, so all three hops shared one connection.
        assert_eq!(server.connections(), 1);

        let mut looping = WebSeed::with_config(&server.url("/loop/"), fast_config()).unwrap();
        let err = looping.fetch(&info, 0, 0, 10).await.unwrap_err();
        assert!(
            matches!(err, WebSeedError::TooManyRedirects { .. }),
            "{err}"
        );
        assert!(err.is_permanent());
        assert_eq!(looping.stats().requests, 1 + MAX_REDIRECTS as u64);

        let mut tls = WebSeed::with_config(&server.url("/tls/"), fast_config()).unwrap();
        let err = tls.fetch(&info, 0, 0, 10).await.unwrap_err();
        assert!(matches!(err, WebSeedError::HttpsUnsupported(_)), "{err}");
    }

    #[tokio::test]
    async fn error_statuses_back_off() {
        let (info, contents) = layout("f", &[(&[], 100)], 16384);
        let server = serve(vec![("/f", contents[0].clone())], Mode::Status(404, None)).await;
        let mut seed = WebSeed::with_config(&server.url("/"), fast_config()).unwrap();
        let before = Instant::now();
        let err = seed.fetch(&info, 0, 0, 100).await.unwrap_err();
        assert!(
            matches!(
                err,
                WebSeedError::Status {
                    status: 404,
                    retry_after: None,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.is_permanent());
        assert!(!seed.is_ready(Instant::now()));
        let retry_at = seed.retry_at().unwrap();
        assert!(retry_at >= before + Duration::from_secs(5));
        assert!(seed.is_ready(retry_at));
        seed.fetch(&info, 0, 0, 100).await.unwrap_err();
        assert_eq!(seed.consecutive_failures(), 2);
        assert!(seed.retry_at().unwrap() >= before + Duration::from_secs(10));
        assert_eq!(seed.stats().failures, 2);

        let busy = serve(
            vec![("/f", contents[0].clone())],
            Mode::Status(503, Some(90)),
        )
        .await;
        let mut seed = WebSeed::with_config(&busy.url("/"), fast_config()).unwrap();
        let err = seed.fetch(&info, 0, 0, 100).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(90)));
        assert!(err.to_string().contains("retry after 90 s"), "{err}");
        assert!(seed.retry_at().unwrap() >= before + Duration::from_secs(90));

        // A missing file is a 404 too.
        let ok = serve(vec![], Mode::Ranges).await;
        let mut seed = WebSeed::with_config(&ok.url("/"), fast_config()).unwrap();
        let err = seed.fetch(&info, 0, 0, 100).await.unwrap_err();
        assert!(matches!(err, WebSeedError::Status { status: 404, .. }));
    }

    #[tokio::test]
    async fn success_ends_the_back_off() {
        let (info, server) = multi_server(Mode::Ranges).await;
        let mut seed = WebSeed::with_config(&server.url("/nothing-here/"), fast_config()).unwrap();
        seed.fetch(&info, 0, 0, 10).await.unwrap_err();
        assert!(seed.retry_at().is_some());
        seed.base = HttpUrl::parse(&server.url("/seed/")).unwrap();
        seed.fetch(&info, 0, 0, 10).await.unwrap();
        assert_eq!((seed.retry_at(), seed.consecutive_failures()), (None, 0));
    }

    #[tokio::test]
    async fn connection_closed_mid_body_is_an_error() {
        let (info, server) = multi_server(Mode::CloseMidBody).await;
        let mut seed = WebSeed::with_config(&server.url("/seed/"), fast_config()).unwrap();
        let err = seed.fetch(&info, 0, 0, 16384).await.unwrap_err();
        assert!(matches!(err, WebSeedError::Truncated), "{err}");
        assert_eq!(seed.stats().failures, 1);
    }

    #[tokio::test]
    async fn wrong_content_range_is_rejected() {
        let (info, server) = multi_server(Mode::WrongRange).await;
        let mut seed = WebSeed::with_config(&server.url("/seed/"), fast_config()).unwrap();
        let err = seed.fetch(&info, 0, 0, 100).await.unwrap_err();
        match err {
            WebSeedError::RangeMismatch { want, got, .. } => {
                assert_eq!((want.as_str(), got.as_str()), ("0-99", "1-100"));
            }
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn a_silently_closed_keep_alive_connection_is_replaced() {
        let (info, server) = multi_server(Mode::CloseAfterEach).await;
        let mut seed = WebSeed::with_config(&server.url("/seed/"), fast_config()).unwrap();
        for piece in 0..info.num_pieces() {
            let bytes = seed
                .fetch(&info, piece, 0, info.piece_size(piece))
                .await
                .unwrap();
            assert!(piece_ok(&info, piece, &bytes), "piece {piece}");
        }
        // One connection per range request, and no failure surfaced.
        assert_eq!(server.connections(), 6);
        assert_eq!(seed.stats().failures, 0);
    }

    #[tokio::test]
    async fn reads_time_out() {
        let (info, server) = multi_server(Mode::Silent).await;
        let config = Config {
            read_timeout: Duration::from_millis(200),
            ..fast_config()
        };
        let mut seed = WebSeed::with_config(&server.url("/seed/"), config).unwrap();
        let err = seed.fetch(&info, 0, 0, 100).await.unwrap_err();
        assert!(
            matches!(
                err,
                WebSeedError::Timeout {
                    during: "reading the response",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refused_connections_and_bad_requests() {
        let (info, _) = multi_layout();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut seed =
            WebSeed::with_config(&format!("http://127.0.0.1:{port}/"), fast_config()).unwrap();
        let err = seed.fetch(&info, 0, 0, 100).await.unwrap_err();
        assert!(matches!(err, WebSeedError::Connect { .. }), "{err}");

        // Blocks outside the piece are refused before any I/O and do not count as failures.
        let mut seed = WebSeed::new(&format!("http://127.0.0.1:{port}/")).unwrap();
        let last = info.num_pieces() - 1;
        for (piece, begin, len) in [(last + 1, 0, 1), (0, 16_000, 385), (last, 0, 17_000)] {
            let err = seed.fetch(&info, piece, begin, len).await.unwrap_err();
            assert!(matches!(err, WebSeedError::OutOfRange { .. }), "{err}");
        }
        assert_eq!(*seed.stats(), Stats::default());
        assert!(seed.retry_at().is_none());
        assert_eq!(seed.url(), format!("http://127.0.0.1:{port}/"));
    }

    // ---- a real server ---------------------------------------------------------------------------

    /// Kills the child when the test ends, however it ends.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `python3 -m http.server` ignores `Range` and speaks HTTP/1.0, so every request goes
    /// through the 200 fallback on a fresh connection.
    #[tokio::test]
    async fn python_http_server_multi_file() {
        let files: &[(&[&str], usize)] = &[
            (&["a.bin"], 20_000),
            (&["sub dir", "b%c+d.bin"], 30_001),
            (&["empty.txt"], 0),
            (&["ü.bin"], 7),
            (&["z.bin"], 2 * 16384 + 3),
        ];
        let (info, contents) = layout("multi", files, 16384);
        let root = tempfile::tempdir().unwrap();
        for ((path, _), content) in files.iter().zip(&contents) {
            let mut p = root.path().join("multi");
            p.extend(path.iter());
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = KillOnDrop(
            std::process::Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                ])
                .arg("--directory")
                .arg(root.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("python3 must be on PATH for this test"),
        );
        // Ready once it accepts a connection.
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                child.0.try_wait().unwrap().is_none(),
                "python3 -m http.server exited early"
            );
            assert!(
                Instant::now() < deadline,
                "python3 -m http.server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let mut seed =
            WebSeed::with_config(&format!("http://127.0.0.1:{port}"), fast_config()).unwrap();
        for piece in 0..info.num_pieces() {
            let bytes = seed
                .fetch(&info, piece, 0, info.piece_size(piece))
                .await
                .unwrap();
            assert!(piece_ok(&info, piece, &bytes), "piece {piece}");
        }
        // A block spanning b%c+d.bin, the empty file and ü.bin and z.bin.
        let all: Vec<u8> = contents.concat();
        let start = 20_000 + 30_000 - 16384 * 3;
        let block = seed.fetch(&info, 3, start as u32, 100).await.unwrap();
        assert_eq!(block, all[3 * 16384 + start..3 * 16384 + start + 100]);
        assert!(
            seed.stats().bytes_discarded > 0,
            "the 200 fallback was used"
        );
        assert_eq!(seed.stats().failures, 0);
    }
}
