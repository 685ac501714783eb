//! JSON-RPC calls and batches over [`Conn`], plus the hex quantities Ethereum answers with.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::http::Conn;

/// Calls one method and returns its `result` (an RPC error becomes `Err`).
pub(crate) async fn call(conn: &mut Conn, method: &str, params: Value) -> Result<Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let bytes = conn.post(body.to_string().as_bytes()).await?;
    let v: Value = serde_json::from_slice(&bytes).context("the response is not JSON")?;
    if let Some(e) = v.get("error") {
        bail!("{method} failed: {e}");
    }
    v.get("result")
        .cloned()
        .with_context(|| format!("{method}: the response has no result"))
}

/// One request object of a batch, with id `id`.
pub(crate) fn request(id: usize, method: &str, params: &Value) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

/// Sends pre-encoded request objects (ids `0..items.len()`) as one batch; returns each item's
/// `Ok(result)` or `Err(error message)`, in id order.
pub(crate) async fn batch(
    conn: &mut Conn,
    items: &[String],
) -> Result<Vec<std::result::Result<Value, String>>> {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_bytes());
    }
    body.push(b']');
    let bytes = conn.post(&body).await?;
    parse_batch(&bytes, items.len())
}

/// Splits a batch response into per-id outcomes (ids `0..n`).
pub(crate) fn parse_batch(
    bytes: &[u8],
    n: usize,
) -> Result<Vec<std::result::Result<Value, String>>> {
    let mut by_id = parse_batch_by_id(bytes)?;
    Ok((0..n)
        .map(|i| {
            by_id
                .remove(&(i as u64))
                .unwrap_or_else(|| Err("no answer in the batch".into()))
        })
        .collect())
}

/// Each answer of a batch response by its numeric id: `Ok(result)` or `Err(error message)`.
pub(crate) fn parse_batch_by_id(
    bytes: &[u8],
) -> Result<HashMap<u64, std::result::Result<Value, String>>> {
    let v: Value = serde_json::from_slice(bytes).context("the batch response is not JSON")?;
    let Value::Array(answers) = v else {
        bail!("the batch was refused: {v}");
    };
    let mut by_id: HashMap<u64, std::result::Result<Value, String>> = HashMap::new();
    for mut a in answers {
        let Some(id) = a.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let outcome = match a.get_mut("error") {
            Some(e) => Err(e
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| e.to_string(), str::to_string)),
            None => Ok(a.get_mut("result").map(Value::take).unwrap_or(Value::Null)),
        };
        by_id.insert(id, outcome);
    }
    Ok(by_id)
}

/// A `0x` hex quantity as u64.
pub(crate) fn quantity(v: &Value) -> Result<u64> {
    let s = v
        .as_str()
        .with_context(|| format!("{v} is not a hex quantity"))?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_in_id_order_with_errors() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"nonce too low"}},
                        {"jsonrpc":"2.0","id":0,"result":"0x10"}]"#;
        let out = parse_batch(body, 3).expect("parses");
        assert_eq!(out[0], Ok(Value::String("0x10".into())));
        assert_eq!(out[1], Err("nonce too low".into()));
        assert_eq!(out[2], Err("no answer in the batch".into()));
        assert_eq!(quantity(&Value::String("0x10".into())).expect("hex"), 16);
    }

    #[test]
    fn a_refused_batch_is_an_error() {
        let body = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"too many"}}"#;
        assert!(parse_batch(body, 1).is_err());
    }
}
