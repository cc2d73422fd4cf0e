//! Where every command gets its settings: the process environment first, then an env file
//! (`--env-file`, else `TESSERA_ENV_FILE`, else `.tessera/tessera.env` when it exists, which
//! is what `tessera up` writes by default).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tessera_core::config::{ProcessEnv, Source};

/// Default data directory of `tessera up`, relative to the current directory.
pub const DEFAULT_DATA_DIR: &str = ".tessera";
pub const ENV_FILE_NAME: &str = "tessera.env";

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
            Some(p) => parse(
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
    pub fn require(&self, key: &str) -> anyhow::Result<String> {
        self.get(key).with_context(|| {
            format!("{key} is not set: start a stack with `tessera up` (it writes {DEFAULT_DATA_DIR}/{ENV_FILE_NAME}) or pass --env-file")
        })
    }
}

/// `KEY=VALUE` lines; blank lines and `#` comments ignored; optional surrounding quotes.
pub fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (
                k.trim().trim_start_matches("export ").to_owned(),
                v.to_owned(),
            )
        })
        .collect()
}

/// Writes `KEY=VALUE` lines, readable only by the owner (they hold passwords).
pub fn write(path: &Path, pairs: &[(&str, String)]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = String::from("# Written by `tessera up`; read by every tessera command.\n");
    for (k, v) in pairs {
        text.push_str(&format!("{k}={v}\n"));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_env_lines() {
        let m = super::parse("# c\nA=1\n\nexport B=\"two words\"\nC = x=y\n");
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x=y");
    }
}
