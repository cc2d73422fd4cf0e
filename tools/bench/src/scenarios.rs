//! The scenario run: every closed-loop figure `repeat` times, each repetition right after
//! the repetition of its floor (floor, scenario, floor, scenario, ...), so that drift on a
//! shared machine hits both alike and the ratio can be taken per pair.
//!
//! The floors run on a stack of their own (the same servers and configuration, no worker),
//! because their trivial responders take the workers' subjects: on the product's stack the
//! two would answer the same requests. The product runs on a second stack with the workers
//! in this process (as `tessera-dev up` runs them), and, unless turned off, on a third with
//! the workers as `tessera` processes (as they are deployed).

use std::sync::Arc;

use bytes::Bytes;
use tessera_bus_config::Role;
use tessera_sdk::{Client, PluginScope, TokenInfo, TokenStore};

use super::data_access::DataAccess;
use super::floors::{self, Env, Floors};
use super::login_package::PackageLogins;
use super::measure::{Figures, Timing, closed_loop, per_call};
use super::probe::Probe;
use super::processes::Deployment;
use super::report::{Memory, Scenario};
use super::spread::Repeated;
use super::{ISSUANCE_PROCESSES, PASSWORD, PLUGIN, SERVERS, connect, issuance};
use tessera_devstack::stack::DevStack;

/// The workers as processes, and what accounts for their stack.
pub struct OnProcesses<'a> {
    pub deployment: &'a Deployment,
    pub probe: Probe,
}

pub struct Plan<'a> {
    pub floor: &'a Env,
    /// The stack with the workers in this process.
    pub product: &'a mut DevStack,
    pub probe: Probe,
    pub processes: Option<OnProcesses<'a>>,
    pub conc: &'a [usize],
    pub timing: Timing,
    pub repeat: usize,
}

