//! `distribution.open.<server_id>`: a consumer of one plugin server's distributions, made
//! for it. Plugin servers live in an account of their own and cannot create consumers on
//! the workers' distribution stream: a consumer's config may name any deliver subject, and
//! JetStream would publish the stream's events there under the workers' account. So the
//! broker creates it, with a config of its own choosing (pull, the filter `dist.<id>` of
//! the id in the subject, which the plugin server's credentials alone may publish on, no
//! acks, removed after a short idle time), and answers with its info; the plugin server
//! pulls from it by its random name (docs/protocol.md, "Distribution"). With the
//! distribution in shards, the consumer is on the stream of the server's shard: the plugin
//! server reads the stream name from the answer and never computes a shard.

use std::sync::Arc;
use std::time::Duration;

use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::messages::{DIST_OPEN, DistOpenRequest};
use tessera_schemas::{ErrorCode, WireError, ids};

use crate::State;

/// How long a consumer nobody pulls from is kept. Plugin servers pull continuously and
/// renew a silent consumer every 10 s, so an abandoned one goes soon.
const INACTIVE: Duration = Duration::from_secs(30);

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let server_id = req.subject.rsplit('.').next().unwrap_or_default();
    ids::check("server id", server_id)
        .map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))?;
    let body: DistOpenRequest = req.decode(DIST_OPEN)?;
    let (stream, filter) = state
        .subjects
        .dist_route(server_id, state.config.dist_shards);
    // Random and 128 bits: the name is what lets a plugin server pull, and nobody else
    // learns it (plugin servers cannot list consumers).
    let name = uuid::Uuid::new_v4().simple().to_string();
    let mut config = serde_json::json!({
        "name": name,
        "filter_subject": filter,
        "ack_policy": "none",
        "deliver_policy": "all",
        "inactive_threshold": INACTIVE.as_nanos() as u64,
        "mem_storage": true,
        "num_replicas": 1,
    });
    // A sequence counts in one stream: one the plugin server read before the number of
    // shards changed means nothing in its new stream, so it starts at the first event kept
    // there (what it re-reads is applied again harmlessly: tokens by hash, revocations by id).
    let same_stream = body.stream.is_empty() || body.stream == stream;
    if body.start_seq > 0 && same_stream {
        config["deliver_policy"] = "by_start_sequence".into();
        config["opt_start_seq"] = body.start_seq.into();
    }
    let request = serde_json::json!({ "stream_name": stream, "config": config });
    let subject = format!("$JS.API.CONSUMER.CREATE.{stream}.{name}.{filter}");
    let unavailable =
        |why: String| WireError::new(ErrorCode::Unavailable, format!("opening a consumer: {why}"));
    let answer = state
        .nats
        .request(
            subject,
            serde_json::to_vec(&request).unwrap_or_default().into(),
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    // JetStream answers errors in the body: `{"error": {"code": .., "description": ..}}`.
    let parsed: serde_json::Value =
        serde_json::from_slice(&answer.payload).map_err(|e| unavailable(e.to_string()))?;
    if let Some(err) = parsed.get("error") {
        return Err(unavailable(err.to_string()));
    }
    Ok(Reply::with_content_type(
        JSON_CONTENT_TYPE,
        answer.payload.clone(),
    ))
}

const JSON_CONTENT_TYPE: &str = "application/json";
