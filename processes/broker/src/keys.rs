//! `keys`: every published broker signing key as an RFC 7517 JWKS (JSON), so any stock JWT
//! library can verify plugin tokens. Served from the watched keys bucket: no round trip.
//! Lapsed keys are left out; each key carries `exp`, until when it may be used.

use std::sync::Arc;

use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::{ErrorCode, WireError};

use crate::State;

pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";

pub async fn handle(state: Arc<State>, _req: Incoming) -> Result<Reply, WireError> {
    let now = tessera_protocol::now_unix();
    let keys: Vec<_> = state
        .keys
        .snapshot()
        .into_iter()
        .filter(|(_, key)| key.usable_at(now))
        .map(|(_, key)| key.to_value())
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "keys": keys }))
        .map_err(|e| WireError::new(ErrorCode::Internal, format!("encoding JWKS: {e}")))?;
    Ok(Reply::with_content_type(JWKS_CONTENT_TYPE, body.into()))
}
