//! What one package instance costs, the way the auth node uses them (a fresh instance per
//! login, docs/auth-packages.md): making it (`Plugin::new_from_compiled`: a store, a linker
//! with the Extism kernel and our host function), its first call (which instantiates the
//! module), a second call on the same instance (the call alone), and dropping it. The host
//! function answers at once, so no HTTP is in the figures.
//!
//! `cargo run --release -p tessera-auth --example package_instances [-- <package.wasm>]`
//! (default `auth-packages/dist/http-password.wasm`, from the repository root).

use std::time::Instant;

use extism::{Manifest, PTR, Plugin, PluginBuilder, UserData, Wasm, host_fn};

host_fn!(tessera_http_request(_unused: (); _call: Vec<u8>) -> Vec<u8> {
    Ok(br#"{"status":200,"body":"{\"sub\":\"s\",\"name\":\"n\"}"}"#.to_vec())
});

const INSTANCES: usize = 2000;
const ROUNDS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "auth-packages/dist/http-password.wasm".into());
    let manifest = Manifest::new([Wasm::data(std::fs::read(&path)?)])
        .with_timeout(std::time::Duration::from_secs(2))
        .with_memory_max(256)
        .with_config_key("client_secret", "s");
    let compiled = PluginBuilder::new(manifest)
        .with_function(
            "tessera_http_request",
            [PTR],
            [PTR],
            UserData::new(()),
            tessera_http_request,
        )
        .with_wasi(false)
        .with_cache_disabled()
        .compile()?;
    let input = br#"{"interface":1,"now":1,"app":{"app_id":"a","base_url":"http://127.0.0.1:1","client_id":"c","settings":{}},"params":{"username":"u","password":"p"}}"#;
    println!("{path}: microseconds per instance, {INSTANCES} instances per round");
    for round in 1..=ROUNDS {
        let per = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / INSTANCES as f64;
        let t = Instant::now();
        let mut plugins = (0..INSTANCES)
            .map(|_| Plugin::new_from_compiled(&compiled))
            .collect::<Result<Vec<_>, _>>()?;
        let make = per(t);
        let mut call_all = || -> Result<f64, extism::Error> {
            let t = Instant::now();
            for p in plugins.iter_mut() {
                p.call::<&[u8], Vec<u8>>("authenticate", &input[..])?;
            }
            Ok(per(t))
        };
        let (first, second) = (call_all()?, call_all()?);
        let t = Instant::now();
        drop(plugins);
        let dropped = per(t);
        println!(
            "round {round}: make {make:.0}, first call {first:.0}, second call {second:.0}, drop {dropped:.0}; per login (make + first call + drop) {:.0}",
            make + first + dropped
        );
    }
    Ok(())
}
