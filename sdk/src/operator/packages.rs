//! Third-party apps and authentication packages, the operator's side: signing and uploading
//! packages, app configs, node status. (Logging in through an app is the app face's:
//! [`Client::login_app`].)
//!
//! ```no_run
//! # async fn demo(admin: tessera_sdk::Client) -> Result<(), tessera_sdk::Error> {
//! use tessera_sdk::operator::packages::{PublisherKey, sign};
//! let key = PublisherKey::generate();
//! let wasm = std::fs::read("http-password.wasm").unwrap();
//! let manifest = sign(&key, &wasm, "http-password", "1.0.0")?;
//! let stored = admin.upload_package(&wasm, &manifest).await?;
//! assert_eq!(stored.version, "1.0.0");
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_nats::jetstream;
use aws_lc_rs::digest;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use tessera_schemas::packages::{
    AppConfig, INTERFACE_VERSION, NodeStatus, PACKAGES_UPLOAD, PackageManifest, PackageRecord,
    PackageUploadRequest, PackageUploadResponse,
};
use tessera_schemas::{codec, ids};

use crate::{Client, Error, ErrorKind};

/// An Ed25519 package-publisher key (PKCS#8).
pub struct PublisherKey {
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
}

impl PublisherKey {
    pub fn generate() -> PublisherKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .expect("system randomness");
        PublisherKey::from_pkcs8(doc.as_ref()).expect("a fresh key parses")
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<PublisherKey, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| Error::context(ErrorKind::InvalidInput, "not an Ed25519 PKCS#8 key", e))?;
        Ok(PublisherKey {
            pkcs8: pkcs8.to_vec(),
            pair,
        })
    }

    /// The key file's text: base64url PKCS#8 on one line.
    pub fn to_file_text(&self) -> String {
        format!("{}\n", URL_SAFE_NO_PAD.encode(&self.pkcs8))
    }

    pub fn from_file_text(text: &str) -> Result<PublisherKey, Error> {
        let der = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|e| Error::context(ErrorKind::InvalidInput, "key file is not base64url", e))?;
        PublisherKey::from_pkcs8(&der)
    }

    /// base64url raw public key: what nodes list in `TESSERA_PACKAGE_TRUSTED_KEYS`.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The signed manifest of a package build.
pub fn sign(
    key: &PublisherKey,
    wasm: &[u8],
    name: &str,
    version: &str,
) -> Result<PackageManifest, Error> {
    let mut m = PackageManifest {
        name: name.to_owned(),
        version: version.to_owned(),
        interface: INTERFACE_VERSION,
        sha256: sha256_hex(wasm),
        publisher_key: key.public_key(),
        signature: String::new(),
    };
    m.validate().map_err(Error::invalid_input)?;
    m.signature = URL_SAFE_NO_PAD.encode(key.pair.sign(&m.signed_bytes()).as_ref());
    Ok(m)
}

impl Client {
    /// Uploads a package through any auth node (admin role): the bytes go to the staging
    /// object store, the manifest in the request; the node verifies, stores and installs.
    pub async fn upload_package(
        &self,
        wasm: &[u8],
        manifest: &PackageManifest,
    ) -> Result<PackageUploadResponse, Error> {
        let subjects = self.subjects();
        let staging = self
            .js()
            .get_object_store(subjects.package_staging_store())
            .await
            .map_err(|e| {
                Error::context(
                    ErrorKind::Unavailable,
                    "staging store (is an auth node running?)",
                    e,
                )
            })?;
        let name = uuid::Uuid::new_v4().simple().to_string();
        staging
            .put(name.as_str(), &mut &wasm[..])
            .await
            .map_err(Error::unavailable)?;
        let req = PackageUploadRequest {
            manifest: manifest.clone(),
            staging: name,
        };
        // Verifying and compiling a package takes longer than an ordinary request.
        let timeout = self.timeout().max(Duration::from_secs(30));
        self.call_with_timeout(
            subjects.auth_packages_upload(),
            PACKAGES_UPLOAD,
            &req,
            timeout,
        )
        .await
    }

    /// The package index (admin role).
    pub async fn packages(&self) -> Result<Vec<PackageRecord>, Error> {
        let kv = self
            .js()
            .get_key_value(self.subjects().package_index_bucket())
            .await
            .map_err(Error::unavailable)?;
        let keys = super::kv_keys(&kv).await?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(b) = kv.get(&k).await.map_err(Error::unavailable)?
                && let Ok(r) = codec::decode::<PackageRecord>(&b)
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        Ok(out)
    }

