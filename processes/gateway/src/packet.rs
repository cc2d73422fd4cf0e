//! `data.<plugin_id>`: one signed data-access packet, checked in a fixed order. The first
//! check that fails decides the typed error:
//!
//! 1. size and decoding: `payload_too_large` (the request loop), `bad_request`,
//!    `unsupported_version` (the packet's `version`);
//! 2. protocol signature: a known client app and a valid HMAC, else `bad_signature`;
//! 3. timestamp within the skew: `stale_timestamp`;
//! 4. nonce not seen before (shared Redis replay cache, remembered `2 x skew + clock
//!    leeway`: `GatewayConfig::nonce_ttl`): `replayed_nonce`;
//! 5. plugin token: signed by the broker, unexpired (`unauthenticated`), bound to the
//!    plugin of the packet and of the subject (`wrong_plugin`), and still live in the
//!    broker's Redis record, i.e. not revoked (`unauthenticated`);
//! 6. verification info: user IP parses, device id is well-formed (`bad_request`); where
//!    the token is bound (its claims carry `device_id` / `user_ip`, because the plugin's
//!    route binds them), they equal the token's (`wrong_plugin`, naming the field);
//! 7. data route `<plugin_id>.<operation>`: `unknown_operation`;
//! 8. forward (see `forward`): the plugin server's reply or error; no answer: `unavailable`.
//!
//! Steps 4 and 5 share one Redis round trip (the nonce claim and the token record read are
//! pipelined); the token's signature is checked just before it, from memory.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_protocol::data_sign;
use tessera_protocol::jwt::{self, Reason, Rejection};
use tessera_protocol::signing::token_hash;
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::claims::PluginClaims;
use tessera_schemas::data::{
    DATA_REQUEST, DataRequest, check_shape, check_verification, data_route_key,
};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    // 1. Decoding (the request loop already refused oversized packets).
    let packet: DataRequest = req.decode(DATA_REQUEST)?;
    let subject_plugin = req
        .subject
        .strip_prefix(&state.data_subject_prefix)
        .unwrap_or_default();
    check_shape(&packet)?;

    // 2. Protocol signature. An unknown app and a wrong HMAC get the same answer, so the
    //    reply does not tell a prober which app ids exist.
    let bad_signature = || WireError::new(ErrorCode::BadSignature, "protocol signature is invalid");
    let app = state
        .apps
        .get_or_fetch(&packet.app_id)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "reading the client-apps bucket");
            WireError::new(ErrorCode::Unavailable, "client apps unavailable")
        })?
        .ok_or_else(bad_signature)?;
    let th = token_hash(&packet.plugin_token);
    if !data_sign::verify(&app.secret, &packet, &th) {
        return Err(bad_signature());
    }

    // 3. Timestamp.
    let skew_ms = state.config.skew.as_millis() as u64;
    let now = now_ms();
    if now.abs_diff(packet.timestamp) > skew_ms {
        return Err(WireError::new(
            ErrorCode::StaleTimestamp,
            format!(
                "timestamp {} is more than {} ms from the gateway's clock",
                packet.timestamp, skew_ms
            ),
        ));
    }

    // 4 and 5, one Redis round trip: the token's signature first (memory only), then the
    // nonce claim and the token record together; the nonce's verdict comes first.
    let claims = state
        .tokens
        .verify(&packet.plugin_token, &th, now / 1000)
        .await;
    let token_id = claims.as_ref().ok().map(|c| c.jti.as_str());
    let checked = state
        .replay
        .check(
            &packet.app_id,
            &packet.nonce,
            // Past the last moment any replica accepts this packet (see `nonce_ttl`).
            state.config.nonce_ttl(),
            token_id,
        )
        .await?;
    if !checked.fresh_nonce {
        return Err(WireError::new(
            ErrorCode::ReplayedNonce,
            "nonce was already used within the replay window",
        ));
    }
    let claims = claims?;
    if claims.plugin_id != packet.verification.plugin_id || claims.plugin_id != subject_plugin {
        return Err(Rejection::new(
            Reason::Plugin,
            format!(
                "plugin token is for plugin {}, the packet is for {} on data.{}",
                claims.plugin_id, packet.verification.plugin_id, subject_plugin
            ),
        )
        .into_wire_as(jwt::Verifier::Gateway, ErrorCode::WrongPlugin));
    }
    match checked.record {
        Some(r) if r.token_hash == th => {}
        _ => {
            return Err(crate::token::refuse(
                Reason::Revoked,
                "plugin token is revoked or unknown",
            ));
        }
    }

    // 6. Verification info: well-formed, and equal to what a bound token was issued for.
    let user_ip = check_verification(&packet.verification)?;
    binding_matches(&claims, &packet.verification.device_id, user_ip)?;

    // 7. Route.
    let key = data_route_key(subject_plugin, &packet.operation);
    let route = state
        .routes
        .get_or_fetch(&key)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "reading the data-routes bucket");
            WireError::new(ErrorCode::Unavailable, "data routes unavailable")
        })?
        .ok_or_else(|| {
            WireError::new(
                ErrorCode::UnknownOperation,
                format!("no data route for {key}"),
            )
        })?;

    // 8. Forward.
    crate::forward::forward(&state, &req, packet, &route).await
}

/// A bound token is only good for the device and IP it was issued for. IPs compare as
/// parsed addresses, so textual variants of one address match.
fn binding_matches(
    claims: &PluginClaims,
    device_id: &str,
    user_ip: IpAddr,
) -> Result<(), WireError> {
    if let Some(d) = &claims.device_id
        && d != device_id
    {
        return Err(WireError::new(
            ErrorCode::WrongPlugin,
            "verification.device_id does not match the device the plugin token was issued for",
        ));
    }
    if let Some(ip) = &claims.user_ip
        && ip.parse::<IpAddr>().ok() != Some(user_ip)
    {
        return Err(WireError::new(
            ErrorCode::WrongPlugin,
            "verification.user_ip does not match the IP the plugin token was issued for",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_tokens_match_only_their_device_and_ip() {
        let claims = |device: Option<&str>, ip: Option<&str>| PluginClaims {
            iss: "tessera-broker".into(),
            sub: "acct".into(),
            plugin_id: "weather".into(),
            aud: vec!["ps1".into()],
            jti: "id".into(),
            iat: 1,
            exp: 2,
            device_id: device.map(str::to_owned),
            user_ip: ip.map(str::to_owned),
        };
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let other: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(binding_matches(&claims(None, None), "any", other).is_ok());
        assert!(binding_matches(&claims(Some("a"), None), "a", other).is_ok());
        let err = binding_matches(&claims(Some("a"), None), "b", ip).unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongPlugin);
        assert!(err.message.contains("device_id"));
        // A different spelling of the same address still matches.
        assert!(binding_matches(&claims(None, Some("2001:0db8:0:0::1")), "d", ip).is_ok());
        let err = binding_matches(&claims(Some("a"), Some("2001:db8::1")), "a", other).unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongPlugin);
        assert!(err.message.contains("user_ip"));
    }
}
