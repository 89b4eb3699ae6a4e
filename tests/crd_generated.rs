//! The CRD checked in under `crds/` (for `kubectl apply -f crds/`) and its copy in
//! `deploy/` (for `kubectl apply -k deploy/`: kustomize loads no file outside its
//! directory) must be exactly what the Rust types generate.

const REGENERATE: &str = "regenerate both with\n\n    \
    cargo run --bin ecs-power-operator -- crd > crds/ecspowerpolicies.ecspower.dev.yaml && \
    cp crds/ecspowerpolicies.ecspower.dev.yaml deploy/crd.yaml\n";

#[test]
fn checked_in_crd_matches_the_rust_types() {
    let generated = ecs_power_operator::policy::crd_yaml();
    assert!(
        generated == include_str!("../crds/ecspowerpolicies.ecspower.dev.yaml"),
        "crds/ecspowerpolicies.ecspower.dev.yaml is stale; {REGENERATE}"
    );
    assert!(
        generated == include_str!("../deploy/crd.yaml"),
        "deploy/crd.yaml is stale; {REGENERATE}"
    );
}

/// `kubectl apply -f crds/` applies every .yaml file there: each must be a Kubernetes
/// object, not a kustomize file.
#[test]
fn crds_holds_only_the_crd() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("crds/ exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(files, ["ecspowerpolicies.ecspower.dev.yaml"]);
}
