//! §2 error replies: what a worker sends for a typed error (headers and MessagePack body),
//! and what a caller makes of a reply (error or not; the code, message and retryable flag,
//! from the body, or from the status when the body does not decode).

use serde_json::{Map, Value, json};
use tessera_runtime::service::error_reply;
use tessera_schemas::{ErrorCode, WireError, codec, headers};

use super::{hex, vector_file};

fn wire_error_json(err: &WireError) -> Value {
    let mut v = json!({
        "code": err.code.as_str(),
        "message": err.message,
        "retryable": err.retryable,
        "status": err.code.status(),
    });
    if let Some(ms) = err.retry_after_ms {
        v["retry_after_ms"] = json!(ms);
    }
    v
}

/// A reply a worker sends for `err`: the headers and body as sent, and what they mean.
fn sent(name: &str, why: &str, err: &WireError) -> Value {
    let (h, body) = error_reply(err);
    let mut reply_headers = Map::new();
    for name in [headers::SERVICE_ERROR_CODE, headers::SERVICE_ERROR] {
        if let Some(v) = h.get(name) {
            reply_headers.insert(name.to_owned(), json!(v.as_str()));
        }
    }
    json!({
        "name": name,
        "kind": "sent",
        "why": why,
        "reply": {"headers": reply_headers, "body_hex": hex(&body)},
        "expect": {"error": wire_error_json(err)},
    })
}

/// A reply as a caller may receive it (possibly not from a Tessera worker), and what the
/// caller makes of it.
fn received(
    name: &str,
    why: &str,
    reply_headers: Value,
    body: &[u8],
    expect: Option<WireError>,
) -> Value {
    json!({
        "name": name,
        "kind": "received",
        "why": why,
        "reply": {"headers": reply_headers, "body_hex": hex(body)},
        "expect": {"error": expect.as_ref().map(wire_error_json)},
    })
}

fn msgpack(value: &Value) -> Vec<u8> {
    codec::encode(value)
}

pub(super) fn file() -> (&'static str, Value) {
    let mut cases: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|code| {
            sent(
                code.as_str(),
                "every code of the closed set",
                &WireError::new(*code, format!("example {} message", code.as_str())),
            )
        })
        .collect();
    cases.push(sent(
        "rate_limited_with_retry_after",
        "rate_limited carries retry_after_ms",
        &WireError::rate_limited(
            "too many logins from this connection",
            std::time::Duration::from_millis(250),
        ),
    ));
    cases.push(sent(
        "control_characters_in_the_message",
        "Nats-Service-Error holds the message with every control character (Unicode Cc: \
         U+0000-U+001F, U+007F-U+009F) replaced by a space; the body keeps it as it is",
        &WireError::new(
            ErrorCode::BadRequest,
            "line one\nline two\ttab\u{7f}del\u{85}next-line \u{e9}t\u{e9}",
        ),
    ));
    let code_header = headers::SERVICE_ERROR_CODE;
    let text_header = headers::SERVICE_ERROR;
    let status_only = |status: &str, text: &str| json!({code_header: status, text_header: text});
    cases.push(received(
        "not_an_error",
        "no Nats-Service-Error-Code header: a reply, whatever its body",
        json!({"Tessera-Schema": "auth.login/1"}),
        &msgpack(
            &json!({"code": "internal", "message": "looks like an error", "retryable": false}),
        ),
        None,
    ));
    for (status, code) in [
        ("400", ErrorCode::BadRequest),
        ("401", ErrorCode::Unauthenticated),
        ("403", ErrorCode::Forbidden),
        ("404", ErrorCode::NotFound),
        ("409", ErrorCode::Conflict),
        ("413", ErrorCode::PayloadTooLarge),
        ("422", ErrorCode::BadRequest),
        ("429", ErrorCode::RateLimited),
        ("500", ErrorCode::Internal),
        ("502", ErrorCode::Internal),
        ("503", ErrorCode::Unavailable),
        ("418", ErrorCode::Internal),
        ("not-a-number", ErrorCode::Internal),
    ] {
        cases.push(received(
            &format!("status_{status}_without_a_body"),
            "no body: the code from the status alone, the message from Nats-Service-Error",
            status_only(status, "from the header"),
            b"",
            Some(WireError::new(code, "from the header")),
        ));
    }
    cases.push(received(
        "body_code_wins_over_the_status",
        "a body that decodes gives the code, message and retryable flag, whatever the status",
        status_only("401", "header text"),
        &msgpack(&json!({"code": "not_found", "message": "body text", "retryable": false})),
        Some(WireError::new(ErrorCode::NotFound, "body text")),
    ));
    cases.push(received(
        "unknown_fields_are_ignored",
        "a field the reader does not know is skipped",
        status_only("503", "header text"),
        &msgpack(
            &json!({"code": "unavailable", "message": "body text", "retryable": true, "hint": "x"}),
        ),
        Some(WireError::new(ErrorCode::Unavailable, "body text")),
    ));
    cases.push(received(
        "code_outside_the_closed_set",
        "a code that is not in §2 does not decode: the status's code and the header text",
        status_only("418", "header text"),
        &msgpack(&json!({"code": "teapot", "message": "body text", "retryable": true})),
        Some(WireError::new(ErrorCode::Internal, "header text")),
    ));
    cases.push(received(
        "body_without_retryable",
        "retryable is required: a body without it does not decode",
        status_only("503", "header text"),
        &msgpack(&json!({"code": "unavailable", "message": "body text"})),
        Some(WireError::new(ErrorCode::Unavailable, "header text")),
    ));
    cases.push(received(
        "body_as_an_array",
        "the fields as an array is not an error body",
        status_only("401", "header text"),
        &msgpack(&json!(["unauthenticated", "body text", false])),
        Some(WireError::new(ErrorCode::Unauthenticated, "header text")),
    ));
    cases.push(received(
        "body_not_msgpack",
        "a JSON body is not an error body",
        status_only("403", "header text"),
        br#"{"code":"forbidden","message":"body text","retryable":false}"#,
        Some(WireError::new(ErrorCode::Forbidden, "header text")),
    ));
    (
        "error_replies.json",
        vector_file(
            "Error replies. `sent`: a worker's typed error -> the reply's headers \
             (Nats-Service-Error-Code: the status as decimal text; Nats-Service-Error: the \
             message with control characters replaced by spaces) and body_hex (MessagePack map \
             {code, message, retryable} and, with rate_limited, retry_after_ms); a decoder \
             gets back expect.error. `received`: a reply as a caller may get it -> \
             expect.error, or null when it is not an error. A reply is an error if and only if \
             it has Nats-Service-Error-Code; when the body does not decode as an error body \
             (absent, not a MessagePack map, a code outside the closed set, a required field \
             missing), the code comes from the status (unknown or unparsable: internal), the \
             message from Nats-Service-Error, retryable from the code. status is the code's \
             own status; retryable is true exactly for unavailable, rate_limited and \
             package_mismatch.",
            "docs/protocol.md §2",
            cases,
        ),
    )
}
