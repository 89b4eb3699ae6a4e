//! Issue 16: the Helm chart (charts/ecs-power-operator), with the real helm.
//! `helm lint --strict` is clean; the default render is the objects of
//! `kubectl kustomize deploy/` but for the differences listed in EXPECTED_DIFFERENCES,
//! and the `rbac.mode=namespaced` render those of `deploy/namespaced/` (plus the CRD);
//! renders are accepted by the real API server (`--dry-run=server`); the values
//! users set reach the manifests; bad values fail with the value named.

use crate::cluster::{OPERATOR_NS, repo_root};
use crate::ensure_eq;
use crate::harness::Ctx;
use crate::tools;
use anyhow::{Context as _, Result, bail, ensure};
use serde::Deserialize as _;
use serde_yaml::Value;
use std::collections::BTreeMap;

const CHART: &str = "charts/ecs-power-operator";
const CRD: &str = "crds/ecspowerpolicies.ecspower.dev.yaml";

/// Labels Helm charts put on their objects for releases; kustomize's deploy/ has one
/// release and no release bookkeeping, so they are removed before comparing.
const RELEASE_LABELS: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
];

/// Objects of `kubectl kustomize deploy/` that the chart's default render leaves out,
/// with why.
const EXPECTED_DIFFERENCES: [(&str, &str); 1] = [(
    "v1/Namespace//ecs-power-operator-system",
    "Helm installs into a namespace it is given (helm install -n NS --create-namespace); \
     a chart that also creates its release namespace fails when that namespace exists",
)];

type Objects = BTreeMap<String, Value>;

fn key(obj: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    format!(
        "{}/{}/{}/{}",
        s(&obj["apiVersion"]),
        s(&obj["kind"]),
        s(&obj["metadata"]["namespace"]),
        s(&obj["metadata"]["name"])
    )
}

fn parse_objects(yaml: &str, what: &str) -> Result<Objects> {
    let mut objects = Objects::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let obj = Value::deserialize(doc).with_context(|| format!("parsing {what}"))?;
        if obj.is_null() {
            continue;
        }
        if objects.insert(key(&obj), obj.clone()).is_some() {
            bail!("{what}: {} twice", key(&obj));
        }
    }
    Ok(objects)
}

fn drop_release_labels(labels: &mut Value) {
    if let Some(map) = labels.as_mapping_mut() {
        for l in RELEASE_LABELS {
            map.remove(l);
        }
    }
}

/// Whole floats as integers: kustomize rewrites the CRD's `minimum: 0.0` as `0`,
/// Helm keeps the file's text; both mean the same number to the API server.
fn canonical_numbers(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15) {
                *v = Value::Number((f as i64).into());
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(canonical_numbers),
        Value::Mapping(map) => map.values_mut().for_each(canonical_numbers),
        _ => {}
    }
}

/// The object without Helm's release labels (on the object, its selectors, its pod
/// template), numbers canonical.
fn normalized(mut obj: Value) -> Value {
    canonical_numbers(&mut obj);
    drop_release_labels(&mut obj["metadata"]["labels"]);
    if obj["metadata"]["labels"]
        .as_mapping()
        .is_some_and(|m| m.is_empty())
    {
        obj["metadata"].as_mapping_mut().map(|m| m.remove("labels"));
    }
    let spec = &mut obj["spec"];
    if spec.is_mapping() {
        if spec["selector"]["matchLabels"].is_mapping() {
            drop_release_labels(&mut spec["selector"]["matchLabels"]);
        } else if spec["selector"].is_mapping() {
            drop_release_labels(&mut spec["selector"]);
        }
        if spec["template"]["metadata"]["labels"].is_mapping() {
            drop_release_labels(&mut spec["template"]["metadata"]["labels"]);
        }
    }
    obj
}

struct Helm {
    bin: std::path::PathBuf,
}

impl Helm {
    async fn run(&self, args: &[&str]) -> Result<crate::kubectl::Output> {
        tools::run(&self.bin, args, None).await
    }

    /// `helm template RELEASE charts/ecs-power-operator -n NS --include-crds <extra>`.
    async fn template(
        &self,
        release: &str,
        ns: &str,
        extra: &[&str],
    ) -> Result<crate::kubectl::Output> {
        let mut args = vec![
            "template",
            release,
            CHART,
            "--namespace",
            ns,
            "--include-crds",
        ];
        args.extend_from_slice(extra);
        self.run(&args).await
    }
}

fn container_args(objects: &Objects, deployment: &str) -> Result<Vec<String>> {
    let d = objects
        .get(deployment)
        .with_context(|| format!("no {deployment} in the render"))?;
    Ok(d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .context("no container args")?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect())
}

