//! A JSON-RPC client for an Ethereum-compatible node, and EIP-1559 transfers signed by a [`Signer`].
//!
//! # Layout
//! - [`RpcClient`] speaks JSON-RPC 2.0 over plain HTTP/1.1 on a tokio `TcpStream`: one connection
//!   per request (`Connection: close`), one deadline over connect, write and read. Only `http://`
//!   URLs: the node serves RPC on loopback or behind a TLS proxy, and a TLS stack is not worth
//!   its weight in a wallet.
//! - Framing is sans-IO: [`parse_http_response`] turns the bytes read so far into a status and a
//!   body (`Content-Length`, chunked, or until the peer closes), never allocating from a length
//!   field and never reading past [`MAX_RESPONSE_BYTES`].
//! - Typed helpers for the calls a wallet needs ([`RpcClient::balance`], [`RpcClient::nonce`],
//!   fees, [`RpcClient::estimate_gas`], [`RpcClient::send_raw_transaction`], receipts).
//! - [`sign_eip1559`] signs an alloy [`TxEip1559`] with our [`Signer`] and returns the EIP-2718
//!   bytes and hash ([`SignedTx`]); [`RpcClient::prepare_transfer`] fills in chain id, pending
//!   nonce, gas and fees.
//!
//! Errors ([`ClientError`]) keep the node's JSON-RPC code and message, so "insufficient funds"
//! and "nonce too low" reach the user in the node's own words.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEnvelope};
use alloy_primitives::{TxKind, U256};
use chain_types::{Encodable2718, Wei, B256};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use alloy_consensus::TxEip1559;

use crate::{hex, Address, Signer};

/// Where `btt` looks for a node when no URL is given.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";

/// How long one request may take (connect, send and read the reply) unless set otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest reply we read (headers and body); a bigger one is an error, not an allocation.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How often [`RpcClient::wait_for_receipt`] asks the node.
const RECEIPT_POLL: Duration = Duration::from_millis(200);

