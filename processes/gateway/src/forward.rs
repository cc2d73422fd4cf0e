//! Forwarding a checked packet to its plugin-server operation and relaying the answer.

use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use tessera_protocol::rpc::{self, RpcError};
use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::data::{DataRequest, DataRoute};
use tessera_schemas::{ErrorCode, WireError, headers};

use crate::State;

/// Sends the packet's body to `svc.<server_id>.<server_operation>` with the plugin token as
/// a bearer credential, bounded by the forward timeout. Returns the plugin server's body
/// and content headers, or its typed error as is; no answer is `unavailable`.
pub async fn forward(
    state: &Arc<State>,
    req: &Incoming,
    packet: DataRequest,
    route: &DataRoute,
) -> Result<Reply, WireError> {
    let mut h = HeaderMap::new();
    h.insert(
        headers::AUTHORIZATION,
        format!("{}{}", headers::BEARER_PREFIX, packet.plugin_token).as_str(),
    );
    h.insert(headers::REQUEST_ID, req.request_id.as_str());
    if let Some(tp) = req.header(headers::TRACEPARENT) {
        h.insert(headers::TRACEPARENT, tp);
    }
    if !packet.query.is_empty() {
        h.insert(headers::DATA_QUERY, packet.query.as_str());
    }
    h.insert(headers::DATA_APP_ID, packet.app_id.as_str());
    h.insert(headers::DATA_USER_IP, packet.verification.user_ip.as_str());
    h.insert(
        headers::DATA_DEVICE_ID,
        packet.verification.device_id.as_str(),
    );
    let subject = state
        .subjects
        .svc(&route.server_id, &route.server_operation);
    let msg = rpc::request_raw(
        &state.nats,
        subject,
        h,
        Bytes::from(packet.body),
        state.config.forward_timeout,
    )
    .await
    .map_err(|e| match e {
        RpcError::Wire(w) => w,
        other => {
            tracing::info!(error = %other, server = %route.server_id, "forward failed");
            WireError::new(
                ErrorCode::Unavailable,
                format!("plugin server {} did not answer", route.server_id),
            )
        }
    })?;
    // Relay the content headers (schema, content type); ours (request id) are added by the
    // request loop.
    let mut out = HeaderMap::new();
    if let Some(reply_headers) = &msg.headers {
        for name in [headers::SCHEMA, headers::CONTENT_TYPE] {
            if let Some(v) = reply_headers.get(name) {
                out.insert(name, v.as_str());
            }
        }
    }
    Ok(Reply {
        headers: out,
        payload: msg.payload,
    })
}
