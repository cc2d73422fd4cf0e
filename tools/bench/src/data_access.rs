//! The data-access scenario: a signed packet -> gateway (signature, timestamp, Redis nonce
//! claim and token record in one round trip, route) -> plugin-server `echo` -> reply, read
//! against the raw NATS request-reply floor of the same run. Every request signs a fresh
//! packet (new nonce, current time), as a client app would.

use std::sync::Arc;

use tessera_sdk::Client;
use tessera_sdk::data::{ClientAppCredentials, DataCall};

use super::measure::{Figures, Timing, closed_loop};
use super::probe::Probe;

/// The operation address the scenario uses (`<plugin>.now` -> `<server>.echo`).
const OPERATION: &str = "now";

/// A registered client app and data route, ready to measure.
pub struct DataAccess {
    client: Client,
    app: Arc<ClientAppCredentials>,
    call: Arc<DataCall>,
}

impl DataAccess {
    /// Registers a client app and a data route, and checks that one request is served.
    pub async fn set_up(
        admin: &Client,
        client: &Client,
        plugin: &str,
        server: &str,
        plugin_token: &str,
    ) -> anyhow::Result<DataAccess> {
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
        Ok(DataAccess {
            client: client.clone(),
            app,
            call,
        })
    }

    pub async fn run(&self, probe: &Probe, c: usize, timing: Timing) -> Figures {
        let (client, app, call) = (self.client.clone(), self.app.clone(), self.call.clone());
        closed_loop(probe, c, timing, move || {
            let (client, app, call) = (client.clone(), app.clone(), call.clone());
            async move { client.data_request(&app, &call).await.map(drop) }
        })
        .await
    }
}
