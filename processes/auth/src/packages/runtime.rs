//! Running packages with Extism: one compiled plugin and one warm pool of instances per app.
//!
//! Compilation (Cranelift) happens once per (app config, package build, secret), off the
//! request path's async workers. **Each login runs in an instance no login used before**:
//! it takes a fresh instance from the warm pool (or makes one), calls `authenticate` on the
//! blocking pool, and drops the instance; a fresh one is made to take its place after the
//! reply is on its way. So nothing a package keeps in memory (statics, Extism vars, its
//! heap) can pass from one user's login to the next, and a misbehaving call (trap,
//! time-out, memory limit) never poisons another.
//!
//! Sandbox: no WASI (no files, no environment, no clock beyond what Extism gives), no
//! Extism host HTTP; outbound HTTP only through our host function (`http.rs`: the app's
//! allow-list by scheme, host and port, no redirects followed, public addresses only, one
//! pooled client per app, bounded response size and time), a time limit per call (Extism's
//! epoch deadline) and a memory limit per instance. The client secret is in the plugin
//! config (`client_secret`), readable by the package only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use extism::convert::Json;
use extism::{CompiledPlugin, Manifest, PTR, Plugin, PluginBuilder, UserData, Wasm};
use serde::{Deserialize, Serialize};
use tessera_schemas::packages::{AppConfig, INTERFACE_VERSION, PackageManifest};
use tessera_schemas::{ErrorCode, WireError};
use tokio::sync::Semaphore;

use crate::apps::Secret;
use crate::http::{Addresses, AllowList, HOST_FUNCTION, HostHttp, HttpCall, HttpResult};

pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_MAX_PAGES: u32 = 256;
/// Largest package accepted or installed.
pub const MAX_PACKAGE_BYTES: usize = 16 << 20;

/// What a package said about a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted {
        subject: String,
        name: Option<String>,
    },
    Denied {
        reason: String,
    },
}

#[derive(Serialize)]
struct Input<'a> {
    interface: u32,
    app: InputApp<'a>,
    params: &'a BTreeMap<String, String>,
    /// Unix seconds: a package has no clock (no WASI), and checking a token's expiry needs one.
    now: u64,
}

#[derive(Serialize)]
struct InputApp<'a> {
    app_id: &'a str,
    base_url: String,
    client_id: &'a str,
    settings: &'a BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// An Extism error in one line for the wire: its root cause (e.g. "HTTP request to ... is
/// not allowed", "timeout", a trap), not wasmtime's backtrace. The full chain goes to the log.
fn short(e: &extism::Error) -> String {
    let text = e.root_cause().to_string();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("failed");
    line.trim().chars().take(300).collect()
}

extism::host_fn!(tessera_http_request(http: Option<Arc<HostHttp>>; call: Vec<u8>) -> Json<HttpResult> {
    // The lock only hands out the app's client; the request runs without it, so an app's
    // concurrent logins do not queue behind each other's HTTP.
    let http = http.get()?.lock().map_err(|_| extism::Error::msg("host HTTP state poisoned"))?.clone();
    let Some(http) = http else {
        return Ok(Json(HttpResult { error: Some("host not allowed: no HTTP while the package is checked".into()), ..Default::default() }));
    };
    Ok(Json(match serde_json::from_slice::<HttpCall>(&call) {
        Ok(call) => http.request(&call),
        Err(e) => HttpResult { error: Some(format!("bad http call: {e}")), ..Default::default() },
    }))
});

/// Compiles `wasm` with no host access and checks the exports the interface requires.
/// Blocking (runs Cranelift).
pub fn check_module(wasm: &[u8]) -> Result<(), String> {
    let manifest = Manifest::new([Wasm::data(wasm.to_vec())])
        .with_timeout(Duration::from_millis(DEFAULT_TIMEOUT_MS))
        .with_memory_max(DEFAULT_MAX_PAGES);
    let mut plugin = PluginBuilder::new(manifest)
        // The host function is there (a module importing it must load) but reaches nothing.
        .with_function(
            HOST_FUNCTION,
            [PTR],
            [PTR],
            UserData::new(None),
            tessera_http_request,
        )
        .with_wasi(false)
        .with_cache_disabled()
        .build()
        .map_err(|e| format!("not a loadable module: {}", short(&e)))?;
    check_exports(&mut plugin)
}

fn check_exports(plugin: &mut Plugin) -> Result<(), String> {
    if !plugin.function_exists("authenticate") {
        return Err("does not export `authenticate`".into());
    }
    if !plugin.function_exists("interface_version") {
        return Err("does not export `interface_version`".into());
    }
    let v: String = plugin
        .call("interface_version", "")
        .map_err(|e| format!("interface_version failed: {}", short(&e)))?;
    if v.trim() != INTERFACE_VERSION.to_string() {
        return Err(format!(
            "implements interface {v:?}, this node speaks {INTERFACE_VERSION}"
        ));
    }
    Ok(())
}

/// One app's compiled package and its warm, never-used instances.
pub struct AppRuntime {
    pub app: Arc<AppConfig>,
    pub package: PackageManifest,
    secret: Secret,
    compiled: CompiledPlugin,
    idle: Mutex<Vec<Plugin>>,
    /// Warm instances kept (and calls at once).
    pool: usize,
    permits: Semaphore,
}

