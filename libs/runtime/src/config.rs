//! Settings from the environment, validated once at start. A bad value is reported with the
//! name of its variable; binaries exit with status 64 (EX_USAGE) on it.

use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// Subject prefix (default `tessera`).
pub const ENV_PREFIX: &str = "TESSERA_PREFIX";
/// Clock leeway of every token verifier (exp, nbf, iat), e.g. `5s` (the default).
pub const ENV_CLOCK_LEEWAY: &str = "TESSERA_CLOCK_LEEWAY";

#[derive(Debug, Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A source of settings: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

pub fn required(src: &dyn Source, key: &str) -> Result<String, ConfigError> {
    src.get(key)
        .ok_or_else(|| ConfigError::new(key, "is required but not set"))
}

pub fn parsed<T: FromStr>(src: &dyn Source, key: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match src.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e| ConfigError::new(key, format!("{v:?}: {e}"))),
    }
}

/// A duration in seconds, or with a unit suffix: `90`, `90s`, `15m`, `2h`, `500ms`.
pub fn duration(src: &dyn Source, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    match src.get(key) {
        None => Ok(default),
        Some(v) => parse_duration(&v).ok_or_else(|| {
            ConfigError::new(
                key,
                format!("{v:?} is not a duration (e.g. 90s, 15m, 2h, 500ms)"),
            )
        }),
    }
}

pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    Some(d)
}

/// The first of `keys` that is set; the error names the first (the preferred one).
pub fn first_of(src: &dyn Source, keys: &[&str]) -> Result<String, ConfigError> {
    keys.iter().find_map(|k| src.get(k)).ok_or_else(|| {
        ConfigError::new(
            keys[0],
            format!("is required (or {})", keys[1..].join(", ")),
        )
    })
}

/// A worker's signing key: loaded from (or created at) the PEM file named by `key`, or a
/// throw-away key, with a warning, when `key` is unset (what it signed dies with the process).
pub fn signing_key(
    src: &dyn Source,
    key: &str,
) -> Result<tessera_protocol::signing::SigningKey, ConfigError> {
    match src.get(key) {
        Some(path) => {
            tessera_protocol::signing::SigningKey::load_or_generate(std::path::Path::new(&path))
                .map_err(|e| ConfigError::new(key, e.to_string()))
        }
        None => {
            tracing::warn!(
                "{key} not set: using a throw-away signing key (what it signs dies with this process)"
            );
            Ok(tessera_protocol::signing::SigningKey::generate())
        }
    }
}

/// The clock leeway every token verifier of this process applies (`TESSERA_CLOCK_LEEWAY`,
/// default [`tessera_protocol::jwt::DEFAULT_LEEWAY`], whole seconds, at most 5 minutes: a larger one
/// would keep expired tokens alive).
pub fn clock_leeway(src: &dyn Source) -> Result<Duration, ConfigError> {
    let d = duration(src, ENV_CLOCK_LEEWAY, tessera_protocol::jwt::DEFAULT_LEEWAY)?;
    if d.subsec_nanos() != 0 || d > Duration::from_secs(300) {
        return Err(ConfigError::new(
            ENV_CLOCK_LEEWAY,
            "must be whole seconds, at most 5m",
        ));
    }
    Ok(d)
}

/// The subject prefix, validated.
pub fn prefix(src: &dyn Source) -> Result<tessera_schemas::Subjects, ConfigError> {
    let p = src
        .get(ENV_PREFIX)
        .unwrap_or_else(|| tessera_schemas::subjects::DEFAULT_PREFIX.to_owned());
    tessera_schemas::ids::check_prefix(&p)
        .map_err(|e| ConfigError::new(ENV_PREFIX, e.to_string()))?;
    Ok(tessera_schemas::Subjects::new(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn first_of_prefers_the_first_and_names_it() {
        let mut env = std::collections::HashMap::new();
        assert_eq!(first_of(&env, &["A", "B"]).unwrap_err().key, "A");
        env.insert("B".to_owned(), "b".to_owned());
        assert_eq!(first_of(&env, &["A", "B"]).unwrap(), "b");
        env.insert("A".to_owned(), "a".to_owned());
        assert_eq!(first_of(&env, &["A", "B"]).unwrap(), "a");
    }

    #[test]
    fn errors_name_the_key() {
        let mut env = std::collections::HashMap::new();
        env.insert("TESSERA_PREFIX".to_owned(), "bad prefix".to_owned());
        let err = prefix(&env).unwrap_err();
        assert_eq!(err.key, "TESSERA_PREFIX");
    }
}
