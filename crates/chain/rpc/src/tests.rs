//! Unit tests of the framing and helpers without HTTP.

use serde_json::value::RawValue;

use crate::jsonrpc::{handle_body, ErrorObject, Limits, Params};
use crate::methods::revert_reason;

fn echo(method: &str, params: Params<'_>) -> Result<Box<RawValue>, ErrorObject> {
    match method {
        "echo" => {
            let v: serde_json::Value = params.required(0, "value")?;
            Ok(serde_json::value::to_raw_value(&v).unwrap())
        }
        _ => Err(ErrorObject::new(-32601, "no")),
    }
}

fn run(body: &str) -> Option<String> {
    handle_body(body.as_bytes(), Limits { max_batch: 3 }, echo)
}

#[test]
fn ids_are_echoed_byte_for_byte() {
    for id in [
        "1",
        "1.50",
        "123456789012345678901234567890",
        "\"a\\u0041\"",
        "null",
        "-0",
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"echo","params":[7]}}"#);
        assert_eq!(
            run(&body).unwrap(),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":7}}"#)
        );
    }
}

#[test]
fn leading_whitespace_batch_and_notifications() {
    let body = r#"  [ {"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},
        {"jsonrpc":"2.0","method":"echo","params":[2]},
        {"jsonrpc":"2.0","id":"x","method":"nope"} ] "#;
    assert_eq!(
        run(body).unwrap(),
        r#"[{"jsonrpc":"2.0","id":1,"result":1},{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"no"}}]"#
    );
    // Only notifications: nothing to send.
    assert_eq!(
        run(r#"[{"jsonrpc":"2.0","method":"echo","params":[2]}]"#),
        None
    );
    assert_eq!(
        run(r#"{"jsonrpc":"2.0","method":"echo","params":[2]}"#),
        None
    );
}

#[test]
fn malformed_requests() {
    let cases = [
        ("{", -32700),
        ("\u{0}", -32700),
        ("[]", -32600),
        ("42", -32600),
        (r#"{"id":1,"method":"echo","params":[1]}"#, -32600),
        (r#"{"jsonrpc":"1.0","id":1,"method":"echo"}"#, -32600),
        (r#"{"jsonrpc":"2.0","id":{},"method":"echo"}"#, -32600),
        (r#"{"jsonrpc":"2.0","id":1,"method":5}"#, -32600),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[]}"#,
            -32602,
        ),
    ];
    for (body, code) in cases {
        let out: serde_json::Value = serde_json::from_str(&run(body).unwrap()).unwrap();
        assert_eq!(out["error"]["code"], code, "{body}: {out}");
    }
    // A bad batch element gets its own error; the others are still answered.
    assert_eq!(
        run(r#"[1,{"jsonrpc":"2.0","id":2,"method":"echo","params":[3]}]"#).unwrap(),
        r#"[{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: a request must be a JSON object"}},{"jsonrpc":"2.0","id":2,"result":3}]"#
    );
    let too_many = r#"[{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]},{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}]"#;
    assert_eq!(
        run(too_many).unwrap(),
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batch too large: 4 requests, at most 3 allowed per batch; split it"}}"#
    );
    // An invalid request keeps its id when it has a usable one.
    assert_eq!(
        run(r#"{"jsonrpc":"2.0","id":9,"method":[]}"#).unwrap(),
        r#"{"jsonrpc":"2.0","id":9,"error":{"code":-32600,"message":"invalid request: \"method\" must be a string"}}"#
    );
}

#[test]
fn revert_reasons() {
    // Error("Not enough Ether provided.")
    let data = alloy_primitives::hex!(
        "08c379a0"
        "0000000000000000000000000000000000000000000000000000000000000020"
        "000000000000000000000000000000000000000000000000000000000000001a"
        "4e6f7420656e6f7567682045746865722070726f76696465642e000000000000"
    );
    assert_eq!(revert_reason(&data).unwrap(), "Not enough Ether provided.");
    let panic = alloy_primitives::hex!(
        "4e487b71"
        "0000000000000000000000000000000000000000000000000000000000000011"
    );
    assert_eq!(
        revert_reason(&panic).unwrap(),
        "arithmetic underflow or overflow (0x11)"
    );
    // Truncated, lying lengths and custom errors give no reason and never panic.
    assert_eq!(revert_reason(&data[..40]), None);
    let mut lying = data;
    lying[4 + 63] = 0xff;
    assert_eq!(revert_reason(&lying), None);
    let mut huge = data;
    huge[4 + 32] = 0xff;
    assert_eq!(revert_reason(&huge), None);
    assert_eq!(revert_reason(&[0xde, 0xad, 0xbe, 0xef]), None);
    assert_eq!(revert_reason(&[]), None);
}
