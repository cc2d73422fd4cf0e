//! The env file: `KEY=VALUE` lines that `tessera-dev up` writes (passwords included, so
//! owner-only) and every `tessera` command reads after the process environment.

use std::collections::HashMap;
use std::path::Path;

/// Default data directory of `tessera-dev up`, relative to the current directory.
pub const DEFAULT_DATA_DIR: &str = ".tessera";
/// The env file's name inside a data directory.
pub const ENV_FILE_NAME: &str = "tessera.env";

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
pub fn write(path: &Path, pairs: &[(&str, String)]) -> std::io::Result<()> {
    use std::io::Write;
    let mut text = String::from("# Written by `tessera-dev up`; read by every tessera command.\n");
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
        .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
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
