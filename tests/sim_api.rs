//! ecs-sim over real HTTP on loopback, signed as the SDK signs: every refusal path,
//! a full 1000-server stop, partial failure, pagination and the admin surface.

mod sim_support;

use ecs_power_operator::ecs::sign::Signer;
use ecs_power_operator::sim::{FaultsPatch, ServerErrorMode, SimConfig, SimStats, Status};
use secrecy::SecretString;
use serde_json::{Value, json};
use sim_support::{Client, admin_post, config, start};
use std::time::Duration;

fn ids_body(action: &str, ids: &[String]) -> Value {
    let servers: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    json!({action: {"servers": servers}})
}

#[tokio::test]
async fn bad_signature_skewed_date_and_wrong_key_are_401_gateway_bodies() {
    let sim = start(config(3)).await;
    let client = Client::new(&sim);

    let mut tampered = client.request("GET", "cloudservers/detail");
    tampered.signer = Signer::new(
        ecs_power_operator::sim::DEFAULT_ACCESS_KEY,
        SecretString::from("not-the-secret"),
    );
    let mut skewed = client.request("GET", "cloudservers/detail");
    skewed.date = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(16);
    let mut unknown_key = client.request("GET", "cloudservers/detail");
    unknown_key.signer = Signer::new("AKUNKNOWN", SecretString::from("x"));

    for request in [tampered, skewed, unknown_key] {
        let reply = client.send(request).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.code(), "APIGW.0301");
        assert_eq!(
            reply.body["request_id"].as_str(),
            reply.request_id.as_deref(),
            "gateway bodies repeat X-Request-Id"
        );
    }

    // 14 minutes of skew is inside the tolerance.
    let mut tolerated = client.request("GET", "cloudservers/detail");
    tolerated.date = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(14);
    assert_eq!(client.send(tolerated).await.status, 200);

    // A header added after signing is fine; one changed after signing is not.
    let mut resent = client.request("GET", "cloudservers/detail");
    resent.headers.push(("User-Agent".into(), "signed".into()));
    assert_eq!(client.send(resent).await.status, 200);

    let unsigned = reqwest::get(format!(
        "{}/v1/{}/cloudservers/detail",
        sim.base_url(),
        client.project
    ))
    .await
    .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    assert!(unsigned.headers().contains_key("x-request-id"));

    assert_eq!(sim.stats().await.signature_failures, 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn token_is_accepted_only_when_configured_and_equal() {
    let sim = start(SimConfig {
        token: Some(SecretString::from("tok-123")),
        ..config(2)
    })
    .await;
    let url = format!(
        "{}/v1/{}/cloudservers/detail",
        sim.base_url(),
        ecs_power_operator::sim::DEFAULT_PROJECT_ID
    );
    let http = reqwest::Client::new();
    let with = |token: &str| http.get(&url).header("X-Auth-Token", token).send();
    assert_eq!(with("tok-123").await.unwrap().status().as_u16(), 200);
    assert_eq!(with("tok-124").await.unwrap().status().as_u16(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn another_project_is_refused_with_ecs_0023() {
    let sim = start(config(2)).await;
    let mut client = Client::new(&sim);
    client.project = "fedcba9876543210fedcba9876543210".into();
    let reply = client.get("cloudservers/detail", &[]).await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0023"));
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_batch_actions_are_400_and_start_nothing() {
    let sim = start(config(1001)).await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();

    let reply = client.stop(&ids).await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0118"));

    let twice = vec![ids[0].clone(), ids[1].clone(), ids[0].clone()];
    let reply = client.stop(&twice).await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0005"));

    let reply = client.stop(&[]).await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0005"));

    let reply = client.stop(&["not-a-uuid".to_owned()]).await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0005"));

    let mut empty = client.request("POST", "cloudservers/action");
    empty.body = Vec::new();
    let reply = client.send(empty).await;
    assert_eq!((reply.status, reply.code()), (400, "Common.0002"));

    for body in [
        json!({"os-stop": {"servers": [{"id": ids[0]}]}, "os-start": {"servers": [{"id": ids[1]}]}}),
        json!({"os-stop": {"type": "GENTLE", "servers": [{"id": ids[0]}]}}),
        json!({"reboot": {"servers": [{"id": ids[0]}]}}),
        json!({"os-pause": {"servers": [{"id": ids[0]}]}}),
    ] {
        let reply = client.post("cloudservers/action", &body).await;
        assert_eq!((reply.status, reply.code()), (400, "Ecs.0005"), "{body}");
    }

    let stats = sim.stats().await;
    assert_eq!(stats.jobs, 0);
    assert_eq!(stats.stop_ids_max, 1001, "rejected calls still count");
    assert_eq!(stats.servers_by_status["ACTIVE"], 1001);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_job_and_unknown_server() {
    let sim = start(config(1)).await;
    let client = Client::new(&sim);
    let reply = client
        .get("jobs/ff808082889bd9690189061140c235fe", &[])
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "Common.0011"),
        "{}",
        reply.body
    );
    let reply = client
        .get("cloudservers/616fb98f-46ca-475e-917e-2563e5a8cd19", &[])
        .await;
    assert_eq!((reply.status, reply.code()), (404, "Ecs.0114"));
    let reply = client.get("no/such/api", &[]).await;
    assert_eq!((reply.status, reply.code()), (404, "APIGW.0101"));
    sim.shutdown().await;
}

#[tokio::test]
async fn stop_of_1000_runs_to_success_and_reads_back_shutoff() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_millis(300),
        ..config(1000)
    })
    .await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    let reply = client.stop(&ids).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let job_id = reply.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(job_id.len(), 32);

    let running = client.get(&format!("jobs/{job_id}"), &[]).await.body;
    assert_eq!(running["status"], "RUNNING");
    assert!(running["end_time"].is_null());
    let server = client
        .get(&format!("cloudservers/{}", ids[7]), &[])
        .await
        .body;
    assert_eq!(server["server"]["status"], "ACTIVE");
    assert_eq!(server["server"]["OS-EXT-STS:task_state"], "powering-off");

    let job = client.wait_job(&job_id, Duration::from_secs(10)).await;
    assert_eq!(job["status"], "SUCCESS");
    assert_eq!(job["entities"]["sub_jobs_total"], 1000);
    let subs = job["entities"]["sub_jobs"].as_array().unwrap();
    assert!(subs.iter().all(|s| s["status"] == "SUCCESS"));
    let covered: std::collections::BTreeSet<&str> = subs
        .iter()
        .map(|s| s["entities"]["server_id"].as_str().unwrap())
        .collect();
    assert_eq!(covered.len(), 1000);

    let server = &client
        .get(&format!("cloudservers/{}", ids[7]), &[])
        .await
        .body["server"];
    assert_eq!(server["status"], "SHUTOFF");
    assert_eq!(server["OS-EXT-STS:vm_state"], "stopped");
    assert_eq!(server["OS-EXT-STS:power_state"], 4);
    assert!(server["OS-EXT-STS:task_state"].is_null());

    let stats: SimStats = sim.stats().await;
    assert_eq!((stats.stop_calls, stats.stop_ids_max), (1, 1000));
    assert_eq!(stats.servers_by_status["SHUTOFF"], 1000);
    assert_eq!(stats.requests_with("batch_action", 200), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn partial_failure_ends_fail_with_per_sub_job_codes() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_millis(50),
        ..config(4)
    })
    .await;
    let client = Client::new(&sim);
    let control = sim.control();
    let ids = sim.server_ids();
    control.set_status(&ids[1], Status::Shutoff).unwrap();
    control.set_locked(&ids[2], true).unwrap();
    let unknown = "616fb98f-46ca-475e-917e-2563e5a8cd19".to_owned();
    let batch = vec![
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        unknown.clone(),
    ];

    let reply = client.stop(&batch).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let job = client
        .wait_job(
            reply.body["job_id"].as_str().unwrap(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(job["status"], "FAIL");
    let code_of = |id: &str| {
        let sub = job["entities"]["sub_jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["entities"]["server_id"] == id)
            .unwrap()
            .clone();
        if sub["status"] == "FAIL" {
            assert!(sub["fail_reason"].is_string());
            assert!(sub["entities"]["errorcode_message"].is_string());
        }
        (
            sub["status"].as_str().unwrap().to_owned(),
            sub["error_code"].clone(),
        )
    };
    assert_eq!(code_of(&ids[0]), ("SUCCESS".into(), Value::Null));
    assert_eq!(code_of(&ids[1]), ("FAIL".into(), json!("Ecs.0100")));
    assert_eq!(code_of(&ids[2]), ("FAIL".into(), json!("Ecs.0605")));
    assert_eq!(code_of(&unknown), ("FAIL".into(), json!("Ecs.0114")));

    // A second stop while the first still runs meets a busy server.
    control.set_status(&ids[0], Status::Active).unwrap();
    control.set_faults(FaultsPatch {
        subjob_failure_rate: Some(1.0),
        ..FaultsPatch::default()
    });
    let first = client.stop(&ids[..1]).await;
    let second = client.stop(&ids[..1]).await;
    let second = client
        .wait_job(
            second.body["job_id"].as_str().unwrap(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(second["entities"]["sub_jobs"][0]["error_code"], "Ecs.0603");
    let first = client
        .wait_job(
            first.body["job_id"].as_str().unwrap(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(first["entities"]["sub_jobs"][0]["error_code"], "Ecs.0002");
    let server = client
        .get(&format!("cloudservers/{}", ids[0]), &[])
        .await
        .body;
    assert_eq!(
        server["server"]["status"], "ACTIVE",
        "a failed stop leaves it running"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reject_mode_refuses_synchronously() {
    let sim = start(SimConfig {
        server_errors: ServerErrorMode::Reject,
        ..config(2)
    })
    .await;
    let client = Client::new(&sim);
    let mut batch = sim.server_ids();
    batch.push("616fb98f-46ca-475e-917e-2563e5a8cd19".into());
    let reply = client.stop(&batch).await;
    assert_eq!((reply.status, reply.code()), (404, "Ecs.0114"));
    assert_eq!(sim.stats().await.jobs, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn start_and_reboot_run_the_reverse_transitions() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_millis(100),
        ..config(2)
    })
    .await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    sim.control().set_status(&ids[0], Status::Shutoff).unwrap();

    let start = client
        .post("cloudservers/action", &ids_body("os-start", &ids[..1]))
        .await;
    let server = client
        .get(&format!("cloudservers/{}", ids[0]), &[])
        .await
        .body;
    assert_eq!(server["server"]["status"], "SHUTOFF");
    assert_eq!(server["server"]["OS-EXT-STS:task_state"], "powering-on");
    let reboot = client
        .post(
            "cloudservers/action",
            &json!({"reboot": {"type": "HARD", "servers": [{"id": ids[1]}]}}),
        )
        .await;
    let server = client
        .get(&format!("cloudservers/{}", ids[1]), &[])
        .await
        .body;
    assert_eq!(server["server"]["status"], "HARD_REBOOT");

    for reply in [start, reboot] {
        let job = client
            .wait_job(
                reply.body["job_id"].as_str().unwrap(),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(job["status"], "SUCCESS");
    }
    for id in &ids {
        let server = client.get(&format!("cloudservers/{id}"), &[]).await.body;
        assert_eq!(server["server"]["status"], "ACTIVE");
        assert_eq!(server["server"]["OS-EXT-STS:power_state"], 1);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn budget_refuses_what_would_exceed_the_window() {
    let sim = start(SimConfig {
        servers_per_window: 10,
        budget_window: Duration::from_millis(500),
        ..config(20)
    })
    .await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    assert_eq!(client.stop(&ids[..8]).await.status, 200);
    let reply = client.stop(&ids[8..11]).await;
    assert_eq!((reply.status, reply.code()), (429, "Common.1503"));
    let untouched = client
        .get(&format!("cloudservers/{}", ids[8]), &[])
        .await
        .body;
    assert!(
        untouched["server"]["OS-EXT-STS:task_state"].is_null(),
        "nothing of the refused call started"
    );
    assert_eq!(sim.stats().await.jobs, 1);
    assert_eq!(client.stop(&ids[8..10]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(
        client.stop(&ids[10..20]).await.status,
        200,
        "the window slid"
    );
    let stats = sim.stats().await;
    assert_eq!((stats.budget_refusals, stats.responses_429), (1, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn request_rate_over_throttle_is_429_apigw_0308() {
    let sim = start(SimConfig {
        throttle_rps: Some(5.0),
        ..config(1)
    })
    .await;
    let client = Client::new(&sim);
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(client.get("cloudservers/detail", &[]).await);
    }
    let throttled: Vec<_> = codes.iter().filter(|r| r.status == 429).collect();
    assert!(throttled.len() >= 2, "{codes:?}");
    assert_eq!(throttled[0].code(), "APIGW.0308");
    assert_eq!(sim.stats().await.rate_limited, throttled.len() as u64);

    sim.control().set_faults(FaultsPatch {
        throttle_rps: Some(0.0),
        ..FaultsPatch::default()
    });
    assert_eq!(client.get("cloudservers/detail", &[]).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn error_rate_answers_500_common_0001() {
    let sim = start(SimConfig {
        error_rate: 1.0,
        ..config(1)
    })
    .await;
    let client = Client::new(&sim);
    let reply = client.stop(&sim.server_ids()).await;
    assert_eq!((reply.status, reply.code()), (500, "Common.0001"));
    let stats = sim.stats().await;
    assert_eq!((stats.injected_errors, stats.jobs), (1, 0));
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(200),
        ..config(1)
    })
    .await;
    let client = Client::new(&sim);
    let started = std::time::Instant::now();
    assert_eq!(client.get("cloudservers/detail", &[]).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    sim.shutdown().await;
}

#[tokio::test]
async fn listing_pages_by_page_number_with_filters() {
    let sim = start(config(2500)).await;
    let client = Client::new(&sim);
    let mut seen = Vec::new();
    for (page, expected) in [("1", 1000), ("2", 1000), ("3", 500), ("4", 0)] {
        let reply = client
            .get(
                "cloudservers/detail",
                &[("offset", page), ("limit", "1000")],
            )
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body["count"], 2500);
        let servers = reply.body["servers"].as_array().unwrap();
        assert_eq!(servers.len(), expected, "page {page}");
        seen.extend(servers.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, sim.server_ids());

    let first = client
        .get("cloudservers/detail", &[("offset", "0")])
        .await
        .body;
    assert_eq!(
        first["servers"].as_array().unwrap().len(),
        25,
        "default limit 25"
    );
    assert_eq!(
        first["servers"][0]["id"],
        seen[0].as_str(),
        "offset 0 is page 1"
    );

    let reply = client
        .get("cloudservers/detail", &[("limit", "1001")])
        .await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0005"));
    let reply = client
        .get("cloudservers/detail", &[("status", "STOPPED")])
        .await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0005"));

    let control = sim.control();
    for id in &seen[..30] {
        control.set_status(id, Status::Shutoff).unwrap();
    }
    let shutoff = client
        .get(
            "cloudservers/detail",
            &[("status", "SHUTOFF"), ("limit", "20"), ("offset", "2")],
        )
        .await
        .body;
    assert_eq!(shutoff["count"], 30);
    assert_eq!(shutoff["servers"].as_array().unwrap().len(), 10);
    assert_eq!(shutoff["servers"][0]["id"], seen[20].as_str());
    let named = client
        .get(
            "cloudservers/detail",
            &[("name", "-0240"), ("limit", "1000")],
        )
        .await
        .body;
    assert_eq!(named["count"], 10, "<env>-<team>-02400..02409");
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_over_http() {
    let sim = start(config(2)).await;
    let client = Client::new(&sim);
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/_sim/{path}", sim.base_url());
    let id = sim.server_ids()[0].clone();

    let added: Value = http
        .post(admin("servers"))
        .json(&json!({"count": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["ids"].as_array().unwrap().len(), 3);
    assert_eq!(sim.server_ids().len(), 5);

    let set = http
        .post(admin(&format!("servers/{id}/status")))
        .json(&json!({"status": "SHUTOFF"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 204);
    assert!(set.headers().contains_key("x-request-id"));
    let server = client.get(&format!("cloudservers/{id}"), &[]).await.body;
    assert_eq!(server["server"]["status"], "SHUTOFF");

    let lock = http
        .post(admin(&format!("servers/{id}/lock")))
        .json(&json!({"locked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(lock.status().as_u16(), 204);
    let server = client.get(&format!("cloudservers/{id}"), &[]).await.body;
    assert_eq!(server["server"]["locked"], true);

    let unknown = http
        .post(admin("servers/616fb98f-46ca-475e-917e-2563e5a8cd19/lock"))
        .json(&json!({"locked": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let transient = http
        .post(admin(&format!("servers/{id}/status")))
        .json(&json!({"status": "REBOOT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(transient.status().as_u16(), 400);

    let faults: Value = http
        .post(admin("faults"))
        .json(&json!({"error_rate": 1.0, "latency_ms": 5}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        faults,
        json!({"throttle_rps": null, "subjob_failure_rate": 0.0, "error_rate": 1.0, "latency_ms": 5,
               "accept_then_fail_rate": 0.0, "accept_then_drop_rate": 0.0, "job_init_ms": 0,
               "answer_delay_ms": 0})
    );
    assert_eq!(client.get("cloudservers/detail", &[]).await.status, 500);

    let stats: SimStats = http
        .get(admin("stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.servers, 5);
    assert_eq!(stats.servers_by_status["SHUTOFF"], 1);
    assert_eq!(stats.requests_with("show_server", 200), 2);
    assert_eq!(stats.requests_with("list_servers", 500), 1);
    sim.shutdown().await;
}

/// Polls `cloudservers/{id}` until its status is `status` (at most `limit`).
async fn wait_status(client: &Client, id: &str, status: &str, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let server = client.get(&format!("cloudservers/{id}"), &[]).await.body;
        if server["server"]["status"] == status {
            return server["server"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} still {} after {limit:?}",
            server["server"]["status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn accept_then_fail_answers_a_gateway_504_and_the_servers_stop_all_the_same() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_millis(100),
        ..config(3)
    })
    .await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    let faults: Value = admin_post(&sim, "faults", &json!({"accept_then_fail_rate": 1.0}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(faults["accept_then_fail_rate"], 1.0);

    let reply = client.stop(&ids[..2]).await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert_eq!(reply.code(), "APIG.0201");
    assert!(
        reply.body.get("error").is_none() && reply.body.get("job_id").is_none(),
        "a gateway body, no ECS code saying it was not done, no job id: {}",
        reply.body
    );
    assert_eq!(
        reply.body["request_id"].as_str(),
        reply.request_id.as_deref()
    );
    for id in &ids[..2] {
        let server = wait_status(&client, id, "SHUTOFF", Duration::from_secs(5)).await;
        assert_eq!(server["OS-EXT-STS:power_state"], 4);
    }
    let stats = sim.stats().await;
    assert_eq!(stats.jobs, 1, "the job was created");
    assert_eq!(stats.requests_with("batch_action", 504), 1);
    assert_eq!(
        (
            stats.accepted_then_failed,
            stats.stop_ids_accepted,
            stats.stop_ids_total
        ),
        (1, 2, 2)
    );

    sim.control().set_faults(FaultsPatch {
        accept_then_fail_rate: Some(0.0),
        ..FaultsPatch::default()
    });
    let reply = client.stop(&ids[2..]).await;
    assert_eq!(
        reply.status, 200,
        "switched off at run time: {}",
        reply.body
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn accept_then_drop_resets_the_connection_and_the_servers_stop_all_the_same() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_millis(100),
        accept_then_drop_rate: 1.0,
        ..config(3)
    })
    .await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();

    let mut request = client.request("POST", "cloudservers/action");
    request.body = serde_json::to_vec(&ids_body("os-stop", &ids[..1])).unwrap();
    let received = client.send_raw(request).await;
    match received {
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
        Ok(bytes) => panic!(
            "expected a reset before any answer, got {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
    wait_status(&client, &ids[0], "SHUTOFF", Duration::from_secs(5)).await;

    // An ordinary keep-alive client sees a failed request, not an answer.
    let mut request = client.request("POST", "cloudservers/action");
    request.body = serde_json::to_vec(&ids_body("os-stop", &ids[1..2])).unwrap();
    let outcome = reqwest::Client::new()
        .execute(client.prepare(request))
        .await;
    let error = outcome.expect_err("no answer after a reset");
    assert!(!error.is_timeout(), "{error:?}");
    wait_status(&client, &ids[1], "SHUTOFF", Duration::from_secs(5)).await;

    let stats = sim.stats().await;
    assert_eq!(stats.jobs, 2);
    assert_eq!(
        (stats.accepted_then_dropped, stats.stop_ids_accepted),
        (2, 2)
    );
    assert_eq!(
        stats.requests.get("batch_action"),
        None,
        "no status was sent for a dropped answer"
    );

    sim.control().set_faults(FaultsPatch {
        accept_then_drop_rate: Some(0.0),
        ..FaultsPatch::default()
    });
    assert_eq!(client.stop(&ids[2..]).await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_new_job_stays_init_without_sub_jobs_and_its_servers_untouched_then_runs() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_millis(300),
        job_init: Duration::from_millis(500),
        ..config(3)
    })
    .await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    let reply = client.stop(&ids[..2]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let job_id = reply.body["job_id"].as_str().unwrap().to_owned();

    let job = client.get(&format!("jobs/{job_id}"), &[]).await.body;
    assert_eq!(job["status"], "INIT");
    assert_eq!(job["entities"], json!({}), "no sub-jobs while INIT: {job}");
    assert!(job["begin_time"].is_string() && job["end_time"].is_null());
    let listed = client
        .get("cloudservers/detail", &[("limit", "1000")])
        .await
        .body;
    for server in listed["servers"].as_array().unwrap() {
        assert_eq!(server["status"], "ACTIVE");
        assert!(server["OS-EXT-STS:task_state"].is_null(), "{server}");
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let running = loop {
        let job = client.get(&format!("jobs/{job_id}"), &[]).await.body;
        if job["status"] != "INIT" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "still INIT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(running["status"], "RUNNING", "{running}");
    assert_eq!(running["entities"]["sub_jobs_total"], 2);
    let server = client
        .get(&format!("cloudservers/{}", ids[0]), &[])
        .await
        .body;
    assert_eq!(server["server"]["OS-EXT-STS:task_state"], "powering-off");
    let done = client.wait_job(&job_id, Duration::from_secs(5)).await;
    assert_eq!(done["status"], "SUCCESS");
    assert!(
        done["entities"]["sub_jobs"][0]["begin_time"].as_str() >= done["begin_time"].as_str(),
        "sub-jobs begin when INIT ends: {done}"
    );

    sim.control().set_faults(FaultsPatch {
        job_init_ms: Some(0),
        ..FaultsPatch::default()
    });
    let reply = client.stop(&ids[2..]).await;
    let job_id = reply.body["job_id"].as_str().unwrap();
    let job = client.get(&format!("jobs/{job_id}"), &[]).await.body;
    assert_eq!(job["status"], "RUNNING", "INIT switched off at run time");

    // A slow way back: the job exists before its answer leaves the gateway.
    sim.control().set_faults(FaultsPatch {
        answer_delay_ms: Some(400),
        ..FaultsPatch::default()
    });
    let accepted_before = sim.stats().await.stop_ids_accepted;
    let stop = client.stop(&ids[..1]);
    tokio::pin!(stop);
    let early = tokio::time::timeout(Duration::from_millis(200), &mut stop).await;
    assert!(early.is_err(), "answered before the delay");
    assert_eq!(
        sim.stats().await.stop_ids_accepted,
        accepted_before + 1,
        "accepted while the answer is still on its way"
    );
    assert_eq!(stop.await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn stop_counters_tell_accepted_and_redundant_ids_from_refused_ones() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_secs(30),
        servers_per_window: 6,
        ..config(8)
    })
    .await;
    let client = Client::new(&sim);
    let control = sim.control();
    let ids = sim.server_ids();
    control.set_status(&ids[0], Status::Shutoff).unwrap();
    let unknown = "616fb98f-46ca-475e-917e-2563e5a8cd19".to_owned();

    // SHUTOFF already: redundant; ACTIVE and unknown: not.
    let first = [ids[0].clone(), ids[1].clone(), unknown];
    assert_eq!(client.stop(&first).await.status, 200);
    // Powering off already: redundant.
    assert_eq!(client.stop(&ids[1..2]).await.status, 200);
    // Over the budget: asked for, not accepted.
    let refused = client.stop(&ids[3..6]).await;
    assert_eq!((refused.status, refused.code()), (429, "Common.1503"));
    // Named by a stop job still INIT: redundant although the server looks untouched.
    control.set_faults(FaultsPatch {
        job_init_ms: Some(30_000),
        ..FaultsPatch::default()
    });
    assert_eq!(client.stop(&ids[6..7]).await.status, 200);
    assert_eq!(client.stop(&ids[6..7]).await.status, 200);

    let stats = sim.stats().await;
    assert_eq!(stats.stop_calls, 5);
    assert_eq!(
        stats.stop_ids_total,
        3 + 1 + 3 + 1 + 1,
        "every id asked for"
    );
    assert_eq!(stats.stop_ids_accepted, 3 + 1 + 1 + 1);
    assert_eq!(stats.stop_ids_redundant, 3);
    assert_eq!(stats.budget_refusals, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stop_resent_after_a_lost_answer_is_told_apart_from_a_plain_duplicate() {
    let sim = start(SimConfig {
        job_init: Duration::from_secs(30),
        accept_then_fail_rate: 1.0,
        ..config(3)
    })
    .await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    // Answered 504 while its job stays INIT: the servers look untouched.
    assert_eq!(client.stop(&ids[..2]).await.status, 504);
    sim.control().set_faults(FaultsPatch {
        accept_then_fail_rate: Some(0.0),
        ..FaultsPatch::default()
    });
    // Re-sent after the lost answer: redundant, and counted as such.
    assert_eq!(client.stop(&ids[..1]).await.status, 200);
    // A plain duplicate: the job it repeats was answered.
    assert_eq!(client.stop(&ids[2..3]).await.status, 200);
    assert_eq!(client.stop(&ids[2..3]).await.status, 200);
    // Named by the answered job too now: a plain duplicate, not a re-send.
    assert_eq!(client.stop(&ids[..1]).await.status, 200);

    let stats = sim.stats().await;
    assert_eq!(stats.stop_ids_redundant, 3);
    assert_eq!(stats.stop_ids_resent_after_lost, 1);
    sim.shutdown().await;
}

/// The status an `os-start` of `ids` is answered with.
async fn start_status(client: &Client, ids: &[String]) -> u16 {
    client
        .post("cloudservers/action", &ids_body("os-start", ids))
        .await
        .status
}

#[tokio::test]
async fn start_counters_tell_redundant_starts_and_those_resent_after_a_lost_answer() {
    let sim = start(SimConfig {
        stop_duration: Duration::from_secs(30),
        ..config(4)
    })
    .await;
    let client = Client::new(&sim);
    let control = sim.control();
    let ids = sim.server_ids();
    for id in &ids[1..] {
        control.set_status(id, Status::Shutoff).unwrap();
    }

    // ACTIVE already: redundant; SHUTOFF: not.
    assert_eq!(start_status(&client, &ids[0..2]).await, 200);
    // Powering on already: redundant.
    assert_eq!(start_status(&client, &ids[1..2]).await, 200);
    // Named by a start job still INIT: redundant although the server looks untouched.
    control.set_faults(FaultsPatch {
        job_init_ms: Some(30_000),
        ..FaultsPatch::default()
    });
    assert_eq!(start_status(&client, &ids[2..3]).await, 200);
    assert_eq!(start_status(&client, &ids[2..3]).await, 200);
    // Answered 504 while its job stays INIT: re-sending it is allowed, and told apart.
    control.set_faults(FaultsPatch {
        accept_then_fail_rate: Some(1.0),
        ..FaultsPatch::default()
    });
    assert_eq!(start_status(&client, &ids[3..4]).await, 504);
    control.set_faults(FaultsPatch {
        accept_then_fail_rate: Some(0.0),
        ..FaultsPatch::default()
    });
    assert_eq!(start_status(&client, &ids[3..4]).await, 200);

    let stats = sim.stats().await;
    assert_eq!(stats.start_calls, 6);
    assert_eq!(stats.start_ids_total, 2 + 1 + 1 + 1 + 1 + 1);
    assert_eq!(stats.start_ids_max, 2);
    assert_eq!(stats.start_ids_accepted, 7);
    assert_eq!(stats.start_ids_redundant, 1 + 1 + 1 + 1);
    assert_eq!(stats.start_ids_resent_after_lost, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn jobs_and_server_status_are_listed_by_the_admin_surface() {
    let sim = start(config(3)).await;
    let client = Client::new(&sim);
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/_sim/{path}", sim.base_url());
    let ids = sim.server_ids();
    let before = jiff::Timestamp::now().as_millisecond();
    assert_eq!(client.stop(&ids[..2]).await.status, 200);

    let listed: Value = http
        .get(admin("jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["job_type"], "batchStopServers");
    assert_eq!(jobs[0]["servers"], 2);
    let begin = jobs[0]["begin_ms"].as_i64().unwrap();
    assert!(begin >= before && begin <= jiff::Timestamp::now().as_millisecond());
    assert_eq!(
        sim.control().jobs()[0].job_id,
        jobs[0]["job_id"].as_str().unwrap()
    );

    let status: Value = http
        .get(admin(&format!("servers/{}/status", ids[2])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "ACTIVE");
    assert_eq!(sim.control().status(&ids[2]).unwrap(), Status::Active);
    let unknown = http
        .get(admin("servers/616fb98f-46ca-475e-917e-2563e5a8cd19/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    sim.shutdown().await;
}

/// Every server of a listing (limit 1000, pages by number) as JSON.
async fn list_all(client: &Client, filters: &[(&str, &str)]) -> (u64, Vec<Value>) {
    let mut servers = Vec::new();
    for page in 1.. {
        let page = page.to_string();
        let mut query = vec![("limit", "1000"), ("offset", page.as_str())];
        query.extend_from_slice(filters);
        let reply = client.get("cloudservers/detail", &query).await;
        assert_eq!(reply.status, 200, "{filters:?}: {}", reply.body);
        let batch = reply.body["servers"].as_array().unwrap().clone();
        let count = reply.body["count"].as_u64().unwrap();
        let done = batch.len() < 1000;
        servers.extend(batch);
        if done {
            return (count, servers);
        }
    }
    unreachable!()
}

fn tags_of(server: &Value) -> Vec<&str> {
    server["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("tags are an array: {server}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

fn ids_of(servers: &[Value]) -> Vec<&str> {
    servers.iter().map(|s| s["id"].as_str().unwrap()).collect()
}

/// The fields of the server object in otc-ecs-show-server.rst, Table 3.
const DOCUMENTED_SERVER_FIELDS: &[&str] = &[
    "status",
    "updated",
    "hostId",
    "OS-EXT-SRV-ATTR:host",
    "addresses",
    "key_name",
    "image",
    "OS-EXT-STS:task_state",
    "OS-EXT-STS:vm_state",
    "OS-EXT-SRV-ATTR:instance_name",
    "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "flavor",
    "id",
    "security_groups",
    "OS-EXT-AZ:availability_zone",
    "user_id",
    "name",
    "created",
    "tenant_id",
    "OS-DCF:diskConfig",
    "accessIPv4",
    "accessIPv6",
    "fault",
    "progress",
    "OS-EXT-STS:power_state",
    "config_drive",
    "metadata",
    "OS-SRV-USG:launched_at",
    "OS-SRV-USG:terminated_at",
    "os-extended-volumes:volumes_attached",
    "description",
    "host_status",
    "OS-EXT-SRV-ATTR:hostname",
    "OS-EXT-SRV-ATTR:reservation_id",
    "OS-EXT-SRV-ATTR:launch_index",
    "OS-EXT-SRV-ATTR:kernel_id",
    "OS-EXT-SRV-ATTR:ramdisk_id",
    "OS-EXT-SRV-ATTR:root_device_name",
    "OS-EXT-SRV-ATTR:user_data",
    "locked",
    "tags",
    "os:scheduler_hints",
    "sys_tags",
    "security_options",
];

#[tokio::test]
async fn a_server_carries_every_documented_field_with_objects_where_the_cloud_sends_objects() {
    let sim = start(config(3)).await;
    let client = Client::new(&sim);
    let id = sim.server_ids()[1].clone();
    let server = client.get(&format!("cloudservers/{id}"), &[]).await.body["server"].clone();
    let fields = server.as_object().unwrap();
    for field in DOCUMENTED_SERVER_FIELDS {
        assert!(fields.contains_key(*field), "{field} missing: {server}");
    }
    // Null only where a running, undeleted server without user data has null.
    for (field, value) in fields {
        let may_be_null = [
            "OS-EXT-STS:task_state",
            "fault",
            "OS-EXT-SRV-ATTR:user_data",
            "OS-SRV-USG:terminated_at",
        ];
        assert!(
            !value.is_null() || may_be_null.contains(&field.as_str()),
            "{field} is null"
        );
    }

    let networks = server["addresses"].as_object().unwrap();
    assert_eq!(networks.len(), 1);
    let (vpc, addresses) = networks.iter().next().unwrap();
    assert_eq!(
        server["metadata"]["vpc_id"],
        vpc.as_str(),
        "the network is the VPC"
    );
    let address = &addresses[0];
    assert_eq!(
        (&address["version"], &address["OS-EXT-IPS:type"]),
        (&json!("4"), &json!("fixed"))
    );
    assert!(
        address["addr"]
            .as_str()
            .unwrap()
            .parse::<std::net::Ipv4Addr>()
            .is_ok()
    );
    assert!(
        address["OS-EXT-IPS-MAC:mac_addr"]
            .as_str()
            .unwrap()
            .starts_with("fa:16:3e:")
    );
    assert!(uuid::Uuid::try_parse(address["OS-EXT-IPS:port_id"].as_str().unwrap()).is_ok());
    for key in ["id", "name", "disk", "vcpus", "ram"] {
        assert!(
            server["flavor"][key].is_string(),
            "flavor.{key}: {}",
            server["flavor"]
        );
    }
    assert!(uuid::Uuid::try_parse(server["image"]["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        server["metadata"]["metering.image_id"],
        server["image"]["id"]
    );
    for key in [
        "charging_mode",
        "vpc_id",
        "metering.image_id",
        "metering.imagetype",
        "metering.resourcespeccode",
        "metering.resourcetype",
        "image_name",
        "os_bit",
        "os_type",
    ] {
        assert!(server["metadata"][key].is_string(), "metadata.{key}");
    }
    let group = &server["security_groups"][0];
    assert!(
        group["id"].is_string() && group["name"].is_string(),
        "{group}"
    );
    let volume = &server["os-extended-volumes:volumes_attached"][0];
    assert_eq!(
        (&volume["bootIndex"], &volume["device"]),
        (&json!("0"), &json!("/dev/vda"))
    );
    assert_eq!(server["user_id"].as_str().unwrap().len(), 32);
    assert_eq!(server["hostId"].as_str().unwrap().len(), 56);
    assert_eq!(
        server["tenant_id"],
        ecs_power_operator::sim::DEFAULT_PROJECT_ID
    );
    assert!(server["os:scheduler_hints"].is_object());
    assert_eq!(server["security_options"]["tpm_enabled"], false);
    assert_eq!(server["sys_tags"][0]["key"], "_sys_enterprise_project_id");
    assert!(
        server["OS-SRV-USG:launched_at"]
            .as_str()
            .unwrap()
            .ends_with(".000000")
    );
    assert_eq!(server["OS-EXT-SRV-ATTR:hostname"], server["name"]);

    let tags = tags_of(&server);
    let keys: Vec<&str> = tags.iter().map(|t| t.split_once('=').unwrap().0).collect();
    assert_eq!(keys, ["env", "team", "app", "backup", "schedule"]);
    let value = |key: &str| {
        tags[keys.iter().position(|k| *k == key).unwrap()]
            .split_once('=')
            .unwrap()
            .1
    };
    assert!(["dev", "test", "prod"].contains(&value("env")));
    assert!(["a", "b", "c", "d", "e"].contains(&value("team")));
    assert_eq!(
        server["name"],
        format!("{}-{}-00001", value("env"), value("team"))
    );

    let (_, listed) = list_all(&client, &[]).await;
    assert_eq!(listed[1], server, "the listing shows the same object");
    sim.shutdown().await;
}

#[tokio::test]
async fn names_and_tags_depend_on_the_seed_alone() {
    let names_and_tags = |seed: u64| async move {
        let sim = start(SimConfig {
            seed,
            ..config(200)
        })
        .await;
        let (_, servers) = list_all(&Client::new(&sim), &[]).await;
        sim.shutdown().await;
        servers
            .iter()
            .map(|s| (s["name"].as_str().unwrap().to_owned(), tags_of(s).join(",")))
            .collect::<Vec<_>>()
    };
    let first = names_and_tags(5).await;
    assert_eq!(first, names_and_tags(5).await);
    assert_ne!(first, names_and_tags(6).await);
    let distinct: std::collections::BTreeSet<&str> = first
        .iter()
        .map(|(_, tags)| tags.split(',').next().unwrap())
        .collect();
    assert_eq!(distinct.len(), 3, "all three envs occur: {distinct:?}");
}

#[tokio::test]
async fn tags_and_not_tags_filter_as_the_docs_say() {
    let sim = start(config(600)).await;
    let client = Client::new(&sim);
    let (_, all) = list_all(&client, &[]).await;
    let expect = |keep: &dyn Fn(&[&str]) -> bool| -> Vec<&str> {
        all.iter()
            .filter(|s| keep(&tags_of(s)))
            .map(|s| s["id"].as_str().unwrap())
            .collect()
    };
    type Filters<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Filters, Vec<&str>)> = vec![
        (
            vec![("tags", "env=dev")],
            expect(&|t| t.contains(&"env=dev")),
        ),
        (
            vec![("tags", "env=dev,team=a")],
            expect(&|t| t.contains(&"env=dev") && t.contains(&"team=a")),
        ),
        (
            vec![("not-tags", "env=prod")],
            expect(&|t| !t.contains(&"env=prod")),
        ),
        (
            vec![("not-tags", "env=dev,team=a")],
            expect(&|t| !(t.contains(&"env=dev") && t.contains(&"team=a"))),
        ),
        (
            vec![("tags", "team=b"), ("not-tags", "app=db")],
            expect(&|t| t.contains(&"team=b") && !t.contains(&"app=db")),
        ),
        (vec![("tags", "env")], vec![]),
    ];
    for (filters, expected) in cases {
        let (count, servers) = list_all(&client, &filters).await;
        assert_eq!(ids_of(&servers), expected, "{filters:?}");
        assert_eq!(count, expected.len() as u64, "{filters:?}");
        if filters[0].1 != "env" {
            assert!(
                !expected.is_empty() && expected.len() < all.len(),
                "{filters:?} selects some"
            );
        }
    }

    // Tags set by hand replace the derived ones, over HTTP and in-process alike.
    let ids = sim.server_ids();
    let set = admin_post(
        &sim,
        &format!("servers/{}/tags", ids[3]),
        &json!({"tags": ["env=dev", "team=z", "owner=alice"]}),
    )
    .await;
    assert_eq!(set.status().as_u16(), 204);
    sim.control()
        .set_tags(&ids[4], &["team=z".to_owned()])
        .unwrap();
    let (count, servers) = list_all(&client, &[("tags", "team=z")]).await;
    assert_eq!(
        (count, ids_of(&servers)),
        (2, vec![ids[3].as_str(), ids[4].as_str()])
    );
    assert_eq!(tags_of(&servers[0]), ["env=dev", "team=z", "owner=alice"]);
    let (_, servers) = list_all(&client, &[("tags", "team=z"), ("not-tags", "owner=alice")]).await;
    assert_eq!(ids_of(&servers), [ids[4].as_str()]);

    let refused = admin_post(
        &sim,
        &format!("servers/{}/tags", ids[3]),
        &json!({"tags": ["env=dev", "env=prod"]}),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 400);
    let message = refused.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("`env`"), "{message}");
    sim.shutdown().await;
}

#[tokio::test]
async fn name_matches_fuzzily_with_a_period_for_any_single_character() {
    let sim = start(config(50)).await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    let control = sim.control();
    for (id, name) in ids
        .iter()
        .zip(["zz-alpha-01", "zz.alpha.01", "zzxalphax01", "zz-beta-01"])
    {
        control.set_name(id, name).unwrap();
    }
    let renamed = admin_post(
        &sim,
        &format!("servers/{}/name", ids[4]),
        &json!({"name": "alpha"}),
    )
    .await;
    assert_eq!(renamed.status().as_u16(), 204);
    let cases: [(&str, &[usize]); 6] = [
        ("zz.alpha.01", &[0, 1, 2]),
        ("zz-alpha", &[0]),
        ("alpha", &[0, 1, 2, 4]),
        ("a.p.a", &[0, 1, 2, 4]),
        ("ALPHA", &[]),
        ("zz-....-01", &[3]),
    ];
    for (pattern, expected) in cases {
        let (count, servers) = list_all(&client, &[("name", pattern)]).await;
        let expected: Vec<&str> = expected.iter().map(|&i| ids[i].as_str()).collect();
        assert_eq!(
            (count, ids_of(&servers)),
            (expected.len() as u64, expected),
            "{pattern}"
        );
    }
    let server = client
        .get(&format!("cloudservers/{}", ids[4]), &[])
        .await
        .body;
    assert_eq!(server["server"]["name"], "alpha");

    let refused = admin_post(
        &sim,
        &format!("servers/{}/name", ids[4]),
        &json!({"name": "has space"}),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 400);
    let unknown = control.set_name("616fb98f-46ca-475e-917e-2563e5a8cd19", "x");
    assert!(unknown.is_err());
    sim.shutdown().await;
}

#[tokio::test]
async fn marker_pages_after_the_last_id_beside_offset() {
    let sim = start(config(250)).await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    let mut seen: Vec<String> = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut query = vec![("limit", "100")];
        if let Some(marker) = &marker {
            query.push(("marker", marker.as_str()));
        }
        let reply = client.get("cloudservers/detail", &query).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["count"], 250, "count is every match");
        let page: Vec<String> = ids_of(reply.body["servers"].as_array().unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect();
        if page.is_empty() {
            break;
        }
        marker = page.last().cloned();
        seen.extend(page);
    }
    assert_eq!(seen, ids);

    // With a filter, a marker that no longer matches still says where to go on.
    let control = sim.control();
    for id in &ids[10..20] {
        control.set_status(id, Status::Shutoff).unwrap();
    }
    let reply = client
        .get(
            "cloudservers/detail",
            &[("status", "SHUTOFF"), ("marker", &ids[14]), ("limit", "3")],
        )
        .await;
    assert_eq!(reply.body["count"], 10);
    assert_eq!(
        ids_of(reply.body["servers"].as_array().unwrap()),
        [&ids[15], &ids[16], &ids[17]].map(String::as_str)
    );
    let reply = client
        .get(
            "cloudservers/detail",
            &[("status", "SHUTOFF"), ("marker", &ids[5]), ("limit", "2")],
        )
        .await;
    assert_eq!(
        ids_of(reply.body["servers"].as_array().unwrap()),
        [&ids[10], &ids[11]].map(String::as_str),
        "a marker that does not match itself"
    );
    let reply = client
        .get(
            "cloudservers/detail",
            &[("marker", "616fb98f-46ca-475e-917e-2563e5a8cd19")],
        )
        .await;
    assert_eq!((reply.status, reply.code()), (400, "Ecs.0005"));
    sim.shutdown().await;
}

#[tokio::test]
async fn server_id_lists_exactly_those_ids_and_ignores_the_other_filters() {
    let sim = start(config(20)).await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    let unknown = "616fb98f-46ca-475e-917e-2563e5a8cd19";
    let wanted = format!("{},{unknown},{}", ids[7], ids[2]);
    let reply = client
        .get(
            "cloudservers/detail",
            &[("server_id", &wanted), ("status", "SHUTOFF")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["count"], 3);
    let servers = reply.body["servers"].as_array().unwrap();
    assert_eq!(ids_of(servers), [ids[7].as_str(), unknown, ids[2].as_str()]);
    assert_eq!(servers[0]["status"], "ACTIVE", "status=SHUTOFF is ignored");
    assert!(servers[0]["fault"].is_null());
    let missing = servers[1].as_object().unwrap();
    assert_eq!(missing["fault"]["code"], 404);
    assert!(
        missing["fault"]["message"]
            .as_str()
            .unwrap()
            .contains(unknown)
    );
    for (field, value) in missing {
        assert!(
            field == "id" || field == "fault" || value.is_null(),
            "{field} of an unknown id is {value}"
        );
    }
    sim.shutdown().await;
}
