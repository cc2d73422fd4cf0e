//! The auth worker: the account server (logins, account tokens, auth results) and the
//! standard authentication interface for third-party apps (auth packages).
//!
//! # Layout
//!
//! - [`config`]: settings from the environment, including external issuers.
//! - `users`: local accounts in a JetStream KV bucket this worker owns; argon2id hashes.
//! - `verify`: `auth.verify`, the auth result for an account token (ours, or a configured
//!   external issuer's).
//! - `login`: `auth.login` (local accounts, or a third-party app's package) and `users.add`.
//! - `limits`: what a flood of logins may take: per connection, per username, at once.
//! - `apps`: third-party app configs and their secrets, watched from KV.
//! - `packages`: authentication packages (Extism), their install, sync, upload and status.
//! - `http`: the one outbound HTTP client (per app for packages, per external issuer for
//!   their keys): allow-list, public addresses only, no redirects, bounded, cached GETs.
//! - the auth callout ([`callout`]): plugin servers' bus
//!   credentials, answered here when `TESSERA_CALLOUT_ISSUER_SEED` is set.
//!
//! Login decisions, accounts added, package uploads and each node's installs and removals
//! are audit events (`tessera_runtime::audit`), queued without delaying any reply.
//!
//! Architecture invariants: passwords are hashed and checked here and nowhere else; no other
//! role can read the users bucket or the app secrets (bus-config permissions). A node joins
//! the `auth.login` queue group only after it has installed every stored package.
//! `auth.verify` is a service of its own with its own bound on work in flight, so no login
//! load can make a token request wait for a login's slot.

#![forbid(unsafe_code)]

mod apps;
pub mod callout;
pub mod config;
mod http;
pub mod limits;
mod login;
mod packages;
mod users;
mod verify;

use std::sync::Arc;

use tessera_bus_config::provision;
use tessera_protocol::bus;
use tessera_runtime::Shutdown;
use tessera_runtime::audit::Auditor;
use tessera_runtime::service::{self, endpoint_with};
use tessera_schemas::Subjects;

pub use config::{AuthConfig, ExternalIssuer};

pub(crate) struct State {
    pub config: AuthConfig,
    pub users: users::Users,
    pub verifier: verify::Verifier,
    pub apps: apps::Apps,
    pub packages: Arc<packages::Packages>,
    pub nats: async_nats::Client,
    /// Login decisions, users added and package uploads go to the audit stream here.
    pub auditor: Auditor,
    pub limits: Arc<limits::LoginLimits>,
}

/// A running auth replica.
pub struct Auth {
    task: tokio::task::JoinHandle<()>,
    verify_task: tokio::task::JoinHandle<()>,
    auditor: Auditor,
    grace: std::time::Duration,
}

impl Auth {
    /// Waits until the node has drained after shutdown, then until the audit events of the
    /// drained requests are stored (bounded by the grace period).
    pub async fn join(self) {
        let _ = self.task.await;
        let _ = self.verify_task.await;
        self.auditor.flush(self.grace).await;
    }
}

