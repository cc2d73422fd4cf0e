//! `tessera assets ...` (plugin static assets) and `tessera plugins ...` (plugin keys and
//! sealed data).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tessera_bus_config::Role;
use tessera_sdk::assets::Progress;
use tessera_sdk::sealed::{self, PluginSecretKey};

use crate::connect::connect;
use crate::env::Settings;
use crate::output::print_json;

#[derive(Subcommand)]
pub enum AssetsCmd {
    /// Publish every file under DIR as the next version of PLUGIN_ID's assets (admin).
    /// Files the store already holds are not uploaded again; the broker signs the manifest.
    Publish { plugin_id: String, dir: PathBuf },
    /// Bring the cached HTML/CSS/JS of PLUGIN_ID under DIR up to the latest signed version
    /// (DIR/PLUGIN_ID/files/...), fetching only what changed; every file is verified.
    Fetch { plugin_id: String, dir: PathBuf },
    /// Fetch one file of the latest version (e.g. an image), verified; to --out or stdout.
    Get {
        plugin_id: String,
        path: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the latest signed manifest of PLUGIN_ID (verified with the broker's keys).
    List {
        plugin_id: String,
        /// Print the verified claims as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum PluginsCmd {
    /// Register (or replace) PLUGIN_ID's public key for sealed data (admin).
    Register {
        plugin_id: String,
        /// Base64url of the 32-byte X25519 public key (`tessera plugins keygen` prints one).
        #[arg(long)]
        public_key: String,
    },
    /// Generate a plugin key pair: the private key goes to FILE (mode 0600, never
    /// overwritten), the public key is printed.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Show PLUGIN_ID's registered public key.
    Key { plugin_id: String },
    /// Seal standard input to PLUGIN_ID's registered key; prints the box (base64url of its
    /// MessagePack form).
    Seal { plugin_id: String },
    /// Open a box (base64url, on standard input) sealed to PLUGIN_ID, with its private key.
    Open {
        plugin_id: String,
        #[arg(long)]
        key_file: PathBuf,
    },
}

/// A byte-counting progress bar on stderr (hidden when stderr is not a terminal).
fn bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

fn on_progress(bar: &ProgressBar) -> impl Fn(Progress<'_>) + Send + Sync + '_ {
    move |p| match p {
        Progress::Started { files, bytes } => {
            bar.set_length(bytes);
            bar.set_message(format!("{files} files"));
        }
        Progress::Bytes(n) => bar.inc(n),
        Progress::FileDone(_) => {}
    }
}

pub async fn assets(settings: &Settings, cmd: AssetsCmd) -> anyhow::Result<()> {
    match cmd {
        AssetsCmd::Publish { plugin_id, dir } => {
            let client = connect(settings, Role::Admin).await?;
            let bar = bar();
            let report = client
                .publish_assets(&plugin_id, &dir, &on_progress(&bar))
                .await;
            bar.finish_and_clear();
            let r = report?;
            eprintln!(
                "{plugin_id} version {}: {} files ({} bytes); uploaded {} blobs ({} bytes), {} already stored",
                r.version, r.files, r.bytes, r.stored, r.bytes_stored, r.skipped
            );
            Ok(())
        }
        AssetsCmd::Fetch { plugin_id, dir } => {
            let client = connect(settings, Role::Client).await?;
            let bar = bar();
            let report = client
                .download_bundle(&plugin_id, &dir, &on_progress(&bar))
                .await;
            bar.finish_and_clear();
            let r = report?;
            eprintln!(
                "{plugin_id} version {} in {}: fetched {} files ({} bytes), reused {}, removed {}",
                r.version,
                tessera_sdk::assets::bundle_dir(&dir, &plugin_id).display(),
                r.fetched,
                r.bytes,
                r.reused,
                r.removed
            );
            Ok(())
        }
        AssetsCmd::Get {
            plugin_id,
            path,
            out,
        } => {
            let client = connect(settings, Role::Client).await?;
            let bytes = client.fetch_asset(&plugin_id, &path).await?;
            match out {
                Some(file) => write_new_or_replace(&file, &bytes),
                None => Ok(std::io::stdout().write_all(&bytes)?),
            }
        }
        AssetsCmd::List { plugin_id, json } => {
            let client = connect(settings, Role::Client).await?;
            let m = client.asset_manifest(&plugin_id).await?;
            if json {
                return print_json(&m.claims);
            }
            println!(
                "{plugin_id} version {} signed at {} (unix)",
                m.claims.version, m.claims.iat
            );
            for f in &m.claims.files {
                let kind = if f.is_bundle_file() {
                    "bundle"
                } else {
                    "on-demand"
                };
                println!(
                    "{}\t{}\t{}\t{kind}\t{}",
                    f.path, f.size, f.content_type, f.sha256
                );
            }
            Ok(())
        }
    }
}

fn write_new_or_replace(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(file, bytes).with_context(|| format!("writing {}", file.display()))
}

fn stdin_bytes() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("reading standard input")?;
    Ok(buf)
}

/// Writes a private key file that nobody else can read, refusing to replace one.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn plugins(settings: &Settings, cmd: PluginsCmd) -> anyhow::Result<()> {
    match cmd {
        PluginsCmd::Register {
            plugin_id,
            public_key,
        } => {
            let client = connect(settings, Role::Admin).await?;
            let record = client.register_plugin_key(&plugin_id, &public_key).await?;
            eprintln!("key of {plugin_id} registered");
            print_json(&record)
        }
        PluginsCmd::Keygen { out } => {
            let secret = PluginSecretKey::generate();
            write_private(&out, &format!("{}\n", secret.to_base64url()))?;
            println!("{}", secret.public_key().to_base64url());
            eprintln!(
                "private key written to {}; register the public key above with `tessera plugins register PLUGIN_ID --public-key ...`",
                out.display()
            );
            Ok(())
        }
        PluginsCmd::Key { plugin_id } => print_json(
            &connect(settings, Role::Client)
                .await?
                .plugin_key(&plugin_id)
                .await?,
        ),
        PluginsCmd::Seal { plugin_id } => {
            let plaintext = stdin_bytes()?;
            let client = connect(settings, Role::Client).await?;
            let sealed = client.seal_for_plugin(&plugin_id, &plaintext).await?;
            println!(
                "{}",
                URL_SAFE_NO_PAD.encode(tessera_schemas::codec::encode(&sealed))
            );
            Ok(())
        }
        PluginsCmd::Open {
            plugin_id,
            key_file,
        } => {
            let key = std::fs::read_to_string(&key_file)
                .with_context(|| format!("reading {}", key_file.display()))?;
            let secret = PluginSecretKey::from_base64url(&key)?;
            let text = String::from_utf8(stdin_bytes()?).context("the box is not base64url")?;
            let Ok(bytes) = URL_SAFE_NO_PAD.decode(text.trim()) else {
                bail!("the box is not base64url");
            };
            let plaintext = sealed::open_bytes(&secret, &plugin_id, &bytes)?;
            std::io::stdout().write_all(&plaintext)?;
            Ok(())
        }
    }
}
