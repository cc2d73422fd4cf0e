//! Helpers for the auth-package tests: the prebuilt packages, app configs, uploads signed
//! with the stack's trusted publisher key, and the node status.

use std::path::PathBuf;
use std::time::Duration;

use tessera_schemas::packages::{AppConfig, NodeStatus, PackageUploadResponse};
use tessera_sdk::operator::packages::sign;

use crate::Stack;

/// A prebuilt package from `auth-packages/dist/` (`http-password`, `oauth2-code`,
/// `misbehave`, `misbehave-2`).
pub fn dist_wasm(file_stem: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../auth-packages/dist")
        .join(format!("{file_stem}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An enabled app on `127.0.0.1:port` over plain HTTP, allowed to reach only 127.0.0.1.
pub fn local_app(app_id: &str, package: &str, port: u16) -> AppConfig {
    AppConfig {
        app_id: app_id.to_owned(),
        domain: "127.0.0.1".into(),
        port,
        scheme: "http".into(),
        client_id: "tessera".into(),
        secret_ref: None,
        package: package.to_owned(),
        package_version: None,
        enabled: true,
        allowed_hosts: vec!["127.0.0.1".into()],
        settings: Default::default(),
        timeout_ms: None,
        max_memory_pages: None,
    }
}

impl Stack {
    /// Signs `wasm` as `name` `version` with the stack's trusted key and uploads it (admin).
    pub async fn upload_package(
        &self,
        wasm: &[u8],
        name: &str,
        version: &str,
    ) -> Result<PackageUploadResponse, tessera_sdk::Error> {
        let manifest = sign(self.publisher(), wasm, name, version)?;
        self.admin().await.upload_package(wasm, &manifest).await
    }

    /// Stores an app config (admin), with its client secret if given.
    pub async fn put_app(&self, app: AppConfig, secret: Option<&str>) {
        let id = app.app_id.clone();
        self.admin()
            .await
            .put_app(app, secret)
            .await
            .unwrap_or_else(|e| panic!("storing app {id}: {e}"));
    }

    /// `auth.nodes.status` from every auth node (waits for `expect` answers, bounded).
    pub async fn nodes(&self, expect: usize) -> Vec<NodeStatus> {
        self.admin()
            .await
            .node_status(
                Some(expect),
                Duration::from_millis(500),
                Duration::from_secs(3),
            )
            .await
            .expect("node status")
    }
}
