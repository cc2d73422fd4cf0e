//! The auth worker: the account server of seed 000 and the standard authentication
//! interface of seed 003.
//!
//! # Layout
//!
//! - [`config`]: settings from the environment, including external issuers.
//! - `users`: local accounts in a JetStream KV bucket this worker owns; argon2id hashes.
//! - `verify`: `auth.verify`, the auth result for an account token (ours, or a configured
//!   external issuer's).
//! - `login`: `auth.login` (local accounts; third-party apps later) and `users.add`.
//!
//! Architecture invariant: passwords are hashed and checked here and nowhere else; no other
//! role can read the users bucket (bus-config permissions).

#![forbid(unsafe_code)]

pub mod config;
mod login;
mod users;
mod verify;

use std::sync::Arc;

use tessera_bus_config::provision;
use tessera_core::service::{self, endpoint_with};
use tessera_core::{Shutdown, bus};
use tessera_schemas::Subjects;

pub use config::{AuthConfig, ExternalIssuer};

pub(crate) struct State {
    pub config: AuthConfig,
    pub users: users::Users,
    pub verifier: verify::Verifier,
}

/// A running auth replica.
pub struct Auth {
    task: tokio::task::JoinHandle<()>,
}

impl Auth {
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Connects, provisions the users bucket and starts serving.
pub async fn start(config: AuthConfig, shutdown: Shutdown) -> anyhow::Result<Auth> {
    let subjects: Subjects = config.subjects.clone();
    let nats = bus::connect(&config.nats_url, "tessera-auth", config.connect_wait).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let users_kv = provision::users_bucket(&js, &subjects, config.durability).await?;
    let users = users::Users::new(users_kv, config.hash_concurrency);
    let verifier = verify::Verifier::new(&config)?;
    let state = Arc::new(State {
        config,
        users,
        verifier,
    });

    let spec = service::ServiceSpec {
        name: subjects.service_name("auth"),
        description: "Tessera auth: logins and auth results".into(),
        queue_group: tessera_schemas::subjects::QUEUE_AUTH.into(),
        max_in_flight: state.config.max_in_flight,
        grace: state.config.grace,
        endpoints: vec![
            endpoint_with(&state, "auth-login", subjects.auth_login(), login::login),
            endpoint_with(
                &state,
                "auth-verify",
                subjects.auth_verify(),
                verify::handle,
            ),
            endpoint_with(&state, "users-add", subjects.users_add(), login::users_add),
        ],
    };
    // Readiness (the health server's /readyz): NATS connected.
    tessera_core::health::Readiness::global().register_nats("auth/nats", &shutdown, nats.clone());
    let task = service::start(nats, spec, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Auth { task })
}

/// Runs an auth replica until `shutdown`, then drains.
pub async fn run(config: AuthConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    start(config, shutdown).await?.join().await;
    Ok(())
}
