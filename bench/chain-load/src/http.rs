//! A minimal HTTP/1.1 JSON-RPC client over one keep-alive TCP connection.
//!
//! # Layout
//!
//! [`Conn`] sends `POST /` with a JSON body and reads one response (`Content-Length` or chunked).
//! It reconnects once when the server closed an idle connection. Nothing here pipelines: one
//! request is in flight per connection, so callers open several for concurrency.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest response body accepted (a 1000-item batch of block hashes is far below this).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One keep-alive connection to a JSON-RPC endpoint.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
}

impl Conn {
    /// A connection to `addr`, opened on first use.
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            request: Vec::new(),
        }
    }

    /// Posts `body` and returns the response body; reconnects and retries once if a kept-alive
    /// connection turns out to be closed.
    pub(crate) async fn post(&mut self, body: &[u8]) -> Result<Vec<u8>> {
        let reused = self.stream.is_some();
        match self.try_post(body).await {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.stream = None;
                self.try_post(body).await
            }
            Err(e) => Err(e),
        }
    }

    async fn try_post(&mut self, body: &[u8]) -> Result<Vec<u8>> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::with_capacity(64 * 1024, s));
        }
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.addr,
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body);
        let result = {
            let stream = self.stream.as_mut().context("no connection")?;
            stream.get_mut().write_all(&self.request).await?;
            read_response(stream).await
        };
        match result {
            Ok((body, keep_alive)) => {
                if !keep_alive {
                    self.stream = None;
                }
                Ok(body)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

/// Reads one response; returns its body and whether the connection stays open.
async fn read_response(s: &mut BufReader<TcpStream>) -> Result<(Vec<u8>, bool)> {
    let mut line = String::new();
    if s.read_line(&mut line).await? == 0 {
        bail!("the server closed the connection");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = true;
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            bail!("the server closed the connection in the headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = Some(v.parse::<usize>()?),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => keep_alive = !v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            s.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if body.len() + size > MAX_BODY {
                bail!("response over {MAX_BODY} bytes");
            }
            let start = body.len();
            body.resize(start + size, 0);
            s.read_exact(&mut body[start..]).await?;
            line.clear();
            s.read_line(&mut line).await?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            bail!("response over {MAX_BODY} bytes");
        }
        body.resize(n, 0);
        s.read_exact(&mut body).await?;
    } else {
        s.read_to_end(&mut body).await?;
        keep_alive = false;
    }
    if status != 200 {
        bail!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok((body, keep_alive))
}