/// Gas of a plain value transfer to an account without code.
pub const TRANSFER_GAS: u64 = 21_000;

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL asks for TLS, which this client does not speak.
    #[error("{0}: https is not supported; give an http:// URL (the node's RPC on 127.0.0.1, or a local TLS-terminating proxy)")]
    HttpsUnsupported(String),
    /// The URL is not `http://host[:port][/path]`.
    #[error("invalid RPC URL {url:?}: {reason}; expected http://HOST[:PORT][/PATH]")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No TCP connection to the node.
    ///
    /// Socket errors are part of the message, not a `source()`, so they are printed once.
    #[error("cannot connect to the node at {url}: {cause}; is it running? (set --rpc or BTT_RPC)")]
    Connect {
        /// The node's URL.
        url: String,
        /// The socket error.
        cause: std::io::Error,
    },
    /// The node took longer than the timeout to answer.
    #[error("{method} to {url} timed out after {timeout_ms} ms: the node is not answering")]
    Timeout {
        /// The node's URL.
        url: String,
        /// The JSON-RPC method.
        method: String,
        /// The timeout that ran out.
        timeout_ms: u64,
    },
    /// The connection failed after it was made.
    #[error("connection to {url} failed during {method}: {cause}")]
    Io {
        /// The node's URL.
        url: String,
        /// The JSON-RPC method.
        method: String,
        /// The socket error.
        cause: std::io::Error,
    },
    /// An HTTP error status without a JSON-RPC error in the body.
    #[error("{url} answered HTTP {status} to {method}: {body}; is this a JSON-RPC endpoint?")]
    Http {
        /// The node's URL.
        url: String,
        /// The JSON-RPC method.
        method: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the body, for the message.
        body: String,
    },
    /// A reply that is not the HTTP or JSON-RPC we expect.
    #[error("malformed reply from {url} to {method}: {reason}")]
    BadResponse {
        /// The node's URL.
        url: String,
        /// The JSON-RPC method.
        method: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node answered with a JSON-RPC error object.
    #[error("the node refused {method}: {message} (JSON-RPC error {code})")]
    Rpc {
        /// The JSON-RPC method.
        method: String,
        /// The error code (`-32000` for most transaction rejections).
        code: i64,
        /// The node's message, e.g. `insufficient funds for gas * price + value`.
        message: String,
        /// The optional `data` member, as JSON text (revert data for `eth_call`).
        data: Option<String>,
    },
    /// No receipt before the deadline of [`RpcClient::wait_for_receipt`].
    #[error("no receipt for {hash} after {waited_ms} ms: the transaction may still be pending; look it up later by its hash")]
    ReceiptTimeout {
        /// The transaction hash.
        hash: B256,
        /// How long we waited.
        waited_ms: u64,
    },
    /// Fees or amounts that overflow their integer type.
    #[error("{0} overflows: use a smaller amount or fee cap")]
    Overflow(&'static str),
}

impl ClientError {
    /// The node's JSON-RPC error code, if the node answered with an error object.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// An `http://host:port/path` endpoint, checked once: http only, no credentials in the URL, no
/// whitespace in the path, a numeric port (80 when none is given).
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: String,
    /// `host:port`, for connecting and the `Host` header (IPv6 literals keep their brackets).
    authority: String,
    path: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.into(),
            reason,
        };
        let trimmed = url.trim();
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("wss://") {
            return Err(ClientError::HttpsUnsupported(url.into()));
        }
        if !lower.starts_with("http://") {
            return Err(invalid("the scheme must be http://"));
        }
        let rest = &trimmed["http://".len()..];
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
            Some(_) => return Err(invalid("a query or fragment needs a path before it")),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(invalid("the host is missing"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "user names and passwords in the URL are not supported",
            ));
        }
        if path.contains(['\r', '\n', ' ']) {
            return Err(invalid("the path contains whitespace"));
        }
        // The port is whatever follows the last ':' outside IPv6 brackets.
        let host_end = authority.rfind(']').map_or(0, |i| i + 1);
        let authority = match authority[host_end..].rfind(':') {
            Some(i) => {
                let port = &authority[host_end + i + 1..];
                if port.parse::<u16>().is_err() {
                    return Err(invalid("the port is not a number from 0 to 65535"));
                }
                authority.to_string()
            }
            None => format!("{authority}:80"),
        };
        Ok(Self {
            url: trimmed.to_string(),
            authority,
            path: path.to_string(),
        })
    }

    /// The URL as given (trimmed).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, for connecting and the `Host` header (IPv6 literals keep their brackets).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path, `/` when the URL has none.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A parsed HTTP response: status and decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code (`200`).
    pub status: u16,
    /// The body after transfer decoding.
    pub body: Vec<u8>,
}

/// Parses the bytes of an HTTP/1.x response read so far.
///
/// Returns `Ok(None)` while more bytes are needed. With `eof` set (the peer closed the
/// connection) a body without `Content-Length` or chunked framing ends at the last byte; a
/// truncated framed body is an error. Never allocates more than `buf.len()`.
pub fn parse_http_response(buf: &[u8], eof: bool) -> Result<Option<HttpResponse>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if eof {
            Err("the connection closed before the HTTP headers ended".into())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "HTTP headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP status line {status_line:?}"))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad HTTP header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let body = &buf[head_end + 4..];
    if chunked {
        return match decode_chunked(body)? {
            Some(body) => Ok(Some(HttpResponse { status, body })),
            None if eof => Err("the connection closed inside a chunked body".into()),
            None => Ok(None),
        };
    }
    if let Some(n) = content_length {
        if body.len() >= n {
            return Ok(Some(HttpResponse {
                status,
                body: body[..n].to_vec(),
            }));
        }
        return if eof {
            Err(format!(
                "the connection closed after {} of {n} body bytes",
                body.len()
            ))
        } else {
            Ok(None)
        };
    }
    Ok(eof.then(|| HttpResponse {
        status,
        body: body.to_vec(),
    }))
}

