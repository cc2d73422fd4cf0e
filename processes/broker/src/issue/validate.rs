//! Step 1 of `token.request`: the request body's shapes, checked before any round trip.

use std::net::IpAddr;

use tessera_schemas::data::device_id_ok;
use tessera_schemas::messages::TokenRequest;
use tessera_schemas::{ErrorCode, WireError, ids};

const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A token request whose every field has the right shape.
#[derive(Debug)]
pub(super) struct Validated {
    pub plugin_id: String,
    pub account_token: String,
    pub idempotency_key: Option<String>,
    pub device_id: Option<String>,
    /// In canonical text form (Rust's `IpAddr` display): what a token carries.
    pub user_ip: Option<String>,
}

pub(super) fn validate(body: TokenRequest) -> Result<Validated, WireError> {
    let bad = |message: &str| WireError::new(ErrorCode::BadRequest, message);
    ids::check("plugin_id", &body.plugin_id)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    if body.account_token.is_empty() {
        return Err(bad("account_token is empty"));
    }
    if let Some(k) = &body.idempotency_key
        && (k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(bad("idempotency_key must be 1-128 bytes"));
    }
    if let Some(d) = &body.device_id
        && !device_id_ok(d)
    {
        return Err(bad("device_id must be 1-128 of A-Z a-z 0-9 - _ . :"));
    }
    let user_ip = match &body.user_ip {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| bad("user_ip is not an IP address"))?
                .to_string(),
        ),
        None => None,
    };
    Ok(Validated {
        plugin_id: body.plugin_id,
        account_token: body.account_token,
        idempotency_key: body.idempotency_key,
        device_id: body.device_id,
        user_ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TokenRequest {
        TokenRequest {
            account_token: "t".into(),
            plugin_id: "weather".into(),
            idempotency_key: None,
            device_id: None,
            user_ip: None,
        }
    }

    #[test]
    fn shapes_are_refused_before_any_round_trip() {
        let cases: [fn(&mut TokenRequest); 6] = [
            |r| r.plugin_id = "no spaces".into(),
            |r| r.account_token.clear(),
            |r| r.idempotency_key = Some(String::new()),
            |r| r.idempotency_key = Some("k".repeat(129)),
            |r| r.device_id = Some("a/b".into()),
            |r| r.user_ip = Some("10.0.0".into()),
        ];
        for break_it in cases {
            let mut r = request();
            break_it(&mut r);
            assert_eq!(validate(r).unwrap_err().code, ErrorCode::BadRequest);
        }
    }

    #[test]
    fn the_user_ip_is_kept_in_canonical_form() {
        let mut r = request();
        r.user_ip = Some("2001:DB8:0:0::1".into());
        assert_eq!(validate(r).unwrap().user_ip.as_deref(), Some("2001:db8::1"));
    }
}
