//! Where every command gets its settings: the process environment first, then an env file
//! (`--env-file`, else `TESSERA_ENV_FILE`, else `.tessera/tessera.env` when it exists, which
//! is what `tessera-dev up` writes by default).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tessera_bus_config::Role;
use tessera_runtime::config::registry::{self, Setting};
use tessera_runtime::config::{ProcessEnv, Source};
use tessera_runtime::env_file::{self, DEFAULT_DATA_DIR, ENV_FILE_NAME};

/// Process environment over an optional env file.
pub struct Settings {
    file: HashMap<String, String>,
    pub file_path: Option<PathBuf>,
}

impl Source for Settings {
    fn get(&self, key: &str) -> Option<String> {
        ProcessEnv.get(key).or_else(|| self.file.get(key).cloned())
    }
}

impl Settings {
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Settings> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let default = Path::new(DEFAULT_DATA_DIR).join(ENV_FILE_NAME);
                default.exists().then_some(default)
            }
        };
        let file = match &path {
            Some(p) => env_file::parse(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("reading env file {}", p.display()))?,
            ),
            None => HashMap::new(),
        };
        Ok(Settings {
            file,
            file_path: path,
        })
    }

    /// A required setting, with a hint at where it usually comes from.
    pub fn require(&self, setting: &Setting) -> anyhow::Result<String> {
        self.get(setting.name).with_context(|| {
            format!("{setting} is not set: start a stack with `tessera-dev up` (it writes {DEFAULT_DATA_DIR}/{ENV_FILE_NAME}) or pass --env-file")
        })
    }
}

/// The setting that carries `role`'s NATS URL (its name is `role.url_env()`, which the
/// bus configuration renders into env files; a test holds the two together).
pub fn url_setting(role: Role) -> &'static Setting {
    match role {
        Role::Client => &registry::NATS_URL,
        Role::Broker => &registry::BROKER_URL,
        Role::Auth => &registry::AUTH_URL,
        Role::Admin => &registry::ADMIN_URL,
        Role::Gateway => &registry::GATEWAY_URL,
    }
}
