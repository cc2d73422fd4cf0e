//! Keeps `tessera-bench` working: a very short run must finish and report figures for every
//! scenario. It asserts that it ran, never how fast (speed goals live in the benchmark).

use std::process::Command;

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
            "400ms",
            "--concurrency",
            "1,4",
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
    let scenarios = report["scenarios"].as_array().unwrap();
    for name in [
        "issuance",
        "plugin-server auth, in process",
        "plugin-server echo over the bus",
        "local login",
        "issuance, two broker replicas",
    ] {
        let rows: Vec<_> = scenarios.iter().filter(|s| s["name"] == name).collect();
        assert!(!rows.is_empty(), "no rows for {name}");
        for r in rows {
            assert!(
                r["figures"]["ops"].as_u64().unwrap() > 0,
                "{name} measured nothing: {r}"
            );
        }
    }
    let floors = &report["floors"];
    assert_eq!(floors["composed_issuance"].as_array().unwrap().len(), 2);
    assert!(floors["jetstream_publish_ack"]["ops"].as_u64().unwrap() > 0);
}
