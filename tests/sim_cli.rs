//! The `ecs-sim` binary as scripts use it: one `listening on http://ADDR` line on
//! stdout, the secret key from the environment and never in its output.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn binary_prints_its_address_and_serves_with_the_secret_from_the_environment() {
    let secret = "cli-test-secret-never-printed";
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--project-id",
            "0123456789abcdef0123456789abcdef",
            "--access-key",
            "AKCLI",
            "--servers",
            "42",
            "--seed",
            "9",
            "--accept-then-fail-rate",
            "0.02",
            "--accept-then-drop-rate",
            "0.01",
            "--job-init-ms",
            "1000",
        ])
        .env("ECS_SIM_SECRET_KEY", secret)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ecs-sim starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim()
        .to_owned();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stats, faults, unsigned) = runtime.block_on(async {
        let get = |path: &str| {
            let url = format!("{base}/_sim/{path}");
            async move {
                reqwest::get(url)
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap()
            }
        };
        let (stats, faults) = (get("stats").await, get("faults").await);
        let unsigned = reqwest::get(format!(
            "{base}/v1/0123456789abcdef0123456789abcdef/cloudservers/detail"
        ))
        .await
        .unwrap()
        .status();
        (stats, faults, unsigned)
    });
    assert_eq!(stats["servers"], 42);
    assert_eq!(
        (
            &faults["accept_then_fail_rate"],
            &faults["accept_then_drop_rate"],
            &faults["job_init_ms"]
        ),
        (&0.02.into(), &0.01.into(), &1000.into())
    );
    assert_eq!(unsigned.as_u16(), 401);

    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.is_empty(), "only one line on stdout, then {rest:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ecs-sim listening"), "{stderr}");
    assert!(!stderr.contains(secret) && !line.contains(secret));
}