/// Every floor and scenario; `step` is called once per finished measurement.
pub async fn run(
    plan: Plan<'_>,
    memory: &mut Memory,
    mut step: impl FnMut(&str),
) -> anyhow::Result<(Floors, Vec<Scenario>)> {
    let Plan {
        floor,
        product,
        probe,
        processes,
        conc,
        timing,
        repeat,
    } = plan;
    let servers: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    let admin = Client::new(
        connect(product, Role::Admin).await?,
        product.subjects.clone(),
    );
    admin.add_user("bench", PASSWORD).await?;
    admin.set_route(PLUGIN, &servers).await?;
    let client = Client::new(
        connect(product, Role::Client).await?,
        product.subjects.clone(),
    );
    let account_token = client.login("bench", PASSWORD).await?.account_token;
    let mut scenarios = Vec::new();

    // 1. Issuance, in process and as processes, each beside the composed floor.
    let mut composed_issuance = Vec::new();
    for &c in conc {
        let (mut fl, mut inproc, mut procs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeat {
            fl.push(floors::composed_issuance(floor, c, timing).await?);
            step("floor: composed issuance");
            inproc.push(issuance(&probe, &client, &account_token, c, timing).await);
            step("issuance");
            if let Some(p) = &processes {
                let d = p.deployment;
                procs.push(issuance(&p.probe, &d.client, &d.account_token, c, timing).await);
                step("issuance, workers as processes");
            }
        }
        let fl = Repeated::new(fl);
        let name = "composed issuance floor";
        scenarios.push(Scenario::paired("issuance", inproc, &fl, name));
        if !procs.is_empty() {
            scenarios.push(Scenario::paired(ISSUANCE_PROCESSES, procs, &fl, name));
        }
        composed_issuance.push(fl);
    }
    if let Some(p) = &processes {
        memory.worker_processes_kib = p
            .deployment
            .processes()
            .iter()
            .map(|w| (w.name.clone(), w.rss_kib()))
            .collect();
    }

    // 2. Plugin-server authentication in process (one call at a time, no floor).
    let token = client
        .request_token(&account_token, PLUGIN, None)
        .await?
        .token;
    let store = TokenStore::default();
    let info = TokenInfo {
        token_id: "t".into(),
        account_id: "a".into(),
        plugin_id: PLUGIN.into(),
        expires_at: u64::MAX,
    };
    store.insert(&token, info);
    let now = tessera_protocol::now_unix();
    let iterations = (timing.window.as_millis() as u64 * 1000).max(100_000);
    let runs = (0..repeat)
        .map(|_| {
            per_call(iterations, || {
                let _ = std::hint::black_box(store.authenticate(
                    std::hint::black_box(&token),
                    &PluginScope::Any,
                    now,
                ));
            })
        })
        .collect();
    scenarios.push(Scenario::alone(
        "plugin-server auth, in process",
        runs,
        "one SHA-256 and one map lookup",
    ));
    step("plugin-server auth in process");

    // 3. Over the bus: plugin-server echo and data access, beside NATS request-reply.
    let data = DataAccess::set_up(&admin, &client, PLUGIN, SERVERS[0], &token).await?;
    let mut nats_request_reply = Vec::new();
    for &c in conc {
        let (mut fl, mut echo, mut access) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeat {
            fl.push(floors::nats_request_reply(floor, c, timing).await?);
            step("floor: NATS request-reply");
            echo.push(echo_run(&probe, &client, &token, c, timing).await);
            step("plugin-server echo");
            access.push(data.run(&probe, c, timing).await);
            step("data access");
        }
        let fl = Repeated::new(fl);
        let name = "NATS request-reply floor";
        scenarios.push(Scenario::paired(
            "plugin-server echo over the bus",
            echo,
            &fl,
            name,
        ));
        scenarios.push(Scenario::paired(
            "data access, gateway -> echo",
            access,
            &fl,
            name,
        ));
        nats_request_reply.push(fl);
    }

    // 4. The servers' own floors.
    let (mut js, mut set) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        js.push(floors::jetstream_publish_ack(floor, timing).await);
        step("floor: JetStream publish");
        set.push(floors::redis_set_px(floor, timing).await);
        step("floor: Redis SET");
    }
    let (eddsa_sign, eddsa_verify) = floors::eddsa(&floor.key, timing.window)?;
    step("floor: EdDSA");

    // 5. Logins (argon2id is deliberately slow: as many in flight as cores), then package
    // logins beside local ones.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let packages = PackageLogins::set_up(product, &admin, &client).await?;
    let (mut argon, mut local, mut package) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        argon.push(floors::argon2id(timing.window));
        step("floor: argon2id");
        local.push(local_logins(&probe, &client, cores, timing).await);
        step("login");
        package.push(packages.run(&probe, 32, timing).await);
        step("package login");
    }
    let argon_rates: Vec<f64> = argon
        .iter()
        .map(|f| cores as f64 * 1e6 / f.p50_us.max(1.0))
        .collect();
    let local_rates: Vec<f64> = local.iter().map(|f| f.ops_per_sec).collect();
    scenarios.push(Scenario::paired_rates(
        "local login",
        local,
        argon_rates,
        "argon2id verify x cores",
    ));
    scenarios.push(Scenario::paired_rates(
        "package login (http-password)",
        package,
        local_rates,
        "local login",
    ));
    drop(packages);

    // 6. Scale-out: two broker replicas at 64 in flight (or the largest level below it),
    // each repetition right after one with a single broker.
    let c = conc
        .iter()
        .copied()
        .filter(|&c| c <= 64)
        .max()
        .unwrap_or(conc[0]);
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        one.push(issuance(&probe, &client, &account_token, c, timing).await);
        product.add_broker().await?;
        two.push(issuance(&probe, &client, &account_token, c, timing).await);
        product.remove_broker().await;
        step("scale-out");
    }
    scenarios.push(Scenario::paired(
        "issuance, two broker replicas",
        two,
        &Repeated::new(one),
        "issuance with one broker (just before)",
    ));

    let floors = Floors {
        nats_request_reply,
        composed_issuance,
        jetstream_publish_ack: Repeated::new(js),
        redis_set_px: Repeated::new(set),
        eddsa_sign,
        eddsa_verify,
        argon2id_verify: Repeated::new(argon),
    };
    Ok((floors, scenarios))
}

/// How many measurements [`run`] reports to `step`.
pub fn steps(conc: usize, repeat: usize, processes: bool) -> u64 {
    let issuance = conc * repeat * (2 + usize::from(processes));
    let bus = conc * repeat * 3;
    (issuance + 1 + bus + repeat * 2 + 1 + repeat * 3 + repeat) as u64
}

async fn echo_run(
    probe: &Probe,
    client: &Client,
    token: &str,
    c: usize,
    timing: Timing,
) -> Figures {
    let (client, token) = (client.clone(), Arc::new(token.to_owned()));
    closed_loop(probe, c, timing, move || {
        let (client, token) = (client.clone(), token.clone());
        async move {
            client
                .call_raw(SERVERS[0], "echo", &token, Bytes::from_static(b"ping"))
                .await
                .map(drop)
        }
    })
    .await
}

async fn local_logins(probe: &Probe, client: &Client, cores: usize, timing: Timing) -> Figures {
    let client = client.clone();
    closed_loop(probe, cores, timing, move || {
        let c = client.clone();
        async move { c.login("bench", PASSWORD).await.map(drop) }
    })
    .await
}
