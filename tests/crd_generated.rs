//! The CRD checked in under `crds/` must be exactly what the Rust types generate.

const CHECKED_IN: &str = include_str!("../crds/ecspowerpolicies.ecspower.dev.yaml");

#[test]
fn checked_in_crd_matches_the_rust_types() {
    let generated = ecs_power_operator::policy::crd_yaml();
    assert!(
        generated == CHECKED_IN,
        "crds/ecspowerpolicies.ecspower.dev.yaml is stale; regenerate it with\n\n    \
         cargo run --bin ecs-power-operator -- crd > crds/ecspowerpolicies.ecspower.dev.yaml\n"
    );
}
