//! A small HTTP/1.1 client: fetching .torrent URLs for the node, and [`NodeClient`], which the
//! `btt torrent` commands use to drive a running node through the native API.
//!
//! Plain `http://` only (the node listens on loopback), one connection per request with
//! `Connection: close`, one deadline over the whole exchange, and replies read with the wallet's
//! sans-IO response parser (bounded, never allocating from a length field).

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::SESSION_HEADER;

/// Where the `btt` commands look for a node by default.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:9091";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host[:port][/path]`.
    #[error(transparent)]
    Url(#[from] wallet::ClientError),
    /// No connection, or it broke.
    #[error("cannot reach {url}: {source}; is `btt node` running there?")]
    Io {
        /// The URL.
        url: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The reply did not come in time.
    #[error("{0} did not answer in time")]
    Timeout(String),
    /// The reply is not HTTP, or too big.
    #[error("bad reply from {url}: {reason}")]
    BadReply {
        /// The URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The node answered with an error.
    #[error("{message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The node's message.
        message: String,
    },
}

/// A reply: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the whole reply (at most `max_bytes`).
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    max_bytes: usize,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let endpoint = wallet::client::Endpoint::parse(url)?;
    let (authority, path) = (endpoint.authority(), endpoint.path());
    let io = |source| ClientError::Io {
        url: url.to_string(),
        source,
    };
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await.map_err(io)?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nConnection: close\r\nUser-Agent: btt/{}\r\nContent-Length: {}\r\n",
            crate::VERSION,
            body.len()
        );
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {authority}\r\n"));
        }
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.map_err(io)?;
        stream.write_all(body).await.map_err(io)?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > max_bytes + 64 * 1024 {
                return Err(ClientError::BadReply {
                    url: url.to_string(),
                    reason: format!("larger than {max_bytes} bytes"),
                });
            }
            match wallet::client::parse_http_response(&buf, n == 0) {
                Ok(Some(r)) => {
                    let headers = parse_headers(&buf);
                    return Ok(Reply {
                        status: r.status,
                        headers,
                        body: r.body,
                    });
                }
                Ok(None) if n == 0 => {
                    return Err(ClientError::BadReply {
                        url: url.to_string(),
                        reason: "connection closed before the reply ended".into(),
                    })
                }
                Ok(None) => {}
                Err(reason) => {
                    return Err(ClientError::BadReply {
                        url: url.to_string(),
                        reason,
                    })
                }
            }
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ClientError::Timeout(url.to_string()))?
}

fn parse_headers(buf: &[u8]) -> Vec<(String, String)> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// A client of a running node's native API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    auth: Option<String>,
    session_id: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    timeout: Duration,
}

impl NodeClient {
    /// A client of the node at `base` (`http://127.0.0.1:9091`), with optional credentials.
    pub fn new(base: &str, credentials: Option<(&str, &str)>) -> Result<Self, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        wallet::client::Endpoint::parse(&base)?;
        Ok(Self {
            base,
            auth: credentials.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            session_id: Default::default(),
            timeout: Duration::from_secs(60),
        })
    }

    /// Sends a request; answers 409 by taking the session id and retrying once. Returns the JSON
    /// body of a 2xx reply, or the node's error message.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let body_bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        for _ in 0..2 {
            let mut headers: Vec<(&str, String)> = Vec::new();
            if body.is_some() {
                headers.push(("Content-Type", "application/json".into()));
            }
            if let Some(a) = &self.auth {
                headers.push(("Authorization", a.clone()));
            }
            let sid = self
                .session_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(sid) = sid {
                headers.push((SESSION_HEADER, sid));
            }
            let url = format!("{}{}", self.base, path);
            let reply =
                http_request(method, &url, &headers, &body_bytes, 64 << 20, self.timeout).await?;
            if reply.status == 409 {
                if let Some(sid) = reply.header(&SESSION_HEADER.to_ascii_lowercase()) {
                    *self.session_id.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(sid.to_string());
                    continue;
                }
            }
            let json: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            if !(200..300).contains(&reply.status) {
                let message = json["error"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
                return Err(ClientError::Api {
                    status: reply.status,
                    message,
                });
            }
            return Ok(json);
        }
        Err(ClientError::BadReply {
            url: self.base.clone(),
            reason: "the node keeps refusing the session id".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let split = |url: &str| {
            wallet::client::Endpoint::parse(url)
                .map(|e| (e.authority().to_string(), e.path().to_string()))
        };
        assert_eq!(
            split("http://127.0.0.1:9091/api/v1").unwrap(),
            ("127.0.0.1:9091".into(), "/api/v1".into())
        );
        assert_eq!(
            split("http://example.org").unwrap(),
            ("example.org:80".into(), "/".into())
        );
        assert!(split("https://x").is_err());
        assert!(split("http://u:p@x/").is_err());
        assert!(split("http:///a").is_err());
        assert!(NodeClient::new("https://x", None).is_err());
    }
}