    async fn apps_kv(&self) -> Result<jetstream::kv::Store, Error> {
        tessera_bus_config::provision::apps_bucket(&self.js(), self.subjects(), self.durability())
            .await
            .map_err(Error::unavailable)
    }

    /// Stores an app config (admin role). A `client_secret` goes to the app-secrets bucket
    /// (key = app id) and the config keeps only `secret_ref: "kv:<app id>"`.
    pub async fn put_app(
        &self,
        mut app: AppConfig,
        client_secret: Option<&str>,
    ) -> Result<(), Error> {
        if let Some(secret) = client_secret {
            let secrets = tessera_bus_config::provision::app_secrets_bucket(
                &self.js(),
                self.subjects(),
                self.durability(),
            )
            .await
            .map_err(Error::unavailable)?;
            ids::check("app_id", &app.app_id)?;
            secrets
                .put(&app.app_id, secret.as_bytes().to_vec().into())
                .await
                .map_err(Error::unavailable)?;
            app.secret_ref = Some(format!("kv:{}", app.app_id));
        }
        app.validate().map_err(Error::invalid_input)?;
        let json =
            serde_json::to_vec(&app).map_err(|e| Error::caused(ErrorKind::InvalidInput, e))?;
        self.apps_kv()
            .await?
            .put(&app.app_id, json.into())
            .await
            .map_err(Error::unavailable)?;
        Ok(())
    }

    /// Every app config (admin role). Secrets are never in them.
    pub async fn apps(&self) -> Result<Vec<AppConfig>, Error> {
        let kv = self.apps_kv().await?;
        let keys = super::kv_keys(&kv).await?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(b) = kv.get(&k).await.map_err(Error::unavailable)?
                && let Ok(app) = serde_json::from_slice::<AppConfig>(&b)
            {
                out.push(app);
            }
        }
        out.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        Ok(out)
    }

    /// Enables or disables an app (admin role); `not_found` if there is none.
    pub async fn set_app_enabled(&self, app_id: &str, enabled: bool) -> Result<(), Error> {
        ids::check("app_id", app_id)?;
        let kv = self.apps_kv().await?;
        let entry = kv.entry(app_id).await.map_err(Error::unavailable)?;
        let Some(entry) = entry.filter(|e| e.operation == jetstream::kv::Operation::Put) else {
            return Err(Error::rejected(tessera_schemas::WireError::new(
                tessera_schemas::ErrorCode::NotFound,
                format!("no app {app_id:?}"),
            )));
        };
        let mut app: AppConfig = serde_json::from_slice(&entry.value).map_err(Error::bad_reply)?;
        app.enabled = enabled;
        let json =
            serde_json::to_vec(&app).map_err(|e| Error::caused(ErrorKind::InvalidInput, e))?;
        // Compare-and-set on the revision read, so a concurrent `put` is not overwritten.
        kv.update(app_id, json.into(), entry.revision)
            .await
            .map_err(Error::unavailable)?;
        Ok(())
    }

    /// Asks every auth node for its status (scatter-gather on `auth.nodes.status`): replies
    /// are collected until `expect` nodes answered, or `quiet` passes without a new one, or
    /// `max_wait` passes.
    pub async fn node_status(
        &self,
        expect: Option<usize>,
        quiet: Duration,
        max_wait: Duration,
    ) -> Result<Vec<NodeStatus>, Error> {
        let nats = self.nats();
        let inbox = nats.new_inbox();
        let mut replies = nats
            .subscribe(inbox.clone())
            .await
            .map_err(Error::unavailable)?;
        nats.publish_with_reply(
            self.subjects().auth_nodes_status(),
            inbox,
            Vec::new().into(),
        )
        .await
        .map_err(Error::unavailable)?;
        nats.flush().await.map_err(Error::unavailable)?;
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut out: Vec<NodeStatus> = Vec::new();
        loop {
            if expect.is_some_and(|n| out.len() >= n) {
                break;
            }
            // Before the first reply, wait up to the deadline; after, only a quiet period.
            let wait = if out.is_empty() {
                deadline
            } else {
                (tokio::time::Instant::now() + quiet).min(deadline)
            };
            match tokio::time::timeout_at(wait, replies.next()).await {
                Ok(Some(msg)) => match codec::decode::<NodeStatus>(&msg.payload) {
                    Ok(s) => out.push(s),
                    Err(e) => return Err(Error::bad_reply(e)),
                },
                Ok(None) | Err(_) => break,
            }
        }
        out.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(out)
    }
}
