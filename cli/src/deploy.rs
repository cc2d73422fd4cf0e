//! `tessera bus-config render`: the files a Docker Compose or Kubernetes deployment needs
//! from bus-config (see `tessera_bus_config::deploy`):
//!
//! - `OUT/nats.conf`: the nats-server configuration of every cluster member (no secrets:
//!   passwords and server name come from the environment); the committed copies in
//!   `docker/compose` and `docker/k8s/base` are this output.
//! - `SECRETS/*.env`: generated passwords, one env file per role (`nats.env` has them all,
//!   and the auth callout issuer's public key, for nats-server only; `auth.env` the
//!   issuer's seed), kept when they exist so re-rendering never locks workers out. Plugin
//!   servers get theirs from `tessera plugin-servers add ID` on the running cluster;
//! - `SECRETS/broker.pem`, `SECRETS/auth.pem`: the signing keys every replica shares.
//! - `SECRETS/publisher.key`: a package-publisher key for `tessera packages sign --key`; its
//!   public part is in `auth.env`'s `TESSERA_PACKAGE_TRUSTED_KEYS`. Only the operator uses
//!   it: no container mounts it and no Secret is made of it.
//!
//! Never bake SECRETS into an image or commit it: compose reads it with `env_file` and
//! bind mounts, kustomize with a `secretGenerator`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use tessera_bus_config::deploy::{self, Target};
use tessera_bus_config::redis_acl::RedisCredentials;
use tessera_bus_config::{CALLOUT_ISSUER_SEED_ENV, Credentials, Role, password_env};
use tessera_protocol::signing::SigningKey;
use tessera_runtime::config::ProcessEnv;
use tessera_sdk::operator::packages::PublisherKey;

/// The env file of the demo plugin server (its URL, from `plugin-servers add demo --env`).
const PLUGIN_SERVER_ENV_FILE: &str = "plugin-server.env";
/// The deployment's package-publisher key (private, for `tessera packages sign --key`).
const PUBLISHER_KEY_FILE: &str = "publisher.key";

