//! Third-party apps: the watched view of the apps bucket (JSON configs) and of the
//! app-secrets bucket (client secrets, readable by the auth role only).
//!
//! A secret is held in a [`Secret`], whose `Debug` prints nothing, so a config or a log line
//! can never carry it by accident. It reaches a package only through the Extism plugin
//! config (see `packages::runtime`), never through the environment.

use std::sync::Arc;

use async_nats::jetstream;
use tessera_bus_config::provision::{self, Durability};
use tessera_runtime::Shutdown;
use tessera_runtime::watched::WatchedKv;
use tessera_schemas::packages::AppConfig;
use tessera_schemas::{ErrorCode, Subjects, WireError};

/// A client secret. Never printed.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Clone)]
pub struct Apps {
    configs: WatchedKv<AppConfig>,
    secrets: WatchedKv<Secret>,
}

impl Apps {
    pub async fn start(
        js: &jetstream::Context,
        subjects: &Subjects,
        durability: Durability,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Apps> {
        let configs_kv = provision::apps_bucket(js, subjects, durability).await?;
        let secrets_kv = provision::app_secrets_bucket(js, subjects, durability).await?;
        let configs = WatchedKv::start(
            configs_kv,
            |b| {
                let app: AppConfig = serde_json::from_slice(b).map_err(|e| e.to_string())?;
                app.validate()?;
                Ok(app)
            },
            shutdown.clone(),
        )
        .await?;
        let secrets = WatchedKv::start(
            secrets_kv,
            |b| {
                String::from_utf8(b.to_vec())
                    .map(Secret)
                    .map_err(|_| "secret is not UTF-8".to_owned())
            },
            shutdown.clone(),
        )
        .await?;
        Ok(Apps { configs, secrets })
    }

    /// The app's config as last seen by the watch (an in-memory read; one direct read when
    /// memory has none, so an app stored a moment ago is found).
    pub async fn get(&self, app_id: &str) -> Result<Option<Arc<AppConfig>>, WireError> {
        if tessera_schemas::ids::check("app_id", app_id).is_err() {
            return Ok(None);
        }
        self.configs.get_or_fetch(app_id).await.map_err(|e| {
            tracing::warn!(error = %e, "apps store failed");
            WireError::new(ErrorCode::Unavailable, "app store unavailable")
        })
    }

    /// The app's client secret (empty when it has none). From memory; one direct read when
    /// memory has none (a secret stored a moment ago).
    pub async fn secret(&self, app: &AppConfig) -> Result<Secret, WireError> {
        let Some(key) = app
            .secret_ref
            .as_deref()
            .and_then(|r| r.strip_prefix("kv:"))
        else {
            return Ok(Secret(String::new()));
        };
        let found = self.secrets.get_or_fetch(key).await.map_err(|e| {
            tracing::warn!(error = %e, "app secrets store failed");
            WireError::new(ErrorCode::Unavailable, "app secrets unavailable")
        })?;
        if found.is_none() {
            tracing::warn!(app = %app.app_id, "the app's secret_ref names no secret");
        }
        Ok(found
            .map(|s| (*s).clone())
            .unwrap_or_else(|| Secret(String::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
