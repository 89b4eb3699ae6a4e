//! The official Huawei Cloud Python SDK (`huaweicloudsdkecs`, pinned in
//! tests/sdk/setup-venv.sh) against an in-process ecs-sim: list 2,500 servers page by
//! page, stop 1000 in one call, poll the job to SUCCESS, read SHUTOFF back.
//!
//! Never skipped: a machine without python3, venv or pip fails this test with a
//! message saying what is missing, since a silent skip would hide that the simulator
//! is no longer checked against the real client.

mod sim_support;

use ecs_power_operator::sim::{
    DEFAULT_ACCESS_KEY, DEFAULT_PROJECT_ID, DEFAULT_SECRET_KEY, SimConfig,
};
use std::path::Path;
use std::time::Duration;
use tokio::process::Command;

const SERVERS: usize = 2500;

/// Runs the idempotent setup script; returns the venv's python.
async fn sdk_python(sdk_dir: &Path) -> String {
    let output = Command::new("bash")
        .arg(sdk_dir.join("setup-venv.sh"))
        .output()
        .await
        .expect("bash runs tests/sdk/setup-venv.sh");
    assert!(
        output.status.success(),
        "tests/sdk/setup-venv.sh could not install the official SDK into a virtualenv \
         (needs python3 with the venv module, pip and access to PyPI):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("the setup script prints the venv's python")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_lists_stops_and_polls_against_the_simulator() {
    let sdk_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    let python = sdk_python(&sdk_dir).await;
    let sim = sim_support::start(SimConfig {
        stop_duration: Duration::from_millis(500),
        ..sim_support::config(SERVERS)
    })
    .await;

    let run = Command::new(&python)
        .arg(sdk_dir.join("sdk_roundtrip.py"))
        .env("SIM_ENDPOINT", sim.base_url())
        .env("SIM_AK", DEFAULT_ACCESS_KEY)
        .env("SIM_SK", DEFAULT_SECRET_KEY)
        .env("SIM_PROJECT_ID", DEFAULT_PROJECT_ID)
        .env("SIM_SERVERS", SERVERS.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the SDK script finishes within 2 minutes")
        .expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the official SDK failed against ecs-sim:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("SDK roundtrip OK"), "{stdout}");

    let stats = sim.stats().await;
    assert_eq!(stats.signature_failures, 0, "every SDK signature verified");
    assert_eq!((stats.stop_calls, stats.stop_ids_max), (1, 1000));
    assert_eq!(stats.servers_by_status["SHUTOFF"], 1000);
    sim.shutdown().await;
}
