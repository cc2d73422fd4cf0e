//! Logins through an auth package: `http-password` (Extism, warm instance pool) against the
//! stub identity provider on loopback HTTP, beside local (argon2id) logins.
//!
//! What a login costs here: the bus round trip, the consistency check (in memory plus one
//! `stat`), a fresh Wasm instance and one call on the blocking pool, one HTTP request from
//! inside the sandbox to the stub (through the node's host function: one pooled keep-alive
//! client per app), and signing the account token.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_devstack::idp::StubIdp;
use tessera_schemas::packages::AppConfig;
use tessera_sdk::Client;
use tessera_sdk::operator::packages::sign;

use super::measure::{Figures, Timing, closed_loop};
use super::probe::Probe;
use tessera_devstack::stack::DevStack;

/// The shipped package, built into the binary so the bench needs no checkout.
const HTTP_PASSWORD: &[u8] = include_bytes!("../../../auth-packages/dist/http-password.wasm");
const SECRET: &str = "bench-client-secret";

/// The package uploaded, an app using it and a stub identity provider to log in against.
pub struct PackageLogins {
    client: Client,
    params: BTreeMap<String, String>,
    /// Serves the logins; stops when dropped.
    _idp: StubIdp,
}

impl PackageLogins {
    pub async fn set_up(
        stack: &DevStack,
        admin: &Client,
        client: &Client,
    ) -> anyhow::Result<PackageLogins> {
        let idp = StubIdp::start("tessera", SECRET).await?;
        idp.add_user("bench", "bench-password", "bench-sub", "Bench");
        let manifest = sign(
            &stack.publisher_key()?,
            HTTP_PASSWORD,
            "http-password",
            "1.0.0",
        )?;
        admin.upload_package(HTTP_PASSWORD, &manifest).await?;
        let app = AppConfig {
            app_id: "bench-idp".into(),
            domain: "127.0.0.1".into(),
            port: idp.port(),
            scheme: "http".into(),
            client_id: "tessera".into(),
            secret_ref: None,
            package: "http-password".into(),
            package_version: None,
            enabled: true,
            allowed_hosts: vec!["127.0.0.1".into()],
            settings: BTreeMap::new(),
            timeout_ms: None,
            max_memory_pages: None,
        };
        admin.put_app(app, Some(SECRET)).await?;
        let params: BTreeMap<String, String> =
            [("username", "bench"), ("password", "bench-password")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        // The first login compiles the package for the app; keep it out of the window. The
        // upload reaches the node asynchronously: retried, bounded.
        let mut ready = false;
        for _ in 0..50 {
            if client.login_app("bench-idp", params.clone()).await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(ready, "package logins did not start working");
        Ok(PackageLogins {
            client: client.clone(),
            params,
            _idp: idp,
        })
    }

    pub async fn run(&self, probe: &Probe, in_flight: usize, timing: Timing) -> Figures {
        let (client, params) = (self.client.clone(), self.params.clone());
        closed_loop(probe, in_flight, timing, move || {
            let (c, p) = (client.clone(), params.clone());
            async move { c.login_app("bench-idp", p).await.map(drop) }
        })
        .await
    }
}
