//! JSON-RPC 2.0 framing without I/O: a request body in, a response body out.
//!
//! Single requests and batches; notifications (no `id`) run but get no response. Ids are echoed
//! byte for byte (kept as raw JSON, so `1.50` or a 30-digit number come back unchanged). Method
//! parameters stay raw JSON until the method decodes them, so a bad parameter is reported by its
//! position and name.

use chain_types::RpcError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// Invalid JSON.
pub const PARSE_ERROR: i32 = -32700;
/// Valid JSON that is not a JSON-RPC 2.0 request.
pub const INVALID_REQUEST: i32 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Parameters that do not decode or are out of range.
pub const INVALID_PARAMS: i32 = -32602;
/// A failure inside the node (storage).
pub const INTERNAL_ERROR: i32 = -32603;
/// geth's generic server error: transaction rejections, unavailable state, unknown blocks.
pub const SERVER_ERROR: i32 = -32000;
/// EIP-1474 "limit exceeded": a log query over too many blocks or with too many results.
pub const LIMIT_EXCEEDED: i32 = -32005;
/// geth's code for a reverted `eth_call`/`eth_estimateGas`; `data` holds the revert output.
pub const EXECUTION_REVERTED: i32 = 3;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorObject {
    /// The error code.
    pub code: i32,
    /// A human-readable message.
    pub message: String,
    /// Extra data (the revert output for code 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl ErrorObject {
    /// An error without data.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A -32602 error.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// A -32000 error.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(SERVER_ERROR, message)
    }
}

impl<E: RpcError> From<E> for ErrorObject {
    fn from(e: E) -> Self {
        Self::new(e.rpc_code(), e.rpc_message())
    }
}

/// One request object; every field optional so a malformed request can still be answered.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// `Some` whenever the field is present, even as `null` (a `null` id is not a notification).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Positional method parameters, still raw JSON.
pub(crate) struct Params<'a> {
    items: Vec<&'a RawValue>,
}

impl<'a> Params<'a> {
    /// Absent or `null` params are an empty list; anything but an array is refused.
    fn parse(raw: Option<&'a RawValue>) -> Result<Self, ErrorObject> {
        let Some(raw) = raw.filter(|r| r.get() != "null") else {
            return Ok(Self { items: Vec::new() });
        };
        serde_json::from_str::<Vec<&'a RawValue>>(raw.get())
            .map(|items| Self { items })
            .map_err(|_| ErrorObject::invalid_params("non-array args: params must be a JSON array"))
    }

    /// Every parameter as a JSON value.
    pub(crate) fn values(&self) -> Result<Vec<serde_json::Value>, ErrorObject> {
        self.items
            .iter()
            .map(|raw| {
                serde_json::from_str(raw.get()).map_err(|e| {
                    ErrorObject::invalid_params(format!(
                        "invalid argument: {}",
                        without_position(&e)
                    ))
                })
            })
            .collect()
    }

    /// Refuses more than `max` parameters.
    pub(crate) fn at_most(&self, max: usize) -> Result<(), ErrorObject> {
        if self.items.len() > max {
            return Err(ErrorObject::invalid_params(format!(
                "too many arguments, want at most {max}"
            )));
        }
        Ok(())
    }

    /// Parameter `index`, which must be present and not `null`.
    pub(crate) fn required<T: DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<T, ErrorObject> {
        self.optional(index, name)?.ok_or_else(|| {
            ErrorObject::invalid_params(format!(
                "missing value for required argument {index} ({name})"
            ))
        })
    }

    /// Parameter `index`, `None` when absent or `null`.
    pub(crate) fn optional<T: DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<Option<T>, ErrorObject> {
        match self.items.get(index) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get()).map(Some).map_err(|e| {
                ErrorObject::invalid_params(format!(
                    "invalid argument {index} ({name}): {}",
                    without_position(&e)
                ))
            }),
        }
    }
}

