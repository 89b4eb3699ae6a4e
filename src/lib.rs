//! ecs-power-operator: keeps OTC / Huawei Cloud ECS servers stopped as `EcsPowerPolicy` resources declare.

pub mod ecs;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod telemetry;