#[derive(Subcommand)]
pub enum BusConfigCmd {
    /// Write the cluster's nats.conf and, unless they exist, generated credentials (one env
    /// file per role) and signing keys.
    Render(RenderArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TargetArg {
    Compose,
    Kubernetes,
}

#[derive(Args)]
pub struct RenderArgs {
    /// Where the deployment runs (decides the cluster members' host names).
    #[arg(long, value_enum)]
    target: TargetArg,
    /// Directory for nats.conf.
    #[arg(long)]
    out: PathBuf,
    /// Directory for the env files and keys (default: OUT/secrets). Keep it out of images
    /// and version control.
    #[arg(long)]
    secrets: Option<PathBuf>,
    /// Where Redis is (`redis://host:port/`, or `rediss://...` for TLS); each worker's URL
    /// gets its own Redis user's credentials.
    #[arg(long, default_value = "redis://redis:6379/")]
    redis_url: String,
    /// Generate new passwords even when SECRETS/nats.env exists.
    #[arg(long)]
    new_credentials: bool,
}

pub fn run(cmd: BusConfigCmd) -> anyhow::Result<()> {
    let BusConfigCmd::Render(args) = cmd;
    let target = match args.target {
        TargetArg::Compose => Target::Compose,
        TargetArg::Kubernetes => Target::Kubernetes,
    };
    let subjects = tessera_runtime::config::prefix(&ProcessEnv)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let conf = args.out.join("nats.conf");
    std::fs::write(&conf, deploy::nats_conf(target, &subjects))
        .with_context(|| format!("writing {}", conf.display()))?;
    println!("wrote {}", conf.display());

    let secrets = args.secrets.unwrap_or_else(|| args.out.join("secrets"));
    create_private_dir(&secrets)?;
    let nats_env = secrets.join("nats.env");
    // Passwords from nats.env, but the client password and the callout issuer's seed from
    // auth.env (nats-server checks neither: the auth callout does; nats.env has only the
    // issuer's public key).
    let read = |name: &str| {
        std::fs::read_to_string(secrets.join(name))
            .ok()
            .map(|text| tessera_runtime::env_file::parse(&text))
    };
    let existing = (!args.new_credentials)
        .then(|| Some((read("nats.env")?, read("auth.env")?)))
        .flatten()
        .and_then(|(nats, auth)| {
            let seed = auth.get(CALLOUT_ISSUER_SEED_ENV)?;
            let from = |r| if r == Role::Client { &auth } else { &nats };
            Credentials::from_passwords(|r| from(r).get(&password_env(r)).cloned(), seed)
        });
    let credentials = match existing {
        Some(c) => {
            println!("kept the credentials in {}", nats_env.display());
            c
        }
        None => Credentials::generate(),
    };
    let redis = (!args.new_credentials)
        .then(|| read("redis.env"))
        .flatten()
        .and_then(|env| RedisCredentials::from_passwords(|u| env.get(&u.password_env()).cloned()))
        .unwrap_or_else(RedisCredentials::generate);
    let trusted = trusted_package_keys(
        &secrets.join(PUBLISHER_KEY_FILE),
        read("auth.env")
            .as_ref()
            .and_then(|auth| auth.get(deploy::PACKAGE_TRUSTED_KEYS_ENV))
            .map(String::as_str),
    )?;
    for file in deploy::env_files(target, &credentials, &redis, &args.redis_url, &trusted) {
        let path = secrets.join(file.name);
        write_env(&path, &file.pairs)?;
        println!("wrote {}", path.display());
    }
    // Plugin servers have credentials of their own, issued by the running cluster
    // (`tessera plugin-servers add ID --env`): leave a placeholder for the demo's, so compose
    // and kustomize find the file, and never overwrite one that was filled in.
    let ps_env = secrets.join(PLUGIN_SERVER_ENV_FILE);
    if !ps_env.exists() {
        let hosts = target
            .client_hosts()
            .iter()
            .map(|h| format!("{h}:{}", deploy::CLIENT_PORT))
            .collect::<Vec<_>>()
            .join(",");
        let text = format!(
            "# The demo plugin server's own bus credentials. Once NATS and the auth workers run:\n\
             #   tessera --env-file <admin env> plugin-servers add demo --hosts {hosts} --env > {}\n",
            ps_env.display()
        );
        std::fs::write(&ps_env, text).with_context(|| format!("writing {}", ps_env.display()))?;
        set_mode(&ps_env, 0o600)?;
        println!(
            "wrote {} (a placeholder: see docker/README.md)",
            ps_env.display()
        );
    }
    // What Redis loads (`--aclfile`): readable by the Redis container's user through the bind
    // mount or Secret volume; the private directory keeps it from other users of this host.
    let acl = secrets.join("redis.acl");
    std::fs::write(&acl, redis.acl_file(subjects.prefix()))
        .with_context(|| format!("writing {}", acl.display()))?;
    set_mode(&acl, 0o644)?;
    println!("wrote {}", acl.display());
    for name in ["broker.pem", "auth.pem"] {
        let path = secrets.join(name);
        let existed = path.exists();
        SigningKey::load_or_generate(&path)?;
        // The workers run as uid 65532 in their containers and read the key through a bind
        // mount (compose) or a Secret volume (Kubernetes): the file must be readable there;
        // the private directory keeps it from other users of this host.
        set_mode(&path, 0o644)?;
        if !existed {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The publisher keys the auth nodes trust: the deployment's own publisher key (made at
/// `key_file` unless it exists, mode 0600), then every other key already listed in
/// auth.env (`listed`), so keys an operator added survive a re-render. Without a trusted
/// key no node would accept an auth package, so third-party logins could not work.
fn trusted_package_keys(key_file: &Path, listed: Option<&str>) -> anyhow::Result<Vec<String>> {
    let listed = listed.unwrap_or_default();
    // A key the nodes would refuse at start is refused here, before the key file is made.
    tessera_auth::config::parse_trusted_keys(listed)
        .map_err(|e| anyhow::anyhow!("auth.env {}: {e}", deploy::PACKAGE_TRUSTED_KEYS_ENV))?;
    let key = match std::fs::read_to_string(key_file) {
        Ok(text) => PublisherKey::from_file_text(&text)
            .with_context(|| format!("reading the publisher key {}", key_file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = PublisherKey::generate();
            crate::packages::write_private(key_file, &key.to_file_text())?;
            println!("wrote {}", key_file.display());
            key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", key_file.display())),
    };
    let mut keys = vec![key.public_key()];
    for k in listed.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if !keys.iter().any(|have| have == k) {
            keys.push(k.to_owned());
        }
    }
    Ok(keys)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(dir, 0o700)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn write_env(path: &Path, pairs: &[(String, String)]) -> anyhow::Result<()> {
    let mut text = String::from(
        "# Written by `tessera bus-config render`. Secret: keep out of images and version control.\n",
    );
    for (k, v) in pairs {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_name_is_the_one_the_auth_worker_reads() {
        assert_eq!(
            deploy::PACKAGE_TRUSTED_KEYS_ENV,
            tessera_runtime::config::registry::PACKAGE_TRUSTED_KEYS.name
        );
    }

    #[test]
    fn the_publisher_key_is_made_once_and_trusted_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(PUBLISHER_KEY_FILE);
        let first = trusted_package_keys(&file, None).unwrap();
        let key = PublisherKey::from_file_text(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(first, vec![key.public_key()]);
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A re-render keeps the key file and the keys an operator added, each once.
        let other = PublisherKey::generate().public_key();
        let listed = format!("{},{other}", key.public_key());
        let again = trusted_package_keys(&file, Some(&listed)).unwrap();
        assert_eq!(again, vec![key.public_key(), other]);
    }

    #[test]
    fn a_bad_listed_key_or_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(PUBLISHER_KEY_FILE);
        let err = trusted_package_keys(&file, Some("not-a-key")).unwrap_err();
        assert!(format!("{err:#}").contains(deploy::PACKAGE_TRUSTED_KEYS_ENV));
        assert!(!file.exists());
        std::fs::write(&file, "garbage\n").unwrap();
        let err = trusted_package_keys(&file, None).unwrap_err();
        assert!(format!("{err:#}").contains("publisher key"));
    }
}