impl AppRuntime {
    /// Compiles the package for this app. Blocking.
    pub fn build(
        app: Arc<AppConfig>,
        secret: Secret,
        package: PackageManifest,
        wasm: &[u8],
        pool: usize,
    ) -> Result<AppRuntime, WireError> {
        let failed = |what: String| {
            WireError::new(
                ErrorCode::PackageFailed,
                format!("app {}: package {}: {what}", app.app_id, package.name),
            )
        };
        let timeout = Duration::from_millis(app.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
        let manifest = Manifest::new([Wasm::data(wasm.to_vec())])
            .with_timeout(timeout)
            .with_memory_max(app.max_memory_pages.unwrap_or(DEFAULT_MAX_PAGES))
            .with_config_key("client_secret", secret.0.clone());
        let allow = AllowList::for_app(&app).map_err(failed)?;
        let http = HostHttp::new(allow, timeout, Addresses::PublicOnly);
        let compiled = PluginBuilder::new(manifest)
            .with_function(
                HOST_FUNCTION,
                [PTR],
                [PTR],
                UserData::new(Some(http)),
                tessera_http_request,
            )
            .with_wasi(false)
            .with_cache_disabled()
            .compile()
            .map_err(|e| failed(format!("does not compile: {}", short(&e))))?;
        // Proves the exports are there; then dropped (it ran `interface_version`, so it is
        // not fresh), and the first warm instance is a new one.
        let mut probe = Plugin::new_from_compiled(&compiled)
            .map_err(|e| failed(format!("does not instantiate: {}", short(&e))))?;
        check_exports(&mut probe).map_err(failed)?;
        drop(probe);
        let first = Plugin::new_from_compiled(&compiled)
            .map_err(|e| failed(format!("does not instantiate: {}", short(&e))))?;
        Ok(AppRuntime {
            app,
            package,
            secret,
            compiled,
            idle: Mutex::new(vec![first]),
            pool: pool.max(1),
            permits: Semaphore::new(pool.max(1)),
        })
    }

    /// Whether this runtime was built from exactly this app config, package and secret.
    pub fn serves(&self, app: &AppConfig, package: &PackageManifest, secret: &Secret) -> bool {
        *self.app == *app && self.package.same_build(package) && self.secret.0 == secret.0
    }

    fn failed(&self, what: impl std::fmt::Display) -> WireError {
        WireError::new(
            ErrorCode::PackageFailed,
            format!(
                "app {}: package {} {} failed: {what}",
                self.app.app_id, self.package.name, self.package.version
            ),
        )
    }

    /// Runs `authenticate` with the user's params. At most `pool` calls at once per app.
    pub async fn authenticate(
        self: &Arc<Self>,
        params: &BTreeMap<String, String>,
    ) -> Result<Verdict, WireError> {
        let input = serde_json::to_vec(&Input {
            interface: INTERFACE_VERSION,
            app: InputApp {
                app_id: &self.app.app_id,
                base_url: self.app.base_url(),
                client_id: &self.app.client_id,
                settings: &self.app.settings,
            },
            params,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
        .map_err(|e| WireError::new(ErrorCode::Internal, e.to_string()))?;
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore is never closed");
        let rt = self.clone();
        let output = tokio::task::spawn_blocking(move || rt.call_blocking(&input))
            .await
            .map_err(|e| self.failed(e))??;
        // Replace the instance this login used up, off its path (the reply does not wait).
        let rt = self.clone();
        tokio::task::spawn_blocking(move || rt.refill());
        self.verdict(&output)
    }

    /// Adds one fresh instance to the warm pool, unless it is full.
    fn refill(&self) {
        if self.idle.lock().expect("lock poisoned").len() >= self.pool {
            return;
        }
        match Plugin::new_from_compiled(&self.compiled) {
            Ok(fresh) => {
                let mut idle = self.idle.lock().expect("lock poisoned");
                if idle.len() < self.pool {
                    idle.push(fresh);
                }
            }
            Err(e) => {
                tracing::warn!(app = %self.app.app_id, error = %short(&e), "making a warm package instance")
            }
        }
    }

    /// One call in a fresh instance, which is dropped after it whatever the outcome: never
    /// returned to the pool.
    fn call_blocking(&self, input: &[u8]) -> Result<Vec<u8>, WireError> {
        let idle = self.idle.lock().expect("lock poisoned").pop();
        let mut plugin = match idle {
            Some(p) => p,
            None => Plugin::new_from_compiled(&self.compiled)
                .map_err(|e| self.failed(format!("instantiating: {}", short(&e))))?,
        };
        plugin
            .call::<&[u8], Vec<u8>>("authenticate", input)
            .map_err(|e| {
                tracing::warn!(app = %self.app.app_id, package = %self.package.name, error = %format!("{e:#}"), "package call failed");
                self.failed(short(&e))
            })
    }

    fn verdict(&self, output: &[u8]) -> Result<Verdict, WireError> {
        let out: Output = serde_json::from_slice(output)
            .map_err(|e| self.failed(format!("undecodable output: {e}")))?;
        if let Some(error) = out.error {
            let error: String = error.chars().take(300).collect();
            return Err(self.failed(error));
        }
        match out.ok {
            Some(true) => match out.subject {
                Some(subject) if !subject.is_empty() && subject.len() <= 256 => {
                    Ok(Verdict::Accepted {
                        subject,
                        name: out.name.map(|n| n.chars().take(256).collect()),
                    })
                }
                _ => Err(self.failed("ok without a subject (1-256 bytes)")),
            },
            Some(false) => Ok(Verdict::Denied {
                reason: out
                    .reason
                    .unwrap_or_else(|| "denied".into())
                    .chars()
                    .take(300)
                    .collect(),
            }),
            None => Err(self.failed("output has neither ok nor error")),
        }
    }
}