pub async fn run(ctx: Ctx) -> Result<()> {
    let helm = Helm {
        bin: tools::go_tool("helm").await?,
    };
    let root = repo_root();

    // One source for the CRD: the chart's crds/ entry is the file the Rust types
    // generate (tests/crd_generated.rs), not a copy that can drift.
    let chart_crd = root.join(CHART).join(CRD);
    ensure!(
        std::fs::read(&chart_crd)? == std::fs::read(root.join(CRD))?,
        "{} differs from {CRD}",
        chart_crd.display()
    );
    ensure!(
        std::fs::symlink_metadata(&chart_crd)?
            .file_type()
            .is_symlink(),
        "{} must stay a symlink to {CRD} (one source)",
        chart_crd.display()
    );

    // The chart installs the version this checkout builds: its default image tag
    // (appVersion) is the tag hack/image.sh gives the image.
    let chart_meta: Value = serde_yaml::from_str(&std::fs::read_to_string(
        root.join(CHART).join("Chart.yaml"),
    )?)?;
    let cargo = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let crate_version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .context("Cargo.toml: no version")?;
    ensure_eq!(
        chart_meta["appVersion"].as_str(),
        Some(crate_version),
        "Chart.yaml appVersion = Cargo.toml version"
    );

    let lint = helm.run(&["lint", "--strict", CHART]).await?;
    let lint_out = lint.clone().check()?;
    for finding in ["[WARNING]", "[ERROR]"] {
        ensure!(
            !lint_out.contains(finding),
            "helm lint --strict: {lint_out}"
        );
    }

    // The default render against deploy/, release ecs-power-operator in its namespace,
    // and the namespaced RBAC mode against deploy/namespaced/ (which leaves the CRD to
    // `kubectl apply -f crds/`: kustomize cannot load it from inside deploy/).
    let namespace_difference = EXPECTED_DIFFERENCES[0];
    let crd = "apiextensions.k8s.io/v1/CustomResourceDefinition//ecspowerpolicies.ecspower.dev";
    for (values, kustomization, only_in_deploy, only_in_chart) in [
        (&[][..], "deploy", &EXPECTED_DIFFERENCES[..], &[][..]),
        (
            &["--set", "rbac.mode=namespaced"][..],
            "deploy/namespaced",
            &[namespace_difference][..],
            &[crd][..],
        ),
    ] {
        let rendered = helm
            .template("ecs-power-operator", OPERATOR_NS, values)
            .await?
            .check()?;
        let kustomized = ctx
            .k
            .run(
                &["kustomize", root.join(kustomization).to_str().unwrap()],
                None,
            )
            .await?
            .check()?;
        same_objects(
            &parse_objects(&rendered, &format!("helm template {values:?}"))?,
            &parse_objects(&kustomized, &format!("kubectl kustomize {kustomization}/"))?,
            kustomization,
            only_in_deploy,
            only_in_chart,
        )?;
    }

    // A second release in this scenario's namespace, cluster-wide RBAC, values set:
    // the real API server accepts every object (server-side dry run: nothing is
    // stored, admission and schema validation run).
    let ns = &ctx.ns;
    let cluster_values = [
        "--set",
        "replicas=3",
        "--set",
        "logFormat=text",
        "--set",
        "budget.servers=500",
        "--set",
        "budget.windowMs=30000",
        "--set",
        "image.repository=registry.example/ecs-power-operator",
        "--set",
        "image.tag=0.1.0-test",
        "--set",
        "resources.limits.memory=128Mi",
    ];
    let cluster_render = helm
        .template("epo-e2e", ns, &cluster_values)
        .await?
        .check()?;
    let objects = parse_objects(&cluster_render, "helm template (values set)")?;
    let deployment = format!("apps/v1/Deployment/{ns}/epo-e2e-ecs-power-operator");
    ensure_eq!(
        container_args(&objects, &deployment)?,
        vec![
            "run",
            "--leader-election",
            "--log-format=text",
            "--budget-servers=500",
            "--budget-window-ms=30000"
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>(),
        "container args with budget and logFormat set"
    );
    let d = &objects[&deployment];
    ensure_eq!(d["spec"]["replicas"].as_u64(), Some(3), "replicas");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    ensure_eq!(
        c["image"].as_str(),
        Some("registry.example/ecs-power-operator:0.1.0-test"),
        "image"
    );
    ensure_eq!(
        c["resources"]["limits"]["memory"].as_str(),
        Some("128Mi"),
        "memory limit"
    );
    dry_run(&ctx, &cluster_render, "cluster-wide render").await?;

    // Namespaced RBAC with a watched namespace: no Secret access of its own, the
    // opt-in ClusterRole shipped, Secrets polled.
    let watched = ctx.namespace("watched").await?;
    let namespaced_render = helm
        .template(
            "epo-e2e",
            ns,
            &[
                "--set",
                "rbac.mode=namespaced",
                "--set",
                &format!("watchNamespace={watched}"),
            ],
        )
        .await?
        .check()?;
    let objects = parse_objects(&namespaced_render, "helm template (namespaced)")?;
    let role = &objects["rbac.authorization.k8s.io/v1/ClusterRole//epo-e2e-ecs-power-operator"];
    ensure!(
        !serde_yaml::to_string(&role["rules"])?.contains("secrets"),
        "namespaced render still grants Secrets: {:?}",
        role["rules"]
    );
    ensure!(
        objects.contains_key(
            "rbac.authorization.k8s.io/v1/ClusterRole//epo-e2e-ecs-power-operator-secret-reader"
        ),
        "namespaced render lacks the secret-reader ClusterRole"
    );
    let args = container_args(&objects, &deployment)?;
    for arg in [
        format!("--watch-namespace={watched}"),
        "--secret-changes=poll".to_owned(),
    ] {
        ensure!(args.contains(&arg), "namespaced render does not pass {arg}");
    }
    dry_run(&ctx, &namespaced_render, "namespaced render").await?;

    // The ServiceMonitor selects the metrics Service (its CRD is not in this cluster,
    // so it is checked as rendered).
    let monitored = helm
        .template(
            "epo-e2e",
            ns,
            &["--set", "metrics.serviceMonitor.enabled=true"],
        )
        .await?
        .check()?;
    let objects = parse_objects(&monitored, "helm template (ServiceMonitor)")?;
    let sm = objects
        .get(&format!(
            "monitoring.coreos.com/v1/ServiceMonitor/{ns}/epo-e2e-ecs-power-operator"
        ))
        .context("no ServiceMonitor rendered with metrics.serviceMonitor.enabled=true")?;
    let service = &objects[&format!("v1/Service/{ns}/epo-e2e-ecs-power-operator-metrics")];
    let selector = sm["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .context("ServiceMonitor has no matchLabels")?;
    for (k, v) in selector {
        ensure!(
            service["metadata"]["labels"][k] == *v,
            "the ServiceMonitor selects {k:?}={v:?}, which the metrics Service does not carry"
        );
    }
    ensure_eq!(
        sm["spec"]["endpoints"][0]["port"].as_str(),
        service["spec"]["ports"][0]["name"].as_str(),
        "ServiceMonitor port = the Service's port name"
    );

    // Bad values fail the render with the value named (values.schema.json, and the
    // templates for what spans values).
    for (set, expected) in [
        ("rbac.mode=everything", "/rbac/mode"),
        ("logFormat=xml", "/logFormat"),
        ("replicas=0", "/replicas"),
        ("budget.servers=many", "/budget/servers"),
        ("replicaCount=2", "'replicaCount' not allowed"),
        (
            "leaderElection.enabled=false",
            "replicas > 1 needs leaderElection.enabled",
        ),
    ] {
        let out = helm.template("epo-e2e", ns, &["--set", set]).await?;
        ensure!(
            !out.ok(),
            "helm template --set {set} succeeded; it must fail"
        );
        ensure!(
            out.stderr.contains(expected),
            "helm template --set {set}: error does not name {expected:?}: {}",
            out.stderr
        );
    }
    Ok(())
}

/// `chart` and `deploy` (the kustomization `kustomization`) hold the same objects,
/// field for field but Helm's release labels, except the listed differences.
fn same_objects(
    chart: &Objects,
    deploy: &Objects,
    kustomization: &str,
    only_in_deploy: &[(&str, &str)],
    only_in_chart: &[&str],
) -> Result<()> {
    let mut differences = Vec::new();
    for (k, obj) in deploy {
        match chart.get(k) {
            None if only_in_deploy.iter().any(|(d, _)| d == k) => {}
            None => differences.push(format!("only in {kustomization}/: {k}")),
            Some(c) => {
                let (c, d) = (normalized(c.clone()), normalized(obj.clone()));
                if c != d {
                    differences.push(format!(
                        "{k} differs:\n--- chart\n{}--- {kustomization}/\n{}",
                        serde_yaml::to_string(&c)?,
                        serde_yaml::to_string(&d)?
                    ));
                }
            }
        }
    }
    for k in chart.keys().filter(|k| !deploy.contains_key(*k)) {
        if !only_in_chart.contains(&k.as_str()) {
            differences.push(format!("only in the chart: {k}"));
        }
    }
    for (k, _) in only_in_deploy {
        ensure!(
            deploy.contains_key(*k) && !chart.contains_key(*k),
            "the listed difference {k} is no longer one: update EXPECTED_DIFFERENCES"
        );
    }
    if !differences.is_empty() {
        bail!(
            "the chart's render is not {kustomization}/ ({} differences):\n{}",
            differences.len(),
            differences.join("\n")
        );
    }
    eprintln!(
        "e2e helm: render = kubectl kustomize {kustomization}/ ({} objects) but for {:?} {:?}",
        chart.len(),
        only_in_deploy.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        only_in_chart
    );
    Ok(())
}

async fn dry_run(ctx: &Ctx, manifests: &str, what: &str) -> Result<()> {
    let out = ctx
        .k
        .run(&["apply", "--dry-run=server", "-f", "-"], Some(manifests))
        .await?;
    let applied = out
        .check()
        .with_context(|| format!("kubectl apply --dry-run=server of the {what}"))?;
    let count = applied
        .lines()
        .filter(|l| l.contains("(server dry run)"))
        .count();
    ensure!(
        count == parse_objects(manifests, what)?.len(),
        "the API server answered for {count} objects of the {what}:\n{applied}"
    );
    eprintln!("e2e helm: {what}: {count} objects accepted by the API server (dry run)");
    Ok(())
}
