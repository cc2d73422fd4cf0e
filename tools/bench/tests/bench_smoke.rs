//! Keeps `tessera-bench` working: a very short run must finish and report figures for every
//! scenario, with the spread of its repetitions and what each window cost. It asserts that
//! it ran, never how fast (speed goals live in the benchmark).

use std::path::Path;
use std::process::Command;

/// The `tessera` binary the processes scenario starts: beside `tessera-bench`, when the
/// workspace's binaries were built (`make build`, `cargo build`); `cargo test -p
/// tessera-bench` alone does not build it.
fn tessera_beside_bench() -> bool {
    Path::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .with_file_name("tessera")
        .exists()
}

#[test]
fn bench_quick_runs_and_reports_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .args([
            "--quick",
            "--warmup",
            "50ms",
            "--measure",
            "300ms",
            "--concurrency",
            "1,4",
            "--repeat",
            "2",
            "--json",
        ])
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running tessera-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tessera-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("issuance"), "no table on stdout:\n{stdout}");

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(
        report["machine"]["load_average_at_start"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(report["settings"]["repeat"], 2);
    let scenarios = report["scenarios"].as_array().unwrap();
    let mut names = vec![
        "issuance",
        "plugin-server auth, in process",
        "plugin-server echo over the bus",
        "data access, gateway -> echo",
        "local login",
        "package login (http-password)",
        "issuance, two broker replicas",
    ];
    let processes = tessera_beside_bench();
    if processes {
        names.push("issuance, workers as processes");
    } else {
        let why = report["settings"]["processes_skipped"].as_str().unwrap();
        assert!(why.contains("tessera"), "{why}");
        eprintln!("the processes scenario was skipped: {why}");
    }
    for name in names {
        let rows: Vec<_> = scenarios.iter().filter(|s| s["name"] == name).collect();
        assert!(!rows.is_empty(), "no rows for {name}");
        for r in rows {
            assert!(
                r["figures"]["ops"].as_u64().unwrap() > 0,
                "{name} measured nothing: {r}"
            );
            // Two repetitions, each measured, and their spread.
            let runs = r["spread"]["runs"].as_array().unwrap();
            assert_eq!(runs.len(), 2, "{name}: {r}");
            assert!(runs.iter().all(|f| f["ops"].as_u64().unwrap() > 0));
            let rate = &r["spread"]["ops_per_sec"];
            let (min, med, max) = (
                rate["min"].as_f64().unwrap(),
                rate["median"].as_f64().unwrap(),
                rate["max"].as_f64().unwrap(),
            );
            assert!(min <= med && med <= max && min > 0.0, "{name}: {rate}");
            if r["floor_ops_per_sec"].is_object() {
                // One ratio per repetition pair.
                assert_eq!(r["ratios"].as_array().unwrap().len(), 2, "{name}: {r}");
                assert!(r["ratio"]["median"].as_f64().unwrap() > 0.0);
            }
        }
    }
    let issuance = scenarios.iter().find(|s| s["name"] == "issuance").unwrap();
    let run = &issuance["figures"];
    assert!(
        run["cpu_per_op"]["total_us"].as_f64().unwrap() > 0.0,
        "{run}"
    );
    assert_eq!(run["cpu_per_op"]["workers_in_process"], true);
    // Every token request crosses nats-server and writes Redis: both counted per token.
    assert!(
        run["nats_per_op"]["in_msgs"].as_f64().unwrap() >= 1.0,
        "{run}"
    );
    assert!(
        run["redis_per_op"]["commands"].as_f64().unwrap() >= 1.0,
        "{run}"
    );
    if processes {
        let row = scenarios
            .iter()
            .find(|s| s["name"] == "issuance, workers as processes" && s["in_flight"] == 4)
            .unwrap();
        let cpu = &row["figures"]["cpu_per_op"];
        assert_eq!(cpu["workers_in_process"], false, "{cpu}");
        for part in ["broker_us", "auth_us", "plugin_servers_us", "served_us"] {
            assert!(cpu[part].is_number(), "{part} missing: {cpu}");
        }
        assert!(cpu["broker_us"].as_f64().unwrap() > 0.0, "{cpu}");
    }

    let floors = &report["floors"];
    assert_eq!(floors["composed_issuance"].as_array().unwrap().len(), 2);
    assert_eq!(
        floors["composed_issuance"][0]["runs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        floors["jetstream_publish_ack"]["ops_per_sec"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}
