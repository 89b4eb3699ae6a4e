//! ecs-power-operator: keeps OTC / Huawei Cloud ECS servers stopped as `EcsPowerPolicy` resources declare.

pub mod plan;
pub mod policy;
