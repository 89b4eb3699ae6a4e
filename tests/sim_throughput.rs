//! A bounded load run on loopback: how many requests per second ecs-sim serves with
//! 100,000 servers, for the heaviest reads a client makes (a 1000-sub-job job, a
//! 1000-server page) and a small one. Figures are printed (`--nocapture`); the
//! load generator shares the machine, so they are a floor. The test holds the
//! simulator to a floor in the build it runs in: "thousands of requests per second"
//! for small reads in release builds, and in the debug build `hack/test.sh` runs,
//! a floor a quarter of what a loaded 2-core machine measured (764/s).

mod sim_support;

use sim_support::{Client, config, start};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 8;
const RUN: Duration = Duration::from_secs(2);

/// Replays `request` from `CONCURRENCY` tasks for `RUN`; returns requests per second.
async fn measure(client: &Client, name: &str, request: reqwest::Request) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, done) = (client.clone(), done.clone());
            let request = request.try_clone().unwrap();
            tokio::spawn(async move {
                while started.elapsed() < RUN {
                    let response = client.execute(request.try_clone().unwrap()).await;
                    assert_eq!(response.status().as_u16(), 200);
                    response.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("{name}: {rate:.0} requests/s ({CONCURRENCY} connections, {RUN:?})");
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_with_100k_servers() {
    let sim = start(config(100_000)).await;
    let client = Client::new(&sim);
    let ids = sim.server_ids();
    let job = client.stop(&ids[..1000]).await;
    let job_id = job.body["job_id"].as_str().unwrap();

    let mut page = client.request("GET", "cloudservers/detail");
    page.query = vec![
        ("offset".into(), "50".into()),
        ("limit".into(), "1000".into()),
    ];
    let rates = [
        measure(
            &client,
            "GET job (1000 sub-jobs)",
            client.prepare(client.request("GET", &format!("jobs/{job_id}"))),
        )
        .await,
        measure(
            &client,
            "GET servers page (limit 1000)",
            client.prepare(page),
        )
        .await,
        measure(
            &client,
            "GET one server",
            client.prepare(client.request("GET", &format!("cloudservers/{}", ids[4242]))),
        )
        .await,
    ];
    let floor = if cfg!(debug_assertions) {
        200.0
    } else {
        2000.0
    };
    assert!(
        rates[2] > floor,
        "small reads at {:.0}/s, below {floor}/s",
        rates[2]
    );
    sim.shutdown().await;
}
