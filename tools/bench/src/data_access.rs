//! The data-access scenario: a signed packet -> gateway (signature, timestamp, Redis nonce
//! claim and token record in one round trip, route) -> plugin-server `echo` -> reply, read
//! against the raw NATS request-reply floor of the same run. Every request signs a fresh
//! packet (new nonce, current time), as a client app would.

use std::sync::Arc;
use std::time::Duration;

use tessera_sdk::Client;
use tessera_sdk::data::{ClientAppCredentials, DataCall};

use super::measure::{Figures, closed_loop};
use super::report::Scenario;

/// The operation address the scenario uses (`<plugin>.now` -> `<server>.echo`).
const OPERATION: &str = "now";

/// Registers a client app and a data route, then measures at each concurrency.
#[allow(clippy::too_many_arguments)]
pub async fn scenarios(
    admin: &Client,
    client: &Client,
    plugin: &str,
    server: &str,
    plugin_token: &str,
    conc: &[usize],
    floor: &[Figures],
    warmup: Duration,
    window: Duration,
    mut step: impl FnMut(),
) -> anyhow::Result<Vec<Scenario>> {
    let app = Arc::new(admin.add_client_app("bench-app").await?);
    admin
        .set_data_route(plugin, OPERATION, server, "echo")
        .await?;
    let call = Arc::new(
        DataCall::new(
            plugin,
            plugin_token,
            OPERATION,
            "192.0.2.10",
            "bench-device",
        )
        .body(b"ping".to_vec()),
    );
    // One request first: a misconfigured scenario fails loudly instead of measuring errors.
    client.data_request(&app, &call).await?;
    let mut out = Vec::with_capacity(conc.len());
    for (i, &c) in conc.iter().enumerate() {
        let f = run(client, &app, &call, c, warmup, window).await;
        out.push(Scenario::against(
            "data access, gateway -> echo",
            f,
            &floor[i],
            "NATS request-reply floor",
        ));
        step();
    }
    Ok(out)
}

async fn run(
    client: &Client,
    app: &Arc<ClientAppCredentials>,
    call: &Arc<DataCall>,
    c: usize,
    warmup: Duration,
    window: Duration,
) -> Figures {
    let (client, app, call) = (client.clone(), app.clone(), call.clone());
    closed_loop(c, warmup, window, move || {
        let (client, app, call) = (client.clone(), app.clone(), call.clone());
        async move { client.data_request(&app, &call).await.map(drop) }
    })
    .await
}