/// Decodes a complete chunked body; `Ok(None)` if the last chunk has not arrived yet.
fn decode_chunked(mut rest: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size line")?;
        // Chunk extensions (";name=value") are allowed and ignored.
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers (ignored) end with an empty line; we only need to have seen the last chunk.
            return Ok(Some(out));
        }
        if rest.len() < size.saturating_add(2) {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err("a chunk does not end with CRLF".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a transaction receipt a wallet shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReceipt {
    /// The transaction hash.
    pub transaction_hash: B256,
    /// EIP-658 status: `true` if execution succeeded.
    pub success: bool,
    /// The block that includes the transaction.
    pub block_number: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// Gas the transaction used.
    pub gas_used: u64,
    /// The price per gas actually paid (base fee + tip, capped by the max fee).
    pub effective_gas_price: u128,
    /// The created contract, for a deployment.
    pub contract_address: Option<Address>,
}

impl TxReceipt {
    /// The fee paid: `gas_used × effective_gas_price`, exact.
    pub fn fee(&self) -> Wei {
        Wei(U256::from(self.gas_used) * U256::from(self.effective_gas_price))
    }
}

/// EIP-1559 fee caps, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// The most paid per gas, base fee included (`maxFeePerGas`).
    pub max_fee_per_gas: u128,
    /// The most paid to the block producer per gas (`maxPriorityFeePerGas`).
    pub max_priority_fee_per_gas: u128,
}

/// A message call for `eth_estimateGas` / `eth_call`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallRequest {
    /// The sender.
    pub from: Option<Address>,
    /// The callee; `None` for a contract creation.
    pub to: Option<Address>,
    /// Value sent along.
    pub value: Wei,
    /// Call data.
    pub data: Vec<u8>,
}

impl CallRequest {
    fn to_json(&self) -> Value {
        let mut call = serde_json::Map::new();
        if let Some(from) = self.from {
            call.insert("from".into(), json!(format!("{from:#x}")));
        }
        if let Some(to) = self.to {
            call.insert("to".into(), json!(format!("{to:#x}")));
        }
        call.insert("value".into(), json!(format!("{:#x}", self.value.0)));
        if !self.data.is_empty() {
            call.insert(
                "input".into(),
                json!(format!("0x{}", hex::encode(&self.data))),
            );
        }
        Value::Object(call)
    }
}

/// A signed transaction ready for `eth_sendRawTransaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The transaction hash (keccak256 of [`raw`](Self::raw)).
    pub hash: B256,
    /// The EIP-2718 encoding (`0x02 ‖ rlp(…)`).
    pub raw: Vec<u8>,
}

/// Signs an EIP-1559 transaction with `signer` and encodes it (EIP-2718).
pub fn sign_eip1559(tx: TxEip1559, signer: &Signer) -> SignedTx {
    let hash = tx.signature_hash();
    let sig = signer.sign_hash(&hash.0);
    let signature = alloy_primitives::Signature::new(
        U256::from_be_bytes(sig.r),
        U256::from_be_bytes(sig.s),
        sig.recovery_id == 1,
    );
    let envelope = TxEnvelope::Eip1559(tx.into_signed(signature));
    SignedTx {
        hash: *envelope.tx_hash(),
        raw: envelope.encoded_2718(),
    }
}

/// A JSON-RPC client for one node URL. Cheap to share; every request opens its own connection.
#[derive(Debug)]
pub struct RpcClient {
    endpoint: Endpoint,
    timeout: Duration,
    next_id: AtomicU64,
}

impl RpcClient {
    /// A client for `url` (`http://host[:port][/path]`) with [`DEFAULT_TIMEOUT`].
    pub fn new(url: &str) -> Result<Self, ClientError> {
        Ok(Self {
            endpoint: Endpoint::parse(url)?,
            timeout: DEFAULT_TIMEOUT,
            next_id: AtomicU64::new(1),
        })
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The node URL.
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// Calls `method` with `params` (a JSON array) and returns the `result` member.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let response = tokio::time::timeout(self.timeout, self.exchange(method, &body))
            .await
            .map_err(|_| ClientError::Timeout {
                url: self.endpoint.url.clone(),
                method: method.into(),
                timeout_ms,
            })??;
        self.decode_reply(method, id, response)
    }