/// Connects, provisions its buckets and stores, installs every stored package, then starts
/// serving and announces itself on `auth.nodes.joined`.
pub async fn start(config: AuthConfig, shutdown: Shutdown) -> anyhow::Result<Auth> {
    let subjects: Subjects = config.subjects.clone();
    let nats = bus::connect(&config.nats_url, "tessera-auth", config.connect_wait).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let users_kv = provision::users_bucket(&js, &subjects, config.durability).await?;
    let users = users::Users::new(users_kv, config.hash_concurrency);
    // Client apps and plugin servers connect through the auth callout: answer it as early
    // as possible (their connections wait for it), before the package install below.
    if let Some(seed) = &config.callout_issuer {
        if config.client_password.is_none() {
            tracing::warn!(
                "no {}: this node does not admit client apps",
                tessera_runtime::config::registry::CLIENT_PASSWORD
            );
        }
        let callout = crate::callout::Callout::new(
            &nats,
            subjects.clone(),
            seed,
            config.client_password.clone(),
            config.durability,
        )
        .await?;
        crate::callout::start(nats.clone(), callout, shutdown.clone()).await?;
    } else {
        tracing::info!(
            "no {}: this node does not admit client apps or plugin servers",
            tessera_runtime::config::registry::CALLOUT_ISSUER_SEED
        );
    }
    let verifier = verify::Verifier::new(&config)?;
    let apps = apps::Apps::start(&js, &subjects, config.durability, &shutdown).await?;
    let audit = config.audit;
    provision::audit_stream(
        &js,
        &subjects,
        audit.max_age,
        audit.max_bytes,
        config.durability,
    )
    .await?;
    let auditor = Auditor::start(
        js.clone(),
        subjects.clone(),
        "auth",
        config.node_id.clone(),
        audit.queue,
    );
    let packages = packages::Packages::start(&js, &config, auditor.clone(), &shutdown).await?;
    // Watch the index first: an upload landing during the first pass leaves a wake-up that
    // the sync task (started below) acts on, instead of waiting for the timer.
    packages::sync::spawn_index_watch(packages.clone(), shutdown.clone()).await?;
    // Node join: install every stored package before serving.
    match packages.reconcile().await {
        Ok(n) => tracing::info!(node = %packages.node_id, installed = n, "packages installed"),
        Err(e) => anyhow::bail!("installing the stored packages: {e:#}"),
    }
    packages::sync::spawn_broadcasts(nats.clone(), &subjects, packages.clone(), shutdown.clone())
        .await?;
    packages::sync::spawn_sync(
        packages.clone(),
        config.reconcile_interval,
        shutdown.clone(),
    );
    let limits = Arc::new(limits::LoginLimits::new(config.login_limits));
    tokio::spawn(limits::prune_every(
        limits.clone(),
        std::time::Duration::from_secs(5),
        shutdown.clone(),
    ));
    let state = Arc::new(State {
        limits,
        config,
        users,
        verifier,
        apps,
        packages: packages.clone(),
        nats: nats.clone(),
        auditor: auditor.clone(),
    });

    let spec = service::ServiceSpec {
        name: subjects.service_name("auth"),
        description: "Tessera auth: logins and auth results".into(),
        queue_group: tessera_schemas::subjects::QUEUE_AUTH.into(),
        max_in_flight: state.config.max_in_flight,
        grace: state.config.grace,
        endpoints: vec![
            endpoint_with(&state, "auth-login", subjects.auth_login(), login::login),
            endpoint_with(&state, "users-add", subjects.users_add(), login::users_add),
            endpoint_with(
                &state,
                "packages-upload",
                subjects.auth_packages_upload(),
                packages::upload::handle,
            ),
        ],
    };
    // Readiness (the health server's /readyz): NATS connected.
    tessera_runtime::health::Readiness::global().register_nats(
        "auth/nats",
        &shutdown,
        nats.clone(),
    );
    // `auth.verify` apart: its own micro service, queue group and bound on work in flight,
    // so a flood of logins (each holding a slot for an argon2 hash or a package call) never
    // makes a token request's auth result wait for a slot.
    let verify_spec = service::ServiceSpec {
        name: subjects.service_name("auth-verify"),
        description: "Tessera auth: auth results for account tokens".into(),
        queue_group: tessera_schemas::subjects::QUEUE_AUTH.into(),
        max_in_flight: state.config.max_in_flight,
        grace: state.config.grace,
        endpoints: vec![endpoint_with(
            &state,
            "auth-verify",
            subjects.auth_verify(),
            verify::handle,
        )],
    };
    let verify_task = service::start(nats.clone(), verify_spec, shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let task = service::start(nats.clone(), spec, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    packages::sync::announce_joined(&nats, &subjects, &packages).await?;
    let grace = state.config.grace;
    Ok(Auth {
        task,
        verify_task,
        auditor,
        grace,
    })
}

/// Runs an auth replica until `shutdown`, then drains.
pub async fn run(config: AuthConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    start(config, shutdown).await?.join().await;
    Ok(())
}
