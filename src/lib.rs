//! ecs-power-operator: keeps OTC / Huawei Cloud ECS servers stopped as `EcsPowerPolicy` resources declare.

pub mod controller;
pub mod ecs;
pub mod fleet;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod plan;
pub mod policy;
pub mod probes;
pub mod schedule;
pub mod selector;
pub mod server_id;
pub mod sim;
pub mod telemetry;
