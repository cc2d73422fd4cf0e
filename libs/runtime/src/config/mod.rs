//! Settings from the environment, validated once at start. Every setting is declared once,
//! in [`registry`]; a [`Reader`] reads a process's settings through it and collects every bad
//! one, so a process with three bad settings hears of all three at once, in one
//! [`ConfigError`]. Binaries exit with status 64 (EX_USAGE) on it.
//!
//! Reading never writes: a key file is loaded, never created ([`keys`]), so `tessera
//! check-config` validates without side effects.

pub mod keys;
pub mod registry;
pub mod worker;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use registry::{IfUnset, Process, Setting};
pub use worker::{WorkerSettings, clock_leeway_of, prefix_of};

/// One bad setting and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSetting {
    pub key: String,
    pub reason: String,
}

/// Every bad setting of a read (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<BadSetting>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "{}: {}", one.key, one.reason),
            many => {
                write!(f, "{} bad settings:", many.len())?;
                for p in many {
                    write!(f, "\n  {}: {}", p.key, p.reason)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            problems: vec![BadSetting {
                key: key.into(),
                reason: reason.into(),
            }],
        }
    }

    /// The bad keys, in the order they were read.
    pub fn keys(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.key.as_str()).collect()
    }

    /// One error listing every problem of `errors` once (processes share settings, so the
    /// same bad key shows up in each of their reads); `None` when there is none.
    pub fn merge(errors: impl IntoIterator<Item = ConfigError>) -> Option<ConfigError> {
        let mut problems: Vec<BadSetting> = Vec::new();
        for p in errors.into_iter().flat_map(|e| e.problems) {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        (!problems.is_empty()).then_some(ConfigError { problems })
    }
}

/// A source of settings: the process environment, or a map in tests.
pub trait Source {
    /// The raw value of the variable `key`; only [`Reader`] calls it, with a registry name.
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

/// Settings from literal pairs: what tests and in-process tools hand a config reader instead
/// of the process environment.
pub fn from_pairs(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

/// Reads settings from a [`Source`], collecting every problem instead of stopping at the
/// first. A bad or missing value reads as its default (or empty), so reading goes on;
/// [`Reader::finish`] then fails with all of them, and nothing read is used.
pub struct Reader<'a> {
    src: &'a dyn Source,
    problems: Vec<BadSetting>,
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a dyn Source) -> Self {
        Reader {
            src,
            problems: Vec::new(),
        }
    }

    /// The raw value, when set (and not empty).
    pub fn get(&self, s: &Setting) -> Option<String> {
        self.src.get(s.name)
    }

    /// Records a problem with `s`, unless one is recorded already (one reason per key: a
    /// value that failed to parse is not also out of range).
    pub fn report(&mut self, s: &Setting, reason: impl Into<String>) {
        if !self.problems.iter().any(|p| p.key == s.name) {
            self.problems.push(BadSetting {
                key: s.name.to_owned(),
                reason: reason.into(),
            });
        }
    }

    /// Reports `reason` against `s` when `ok` is false (bounds checks).
    pub fn check(&mut self, s: &Setting, ok: bool, reason: &str) {
        if !ok {
            self.report(s, reason);
        }
    }

    /// A required value; empty (and reported) when unset.
    pub fn required(&mut self, s: &Setting) -> String {
        self.get(s).unwrap_or_else(|| {
            self.report(s, "is required but not set");
            String::new()
        })
    }

    /// The first of `settings` that is set; the report names the first (the preferred one).
    pub fn first_of(&mut self, settings: &[&Setting]) -> String {
        if let Some(v) = settings.iter().find_map(|s| self.get(s)) {
            return v;
        }
        let others: Vec<&str> = settings[1..].iter().map(|s| s.name).collect();
        self.report(
            settings[0],
            format!("is required (or {})", others.join(", ")),
        );
        String::new()
    }

    /// A value parsed by `parse`, `None` when unset or bad (reported).
    pub fn optional<T, E: fmt::Display>(
        &mut self,
        s: &Setting,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let v = self.get(s)?;
        match parse(&v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.report(s, e.to_string());
                None
            }
        }
    }

    /// A value with `FromStr`, its registry default when unset.
    pub fn parsed<T: FromStr>(&mut self, s: &Setting) -> T
    where
        T::Err: fmt::Display,
    {
        let default = s.default_parsed();
        self.parsed_or(s, default)
    }

    /// A value with `FromStr`, `default` when unset (a default computed from other values).
    pub fn parsed_or<T: FromStr>(&mut self, s: &Setting, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        self.optional(s, |v| v.parse::<T>().map_err(|e| format!("{v:?}: {e}")))
            .unwrap_or(default)
    }

    /// A duration (see [`parse_duration`]), its registry default when unset.
    pub fn duration(&mut self, s: &Setting) -> Duration {
        let default = s.default_duration();
        self.duration_or(s, default)
    }

    /// A duration, `default` when unset.
    pub fn duration_or(&mut self, s: &Setting, default: Duration) -> Duration {
        self.optional(s, |v| {
            parse_duration(v)
                .ok_or_else(|| format!("{v:?} is not a duration (e.g. 90s, 15m, 2h, 500ms)"))
        })
        .unwrap_or(default)
    }

    /// `1`/`true` or `0`/`false`; `false` when unset.
    pub fn switch(&mut self, s: &Setting) -> bool {
        self.optional(s, |v| match v {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(format!("{v:?}: expected 1 or 0")),
        })
        .unwrap_or(false)
    }

    /// `Ok` when nothing was reported, else every problem at once.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// Reads with `f` and finishes: for a process that needs one or two settings.
pub fn read<T>(src: &dyn Source, f: impl FnOnce(&mut Reader) -> T) -> Result<T, ConfigError> {
    let mut r = Reader::new(src);
    let value = f(&mut r);
    r.finish().map(|()| value)
}

/// A duration in seconds, or with a unit suffix: `90`, `90s`, `15m`, `2h`, `500ms`.
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

/// The subject prefix (`TESSERA_PREFIX`), validated.
pub fn prefix(src: &dyn Source) -> Result<tessera_schemas::Subjects, ConfigError> {
    read(src, prefix_of)
}

/// The clock leeway every token verifier of this process applies (`TESSERA_CLOCK_LEEWAY`).
pub fn clock_leeway(src: &dyn Source) -> Result<Duration, ConfigError> {
    read(src, clock_leeway_of)
}

#[cfg(test)]
mod tests;
