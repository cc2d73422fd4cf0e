//! Test fixture `misbehave`: a package that breaks the rules on request, so the node's limits
//! (time-out, memory, allowed hosts), its hot swap and the isolation of one login from the
//! next can be tested (docs/auth-packages.md). Not for production apps.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::sync::Mutex;

use auth_package_kit::{self as kit, Outcome};
use extism_pdk::{FnResult, plugin_fn};

/// The build's version, baked in at compile time (build.sh builds "1" and "2") so a test can
/// tell which build answered after a swap.
const PKG_VERSION: &str = match option_env!("PKG_VERSION") {
    Some(v) => v,
    None => "1",
};

/// The interface version this package speaks; the node checks it on load.
#[plugin_fn]
pub fn interface_version() -> FnResult<String> {
    Ok(kit::INTERFACE.to_string())
}

/// What an earlier call left in this instance's memory ("remember" mode): a node that reuses
/// instances across logins would hand it to the next user's login.
static REMEMBERED: Mutex<Option<String>> = Mutex::new(None);

#[plugin_fn]
pub fn authenticate(input: Vec<u8>) -> FnResult<String> {
    Ok(run(&input).unwrap_or_else(|o| o).to_json())
}

fn run(raw: &[u8]) -> Result<Outcome, Outcome> {
    let input = kit::parse_input(raw)?;
    match input.param("mode")? {
        "loop" => spin(),
        "alloc" => exhaust_memory(),
        "host" => {
            let url = input.param("url")?;
            Ok(match kit::send(&kit::Request::new(url), None) {
                Err(refused) => refused,
                Ok(resp) => Outcome::error(format!(
                    "request to {url} was allowed (status {})",
                    resp.status_code()
                )),
            })
        }
        "ok" => Ok(Outcome::Ok {
            subject: input.param("subject")?.to_owned(),
            name: None,
        }),
        // Keeps `params.secret` in memory and answers with what an earlier call kept.
        "remember" => {
            let secret = input.param("secret")?.to_owned();
            let earlier = REMEMBERED
                .lock()
                .map(|mut kept| kept.replace(secret))
                .unwrap_or(None);
            Ok(Outcome::denied(match earlier {
                Some(s) => format!("an earlier login left {s}"),
                None => "nothing from an earlier login".to_owned(),
            }))
        }
        "version" => Ok(Outcome::Ok {
            subject: PKG_VERSION.to_owned(),
            name: None,
        }),
        other => Ok(Outcome::error(format!("unknown mode {other}"))),
    }
}

/// Spins until the node's time-out interrupts it.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Touches 1 MiB after 1 MiB until memory.max_pages is reached; the failed allocation aborts,
/// which is a trap.
fn exhaust_memory() -> ! {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(black_box(vec![0xA5u8; 1 << 20]));
    }
}