    /// One HTTP exchange: connect, send the request, read the whole response.
    async fn exchange(&self, method: &str, body: &str) -> Result<HttpResponse, ClientError> {
        let ep = &self.endpoint;
        let mut stream =
            TcpStream::connect(&ep.authority)
                .await
                .map_err(|cause| ClientError::Connect {
                    url: ep.url.clone(),
                    cause,
                })?;
        let io = |cause| ClientError::Io {
            url: ep.url.clone(),
            method: method.into(),
            cause,
        };
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            ep.path,
            ep.authority,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut buf = Vec::with_capacity(4096);
        // On the heap: a buffer in the future would make every caller's future this large.
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            let eof = n == 0;
            if buf.len() + n > MAX_RESPONSE_BYTES {
                return Err(self.bad(
                    method,
                    format!("the reply is larger than {MAX_RESPONSE_BYTES} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse_http_response(&buf, eof) {
                Ok(Some(response)) => return Ok(response),
                Ok(None) => {}
                Err(reason) => return Err(self.bad(method, reason)),
            }
        }
    }

    fn bad(&self, method: &str, reason: impl Into<String>) -> ClientError {
        ClientError::BadResponse {
            url: self.endpoint.url.clone(),
            method: method.into(),
            reason: reason.into(),
        }
    }

    /// The `result` of a JSON-RPC reply, or its error object as [`ClientError::Rpc`].
    fn decode_reply(
        &self,
        method: &str,
        id: u64,
        response: HttpResponse,
    ) -> Result<Value, ClientError> {
        let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
        let Some(Value::Object(mut reply)) = parsed else {
            if !(200..300).contains(&response.status) {
                let text = String::from_utf8_lossy(&response.body);
                let body: String = text.trim().chars().take(200).collect();
                return Err(ClientError::Http {
                    url: self.endpoint.url.clone(),
                    method: method.into(),
                    status: response.status,
                    body,
                });
            }
            return Err(self.bad(method, "the body is not a JSON object"));
        };
        if let Some(error) = reply.get("error").filter(|e| !e.is_null()) {
            return Err(ClientError::Rpc {
                method: method.into(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
                    .to_string(),
                data: error.get("data").map(Value::to_string),
            });
        }
        if reply.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(self.bad(method, format!("the reply id is not {id}")));
        }
        reply
            .remove("result")
            .ok_or_else(|| self.bad(method, "the reply has neither result nor error"))
    }

    /// Calls `method` and parses its result as a hex quantity.
    async fn quantity(&self, method: &str, params: Value) -> Result<U256, ClientError> {
        let value = self.request(method, params).await?;
        parse_quantity(&value).ok_or_else(|| {
            self.bad(
                method,
                format!("expected a hex quantity, got {}", short(&value)),
            )
        })
    }

    async fn quantity_u64(&self, method: &str, params: Value) -> Result<u64, ClientError> {
        let q = self.quantity(method, params).await?;
        u64::try_from(q).map_err(|_| self.bad(method, format!("{q} does not fit in 64 bits")))
    }

    async fn quantity_u128(&self, method: &str, params: Value) -> Result<u128, ClientError> {
        let q = self.quantity(method, params).await?;
        u128::try_from(q).map_err(|_| self.bad(method, format!("{q} does not fit in 128 bits")))
    }

    /// `eth_blockNumber`: the node's latest (on our chain, finalized) height.
    pub async fn block_number(&self) -> Result<u64, ClientError> {
        self.quantity_u64("eth_blockNumber", json!([])).await
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, ClientError> {
        self.quantity_u64("eth_chainId", json!([])).await
    }

    /// `eth_getBalance` at the latest (final) block.
    pub async fn balance(&self, address: Address) -> Result<Wei, ClientError> {
        let q = self
            .quantity("eth_getBalance", json!([format!("{address:#x}"), "latest"]))
            .await?;
        Ok(Wei(q))
    }

    /// `eth_getTransactionCount` at `pending`: the nonce for the next transaction, counting the
    /// sender's transactions still in the node's mempool.
    pub async fn nonce(&self, address: Address) -> Result<u64, ClientError> {
        self.quantity_u64(
            "eth_getTransactionCount",
            json!([format!("{address:#x}"), "pending"]),
        )
        .await
    }

    /// `eth_gasPrice`: a legacy price per gas (base fee plus a suggested tip).
    pub async fn gas_price(&self) -> Result<u128, ClientError> {
        self.quantity_u128("eth_gasPrice", json!([])).await
    }

    /// `eth_maxPriorityFeePerGas`: the node's suggested tip.
    pub async fn max_priority_fee(&self) -> Result<u128, ClientError> {
        self.quantity_u128("eth_maxPriorityFeePerGas", json!([]))
            .await
    }

    /// The base fee of the latest block (`baseFeePerGas` of `eth_getBlockByNumber("latest")`).
    pub async fn latest_base_fee(&self) -> Result<u128, ClientError> {
        let method = "eth_getBlockByNumber";
        let block = self.request(method, json!(["latest", false])).await?;
        let fee = block.get("baseFeePerGas").ok_or_else(|| {
            self.bad(
                method,
                "the latest block has no baseFeePerGas (the node does not do EIP-1559)",
            )
        })?;
        parse_quantity(fee)
            .and_then(|q| u128::try_from(q).ok())
            .ok_or_else(|| self.bad(method, format!("bad baseFeePerGas {}", short(fee))))
    }

    /// `eth_estimateGas` for `call` at the latest block.
    pub async fn estimate_gas(&self, call: &CallRequest) -> Result<u64, ClientError> {
        self.quantity_u64("eth_estimateGas", json!([call.to_json()]))
            .await
    }

    /// Suggested caps: the node's tip, and a max fee of twice the latest base fee plus the tip,
    /// which stays valid through several blocks of rising base fee.
    pub async fn suggest_fees(&self) -> Result<Fees, ClientError> {
        let tip = self.max_priority_fee().await?;
        let base = self.latest_base_fee().await?;
        let max_fee = base
            .checked_mul(2)
            .and_then(|f| f.checked_add(tip))
            .ok_or(ClientError::Overflow("the suggested max fee"))?;
        Ok(Fees {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
        })
    }

    /// An unsigned EIP-1559 transfer of `value` from `from` to `to`: the node's chain id,
    /// `from`'s pending nonce, and the gas the node estimates.
    pub async fn prepare_transfer(
        &self,
        from: Address,
        to: Address,
        value: Wei,
        fees: Fees,
    ) -> Result<TxEip1559, ClientError> {
        let chain_id = self.chain_id().await?;
        let nonce = self.nonce(from).await?;
        let gas_limit = self
            .estimate_gas(&CallRequest {
                from: Some(from),
                to: Some(to),
                value,
                data: Vec::new(),
            })
            .await?;
        Ok(TxEip1559 {
            chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas.min(fees.max_fee_per_gas),
            to: TxKind::Call(alloy_primitives::Address::from(to.0)),
            value: value.0,
            access_list: Default::default(),
            input: Default::default(),
        })
    }

    /// `eth_sendRawTransaction`; returns the hash the node reports.
    pub async fn send_raw_transaction(&self, raw: &[u8]) -> Result<B256, ClientError> {
        let method = "eth_sendRawTransaction";
        let value = self
            .request(method, json!([format!("0x{}", hex::encode(raw))]))
            .await?;
        parse_b256(&value)
            .ok_or_else(|| self.bad(method, format!("expected a hash, got {}", short(&value))))
    }

    /// `eth_getTransactionReceipt`; `None` while the transaction is not in a block.
    pub async fn receipt(&self, hash: B256) -> Result<Option<TxReceipt>, ClientError> {
        let method = "eth_getTransactionReceipt";
        let value = self.request(method, json!([hash.to_string()])).await?;
        if value.is_null() {
            return Ok(None);
        }
        parse_receipt(&value)
            .map(Some)
            .map_err(|reason| self.bad(method, reason))
    }

    /// Polls for the receipt of `hash` until it exists or `timeout` has passed.
    pub async fn wait_for_receipt(
        &self,
        hash: B256,
        timeout: Duration,
    ) -> Result<TxReceipt, ClientError> {
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        loop {
            if let Some(receipt) = self.receipt(hash).await? {
                return Ok(receipt);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ClientError::ReceiptTimeout {
                    hash,
                    waited_ms: u64::try_from((now - start).as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::time::sleep(RECEIPT_POLL.min(deadline - now)).await;
        }
    }
}

/// A JSON value shortened for an error message.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 80 {
        return text;
    }
    let mut end = 80;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A `"0x…"` hex quantity (at most 64 digits).
fn parse_quantity(value: &Value) -> Option<U256> {
    let digits = value.as_str()?.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    U256::from_str_radix(digits, 16).ok()
}

fn parse_b256(value: &Value) -> Option<B256> {
    let text = value.as_str()?;
    if text.len() != 66 || !text.starts_with("0x") {
        return None;
    }
    B256::from_str(text).ok()
}

fn parse_receipt(value: &Value) -> Result<TxReceipt, String> {
    let field = |name: &str| value.get(name).filter(|v| !v.is_null());
    let quantity = |name: &str| {
        field(name)
            .and_then(parse_quantity)
            .ok_or_else(|| format!("receipt field {name} is missing or not a hex quantity"))
    };
    let hash = |name: &str| {
        field(name)
            .and_then(parse_b256)
            .ok_or_else(|| format!("receipt field {name} is missing or not a 32-byte hash"))
    };
    let to_u64 = |name: &str| {
        quantity(name).and_then(|q| u64::try_from(q).map_err(|_| format!("{name} is too large")))
    };
    let status = quantity("status")?;
    let contract_address = match field("contractAddress") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(|s| s.parse::<Address>().ok())
                .ok_or("receipt field contractAddress is not an address")?,
        ),
    };
    Ok(TxReceipt {
        transaction_hash: hash("transactionHash")?,
        success: status == U256::from(1),
        block_number: to_u64("blockNumber")?,
        block_hash: hash("blockHash")?,
        gas_used: to_u64("gasUsed")?,
        effective_gas_price: u128::try_from(quantity("effectiveGasPrice")?)
            .map_err(|_| "effectiveGasPrice is too large")?,
        contract_address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{keccak256, PrivateKey};
    use chain_types::{decode_and_recover, Transaction, TxRules};
    use tokio::net::TcpListener;

    fn signer() -> Signer {
        Signer::new(PrivateKey::from_bytes(&keccak256(b"cow")).unwrap())
    }

    fn transfer(chain_id: u64, nonce: u64) -> TxEip1559 {
        TxEip1559 {
            chain_id,
            nonce,
            gas_limit: TRANSFER_GAS,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(alloy_primitives::Address::repeat_byte(0x35)),
            value: U256::from(1_500_000_000_000_000_000u128),
            access_list: Default::default(),
            input: Default::default(),
        }
    }

    #[test]
    fn signed_transfer_recovers_to_our_address() {
        let signer = signer();
        for nonce in 0..4 {
            let signed = sign_eip1559(transfer(7215, nonce), &signer);
            assert_eq!(signed.raw[0], 0x02, "EIP-2718 type byte");
            assert_eq!(signed.hash.0, keccak256(&signed.raw));
            let tx = decode_and_recover(&signed.raw, &TxRules::new(7215, 30_000_000)).unwrap();
            assert_eq!(tx.sender().0 .0, signer.address().0);
            assert_eq!(tx.envelope().nonce(), nonce);
            assert_eq!(
                tx.envelope().value(),
                U256::from(1_500_000_000_000_000_000u128)
            );
            assert_eq!(*tx.envelope().tx_hash(), signed.hash);
            // The chain id is part of what is signed: another chain refuses it.
            assert!(decode_and_recover(&signed.raw, &TxRules::new(1, 30_000_000)).is_err());
        }
    }

    /// A fixed vector: the same key, transaction and RFC 6979 nonce give the same bytes.
    #[test]
    fn signing_is_deterministic() {
        let a = sign_eip1559(transfer(31337, 0), &signer());
        let b = sign_eip1559(transfer(31337, 0), &signer());
        assert_eq!(a, b);
        assert_ne!(a.hash, sign_eip1559(transfer(31337, 1), &signer()).hash);
    }

    #[test]
    fn urls() {
        let ep = Endpoint::parse("http://127.0.0.1:8545").unwrap();
        assert_eq!(
            (ep.authority.as_str(), ep.path.as_str()),
            ("127.0.0.1:8545", "/")
        );
        let ep = Endpoint::parse("HTTP://localhost/rpc/v1").unwrap();
        assert_eq!(
            (ep.authority.as_str(), ep.path.as_str()),
            ("localhost:80", "/rpc/v1")
        );
        let ep = Endpoint::parse("http://[::1]:9000/").unwrap();
        assert_eq!(ep.authority, "[::1]:9000");
        let ep = Endpoint::parse("http://[::1]").unwrap();
        assert_eq!(ep.authority, "[::1]:80");
        assert!(matches!(
            Endpoint::parse("https://node.example"),
            Err(ClientError::HttpsUnsupported(_))
        ));
        let https = Endpoint::parse("https://x").unwrap_err().to_string();
        assert!(https.contains("https is not supported"), "{https}");
        for bad in [
            "127.0.0.1:8545",
            "ftp://x",
            "http://",
            "http://host:port",
            "http://host:99999",
            "http://u:p@host",
            "http://host?x=1",
            "http://host/a b",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn http_framing() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..full.len() {
            assert_eq!(parse_http_response(&full[..cut], false), Ok(None), "{cut}");
        }
        let want = HttpResponse {
            status: 200,
            body: b"hello".to_vec(),
        };
        assert_eq!(parse_http_response(full, false), Ok(Some(want.clone())));
        assert!(parse_http_response(&full[..full.len() - 1], true).is_err());

        let chunked =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        for cut in 0..chunked.len() - 4 {
            assert_eq!(
                parse_http_response(&chunked[..cut], false),
                Ok(None),
                "{cut}"
            );
        }
        assert_eq!(parse_http_response(chunked, false), Ok(Some(want.clone())));

        let unframed = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello";
        assert_eq!(parse_http_response(unframed, false), Ok(None));
        assert_eq!(parse_http_response(unframed, true), Ok(Some(want)));

        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
        ] {
            assert!(parse_http_response(bad, false).is_err(), "{bad:?}");
        }
        // A huge declared length is not allocated up front: it just needs more bytes.
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n{}";
        assert_eq!(parse_http_response(huge, false), Ok(None));
        let huge_chunk =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab";
        assert_eq!(parse_http_response(huge_chunk, false), Ok(None));
    }

    #[test]
    fn receipts_parse() {
        let hash = format!("0x{}", "ab".repeat(32));
        let value = json!({
            "transactionHash": hash, "blockHash": hash, "blockNumber": "0x10",
            "status": "0x1", "gasUsed": "0x5208", "effectiveGasPrice": "0x3b9aca07",
            "contractAddress": null, "logs": []
        });
        let r = parse_receipt(&value).unwrap();
        assert!(r.success);
        assert_eq!((r.block_number, r.gas_used), (16, 21_000));
        assert_eq!(r.effective_gas_price, 1_000_000_007);
        assert_eq!(r.fee(), Wei::from_wei(21_000 * 1_000_000_007));
        assert_eq!(r.fee().to_btt_string(), "0.000021000000147");
        let mut failed = value.clone();
        failed["status"] = json!("0x0");
        failed["contractAddress"] = json!("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
        let r = parse_receipt(&failed).unwrap();
        assert!(!r.success);
        assert!(r.contract_address.is_some());
        let mut broken = value;
        broken["gasUsed"] = json!(21000);
        assert!(parse_receipt(&broken).unwrap_err().contains("gasUsed"));
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity(&json!("0x0")), Some(U256::ZERO));
        assert_eq!(parse_quantity(&json!("0x1c6f")), Some(U256::from(7279)));
        for bad in [
            json!("0x"),
            json!("12"),
            json!(12),
            json!("0xzz"),
            json!(null),
        ] {
            assert_eq!(parse_quantity(&bad), None, "{bad}");
        }
        assert_eq!(
            parse_quantity(&json!(format!("0x{}", "f".repeat(65)))),
            None
        );
    }

    /// A one-shot HTTP server on 127.0.0.1 that answers every connection with `reply(request body)`.
    async fn serve(reply: fn(&Value) -> String) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let request = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(head) = find(&buf, b"\r\n\r\n") else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&buf[..head]).to_lowercase();
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if buf.len() >= head + 4 + len {
                        break serde_json::from_slice::<Value>(&buf[head + 4..]).unwrap();
                    }
                };
                let body = reply(&request);
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(response.as_bytes()).await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    fn fake_node(request: &Value) -> String {
        let id = &request["id"];
        let result = match request["method"].as_str().unwrap() {
            "eth_chainId" => json!("0x1c2f"),
            "eth_getBalance" => json!("0xde0b6b3a7640001"),
            "eth_getTransactionCount" => {
                assert_eq!(request["params"][1], "pending");
                json!("0x3")
            }
            "eth_maxPriorityFeePerGas" => json!("0x3b9aca00"),
            "eth_getBlockByNumber" => json!({ "number": "0x5", "baseFeePerGas": "0x7" }),
            "eth_estimateGas" => json!("0x5208"),
            "eth_getTransactionReceipt" => Value::Null,
            "eth_sendRawTransaction" => {
                return json!({ "jsonrpc": "2.0", "id": id, "error": {
                    "code": -32000, "message": "insufficient funds for gas * price + value" } })
                .to_string()
            }
            other => panic!("unexpected {other}"),
        };
        json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string()
    }

    #[tokio::test]
    async fn typed_calls_against_a_fake_node() {
        let client = RpcClient::new(&serve(fake_node).await).unwrap();
        let who = signer().address();
        assert_eq!(client.chain_id().await.unwrap(), 7215);
        assert_eq!(
            client.balance(who).await.unwrap().to_btt_string(),
            "1.000000000000000001"
        );
        assert_eq!(client.nonce(who).await.unwrap(), 3);
        let fees = client.suggest_fees().await.unwrap();
        assert_eq!(
            fees,
            Fees {
                max_fee_per_gas: 1_000_000_014,
                max_priority_fee_per_gas: 1_000_000_000
            }
        );
        let tx = client
            .prepare_transfer(who, Address([0x35; 20]), Wei::ONE_BTT, fees)
            .await
            .unwrap();
        assert_eq!((tx.chain_id, tx.nonce, tx.gas_limit), (7215, 3, 21_000));
        assert_eq!(client.receipt(B256::ZERO).await.unwrap(), None);

        let err = client.send_raw_transaction(&[2, 1]).await.unwrap_err();
        assert_eq!(err.rpc_code(), Some(-32000));
        assert_eq!(
            err.to_string(),
            "the node refused eth_sendRawTransaction: insufficient funds for gas * price + value (JSON-RPC error -32000)"
        );

        let short_wait = client
            .wait_for_receipt(B256::ZERO, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(short_wait, ClientError::ReceiptTimeout { .. }));
    }

    #[tokio::test]
    async fn unreachable_and_silent_nodes() {
        // A port that was just free: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = RpcClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = client.chain_id().await.unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("cannot connect"), "{err}");

        // Accepts but never answers: the timeout fires.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let client = RpcClient::new(&url)
            .unwrap()
            .with_timeout(Duration::from_millis(200));
        let err = client.chain_id().await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        drop(listener);
    }

    #[tokio::test]
    async fn http_errors_without_json() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut chunk = [0u8; 4096];
            let _ = sock.read(&mut chunk).await.unwrap();
            sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
                .await
                .unwrap();
        });
        let err = RpcClient::new(&url).unwrap().chain_id().await.unwrap_err();
        assert!(
            matches!(err, ClientError::Http { status: 404, ref body, .. } if body == "not found"),
            "{err}"
        );
    }
}
