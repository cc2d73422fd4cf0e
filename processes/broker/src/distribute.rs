//! Publishing distribution events to `dist.<server_id>` on JetStream (in the server's shard:
//! `tessera_schemas::dist_shards`).
//!
//! Each publish carries `Nats-Msg-Id`, so a retried publish is stored once (the stream's
//! de-duplication window), and we wait for every server's ack before answering: a reply
//! means the token is durably on its way to every plugin server it names.

use async_nats::HeaderMap;
use futures::future::try_join_all;
use tessera_schemas::dist_shards::dist_shard;
use tessera_schemas::messages::{DIST_EVENT, DistEvent};
use tessera_schemas::{ErrorCode, WireError, codec, headers};

use crate::State;

/// Publishes `event` to every server in `servers`; `msg_id` makes each publish idempotent.
pub async fn publish(
    state: &State,
    servers: &[String],
    msg_id: &str,
    event: &DistEvent,
) -> Result<(), WireError> {
    let payload: bytes::Bytes = codec::encode(event).into();
    let mut acks = Vec::with_capacity(servers.len());
    for server in servers {
        let mut h = HeaderMap::new();
        h.insert(headers::SCHEMA, DIST_EVENT.header_value().as_str());
        h.insert(headers::MSG_ID, format!("{msg_id}.{server}").as_str());
        // The request's trace goes on to the plugin server's receipt of the event.
        tessera_protocol::trace::inject(&mut h, None);
        let shard = dist_shard(server, state.config.dist_shards);
        let ack = state
            .dist_js
            .publish_with_headers(state.subjects.dist_in(shard, server), h, payload.clone())
            .await
            .map_err(|e| dist_error("publish", e))?;
        acks.push(ack.into_future());
    }
    try_join_all(acks).await.map_err(|e| dist_error("ack", e))?;
    Ok(())
}

fn dist_error(stage: &str, e: impl std::fmt::Display) -> WireError {
    tracing::warn!(stage, error = %e, "distribution failed");
    WireError::new(ErrorCode::Unavailable, "token distribution unavailable")
}