/// serde_json's message without its " at line 1 column 7" suffix, which means nothing to a
/// client that sent a parameter inside a larger body.
pub(crate) fn without_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// Limits on one HTTP body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_batch: usize,
}

/// Answers one request body. `call` runs a method. Returns `None` when nothing must be sent back
/// (only notifications).
pub(crate) fn handle_body(
    body: &[u8],
    limits: Limits,
    mut call: impl FnMut(&str, Params<'_>) -> Result<Box<RawValue>, ErrorObject>,
) -> Option<String> {
    let parsed = std::str::from_utf8(body)
        .map_err(|_| "request body is not valid UTF-8".to_owned())
        .and_then(|s| {
            serde_json::from_str::<&RawValue>(s)
                .map_err(|e| format!("parse error: {e}: send one JSON object or array"))
        });
    let raw = match parsed {
        Ok(raw) => raw,
        Err(message) => {
            return Some(error_response(
                None,
                &ErrorObject::new(PARSE_ERROR, message),
            ))
        }
    };
    if !raw.get().starts_with('[') {
        return handle_one(raw, &mut call);
    }
    let items: Vec<&RawValue> = match serde_json::from_str(raw.get()) {
        Ok(items) => items,
        Err(e) => {
            let err = ErrorObject::new(PARSE_ERROR, format!("parse error: {e}"));
            return Some(error_response(None, &err));
        }
    };
    if items.is_empty() {
        let err = ErrorObject::new(INVALID_REQUEST, "empty batch: send at least one request");
        return Some(error_response(None, &err));
    }
    if items.len() > limits.max_batch {
        let err = ErrorObject::new(
            INVALID_REQUEST,
            format!(
                "batch too large: {} requests, at most {} allowed per batch; split it",
                items.len(),
                limits.max_batch
            ),
        );
        return Some(error_response(None, &err));
    }
    let responses: Vec<String> = items
        .into_iter()
        .filter_map(|item| handle_one(item, &mut call))
        .collect();
    if responses.is_empty() {
        return None;
    }
    Some(format!("[{}]", responses.join(",")))
}

/// Answers one request object (`None` for a notification).
fn handle_one(
    raw: &RawValue,
    call: &mut impl FnMut(&str, Params<'_>) -> Result<Box<RawValue>, ErrorObject>,
) -> Option<String> {
    let invalid = |id, message: &str| {
        Some(error_response(
            id,
            &ErrorObject::new(INVALID_REQUEST, message),
        ))
    };
    if !raw.get().starts_with('{') {
        return invalid(None, "invalid request: a request must be a JSON object");
    }
    let Ok(env) = serde_json::from_str::<Envelope<'_>>(raw.get()) else {
        return invalid(
            None,
            "invalid request: the object is not a JSON-RPC request",
        );
    };
    let id = env.id;
    if let Some(id) = id {
        let s = id.get();
        let valid = s == "null"
            || s.starts_with('"')
            || s.starts_with('-')
            || s.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return invalid(
                None,
                "invalid request: id must be a string, a number or null",
            );
        }
    }
    if env.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return invalid(id, "invalid request: \"jsonrpc\" must be \"2.0\"");
    }
    let method = match env.method.map(|m| serde_json::from_str::<String>(m.get())) {
        Some(Ok(method)) => method,
        _ => return invalid(id, "invalid request: \"method\" must be a string"),
    };
    let result = Params::parse(env.params).and_then(|params| call(&method, params));
    let id = id?;
    Some(match result {
        Ok(result) => format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{}}}",
            id.get(),
            result.get()
        ),
        Err(e) => error_response(Some(id), &e),
    })
}

/// `{"jsonrpc":"2.0","id":…,"error":{…}}`; a missing id is `null`.
pub(crate) fn error_response(id: Option<&RawValue>, error: &ErrorObject) -> String {
    let error = serde_json::to_string(error).unwrap_or_else(|_| {
        format!("{{\"code\":{INTERNAL_ERROR},\"message\":\"internal error\"}}")
    });
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{error}}}",
        id.map_or("null", RawValue::get)
    )
}
