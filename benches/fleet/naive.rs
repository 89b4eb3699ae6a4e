//! The naive baseline: what a client that knows nothing of batching does (the
//! Terraform providers among them): one server per stop call, then poll that job until
//! it ends, then the next server. Same simulator settings as the cells.

use crate::report::{NaiveFigures, Settings};
use anyhow::Result;
use ecs_power_operator::ecs::auth::Credentials;
use ecs_power_operator::ecs::budget::{ActionBudget, BudgetLimits};
use ecs_power_operator::ecs::client::{EcsApi, HttpEcsClient};
use ecs_power_operator::ecs::config::EcsClientConfig;
use ecs_power_operator::ecs::wire::PowerActionType;
use ecs_power_operator::sim;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(servers: usize, settings: &Settings) -> Result<NaiveFigures> {
    let sim = sim::start(
        crate::cell::sim_config(servers, settings),
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let mut config = EcsClientConfig::new(
        sim.base_url().parse()?,
        sim::DEFAULT_PROJECT_ID,
        Credentials::aksk(
            sim::DEFAULT_ACCESS_KEY,
            SecretString::from(sim::DEFAULT_SECRET_KEY),
        ),
    );
    config.budget = Arc::new(ActionBudget::new(BudgetLimits {
        servers_per_window: crate::report::MAX_PER_CALL,
        window: settings.window,
    }));
    let client = HttpEcsClient::new(config)?;
    let started = Instant::now();
    for id in sim.server_ids() {
        let job_id = client.stop_servers(&[id], PowerActionType::Soft).await?;
        while !client.get_job(&job_id).await?.status.is_terminal() {
            tokio::time::sleep(settings.naive_poll).await;
        }
    }
    let took = started.elapsed();
    let stats = sim.stats().await;
    sim.shutdown().await;
    Ok(NaiveFigures {
        servers,
        stop_calls: stats.stop_calls,
        ecs_requests: stats.requests.values().flat_map(|c| c.values()).sum(),
        responses_429: stats.responses_429,
        all_stopped_s: took.as_secs_f64(),
        bound_s: settings.bound(servers).as_secs_f64(),
    })
}
