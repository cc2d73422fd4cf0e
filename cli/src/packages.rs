//! `tessera apps`, `tessera packages`, `tessera nodes` and `tessera login --app`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use tessera_bus_config::Role;
use tessera_schemas::packages::{AppConfig, PackageManifest};
use tessera_sdk::operator::packages::{PublisherKey, sign};

use crate::connect::connect;
use crate::env::Settings;

#[derive(Subcommand)]
pub enum AppsCmd {
    /// Store a third-party app config from a JSON file (inserted or replaced). A
    /// `client_secret` field goes to the app-secrets bucket, never into the config.
    Put { file: PathBuf },
    /// List app configs (never their secrets).
    List,
    /// Let logins through this app use its package.
    Enable { app_id: String },
    /// Logins naming this app fall back to local accounts.
    Disable { app_id: String },
}

#[derive(Subcommand)]
pub enum PackagesCmd {
    /// Make a publisher key: writes the private key (PKCS#8, base64url) to OUT and prints
    /// the public key to list in the nodes' TESSERA_PACKAGE_TRUSTED_KEYS.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a package build; prints the manifest JSON (redirect it to M.json).
    Sign {
        wasm: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// The private key file written by `packages keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Upload a package through any auth node, which verifies, stores and installs it; every
    /// node then installs it.
    Upload {
        wasm: PathBuf,
        #[arg(long)]
        manifest: PathBuf,
    },
    /// List the stored packages (the package index).
    List,
}

/// `tessera apps ...` (admin).
pub async fn apps(settings: &Settings, cmd: AppsCmd) -> anyhow::Result<()> {
    let client = connect(settings, Role::Admin).await?;
    match cmd {
        AppsCmd::Put { file } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
            let mut doc: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{}", file.display()))?;
            let secret = doc
                .as_object_mut()
                .and_then(|o| o.remove("client_secret"))
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s),
                    _ => Err(anyhow::anyhow!("client_secret must be a string")),
                })
                .transpose()?;
            let app: AppConfig = serde_json::from_value(doc)
                .with_context(|| format!("{} is not an app config", file.display()))?;
            let id = app.app_id.clone();
            client.put_app(app, secret.as_deref()).await?;
            println!("app {id} stored");
        }
        AppsCmd::List => {
            let apps = client.apps().await?;
            println!("{}", serde_json::to_string_pretty(&apps)?);
        }
        AppsCmd::Enable { app_id } => {
            client.set_app_enabled(&app_id, true).await?;
            println!("app {app_id} enabled");
        }
        AppsCmd::Disable { app_id } => {
            client.set_app_enabled(&app_id, false).await?;
            println!("app {app_id} disabled");
        }
    }
    Ok(())
}

/// `tessera packages ...`.
pub async fn packages(settings: &Settings, cmd: PackagesCmd) -> anyhow::Result<()> {
    match cmd {
        PackagesCmd::Keygen { out } => {
            if out.exists() {
                bail!("{} exists; not overwriting a key", out.display());
            }
            let key = PublisherKey::generate();
            write_private(&out, &key.to_file_text())?;
            println!("{}", key.public_key());
        }
        PackagesCmd::Sign {
            wasm,
            name,
            version,
            key,
        } => {
            let text =
                std::fs::read_to_string(&key).with_context(|| format!("{}", key.display()))?;
            let key = PublisherKey::from_file_text(&text)?;
            let bytes = std::fs::read(&wasm).with_context(|| format!("{}", wasm.display()))?;
            let manifest = sign(&key, &bytes, &name, &version)?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
        }
        PackagesCmd::Upload { wasm, manifest } => {
            let bytes = std::fs::read(&wasm).with_context(|| format!("{}", wasm.display()))?;
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("{}", manifest.display()))?;
            let m: PackageManifest = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a package manifest", manifest.display()))?;
            let client = connect(settings, Role::Admin).await?;
            let stored = client.upload_package(&bytes, &m).await?;
            println!("{}", serde_json::to_string_pretty(&stored)?);
        }
        PackagesCmd::List => {
            let client = connect(settings, Role::Admin).await?;
            let records = client.packages().await?;
            println!("{}", serde_json::to_string_pretty(&records)?);
        }
    }
    Ok(())
}

/// Creates `path` (never overwriting) readable by its owner only.
#[cfg(unix)]
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("{}", path.display()))
}

/// `tessera nodes`: every auth node and its packages.
pub async fn nodes(settings: &Settings, expect: Option<usize>, json: bool) -> anyhow::Result<()> {
    let client = connect(settings, Role::Admin).await?;
    let nodes = client
        .node_status(expect, Duration::from_millis(300), Duration::from_secs(3))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(());
    }
    if nodes.is_empty() {
        bail!("no auth node answered");
    }
    for n in &nodes {
        let state = if n.in_sync { "in sync" } else { "OUT OF SYNC" };
        println!("{}  {state}", n.node_id);
        for p in &n.packages {
            let m = if p.matches_store {
                "matches store"
            } else {
                "differs from store"
            };
            println!("  {} {} {}  {m}", p.name, p.version, &p.sha256[..12]);
        }
        for name in &n.missing {
            println!("  {name}  not installed");
        }
    }
    Ok(())
}

/// `tessera login --app APP --param k=v ...`.
pub async fn login_app(
    settings: &Settings,
    app_id: &str,
    params: &[String],
) -> anyhow::Result<tessera_schemas::messages::LoginResponse> {
    let mut map = BTreeMap::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?}: use KEY=VALUE");
        };
        map.insert(k.to_owned(), v.to_owned());
    }
    let client = connect(settings, Role::Client).await?;
    Ok(client.login_app(app_id, map).await?)
}
