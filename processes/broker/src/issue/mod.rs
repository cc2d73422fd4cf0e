//! `token.request`: a plugin token for one plugin on behalf of one account, as the named
//! steps of docs/protocol.md §3.4, in their order:
//!
//! 1. [`validate`](validate::validate): shapes, before any round trip;
//! 2. [`authenticate`](authenticate::authenticate): the auth result (nothing happens for an
//!    unauthenticated caller);
//! 3. [`route_and_bind`](mint::route_and_bind): the plugin servers that serve the plugin,
//!    and the device and IP the route binds the token to;
//! 4. [`mint`](mint::mint): claims, expiry and signature, and the ledger record;
//! 5. [`record_distribute_commit`](commit::record_distribute_commit): recorded as pending
//!    (reading any earlier reply to the same idempotency key in the same round trip),
//!    distributed and acked by JetStream, then committed; a failed step withdraws what the
//!    earlier ones did (see `commit`);
//! 6. [`audit`]: the event is queued (never awaited); then the reply.

mod audit;
mod authenticate;
mod commit;
mod mint;
mod validate;

use std::sync::Arc;

use tessera_runtime::service::{Incoming, Reply};
use tessera_schemas::WireError;
use tessera_schemas::messages::TOKEN_REQUEST;

pub(crate) use commit::sweep;
use commit::{Issued, record_distribute_commit};

use crate::State;

pub async fn handle(state: Arc<State>, req: Incoming) -> Result<Reply, WireError> {
    let request = validate::validate(req.decode(TOKEN_REQUEST)?)?;
    let plugin_id = request.plugin_id.as_str();
    let account = authenticate::authenticate(&state, &request.account_token, &req)
        .await
        .inspect_err(|e| audit::refused(&state, &req, plugin_id, None, e))?;
    let minted = async {
        let bound = mint::route_and_bind(&state, &request).await?;
        mint::mint(&state, plugin_id, &account, bound)
    }
    .await
    .inspect_err(|e| audit::refused(&state, &req, plugin_id, Some(&account), e))?;
    let issued = record_distribute_commit(
        &*state,
        &*state,
        minted,
        state.config.token_ttl,
        request.idempotency_key.as_deref(),
    )
    .await?;
    let response = match issued {
        Issued::Fresh(response) => {
            audit::issued(&state, &req, &response);
            response
        }
        Issued::Replayed(response) => response,
    };
    // Counted as handed out, with its acknowledged distributions.
    tessera_runtime::metrics::record_token_issued(response.servers.len());
    Ok(Reply::msgpack(TOKEN_REQUEST, &response))
}
