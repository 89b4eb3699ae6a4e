//! Issue 16: the alerts (deploy/monitoring/prometheusrule.yaml) and the Grafana
//! dashboard (deploy/monitoring/grafana-dashboard.json). Every PromQL expression
//! parses with Prometheus' own parser (hack/cplane's promql-check); promtool checks
//! the rules and runs their unit tests (prometheusrule_test.yaml); every metric
//! they select is in a running operator's /metrics, with the labels they match on
//! (for the families that have samples after a policy was stopped).

use crate::cluster::repo_root;
use crate::harness::{ACCESS_KEY, Ctx, Policy, SECRET_KEY, condition, start_sim, summary};
use crate::tools;
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const RULES: &str = "deploy/monitoring/prometheusrule.yaml";
const RULE_TESTS: &str = "deploy/monitoring/prometheusrule_test.yaml";
const DASHBOARD: &str = "deploy/monitoring/grafana-dashboard.json";

/// Series Prometheus makes itself when it scrapes, not the operator.
const SCRAPE_SERIES: [&str; 1] = ["up"];

/// Grafana's built-in variables the dashboard uses, and what a query gets for them.
const GRAFANA_VARIABLES: [(&str, &str); 1] = [("$__rate_interval", "5m")];

/// (where, expression) of every rule.
fn rule_exprs() -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(repo_root().join(RULES))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    ensure!(
        doc["apiVersion"].as_str() == Some("monitoring.coreos.com/v1")
            && doc["kind"].as_str() == Some("PrometheusRule"),
        "{RULES} is not a monitoring.coreos.com/v1 PrometheusRule"
    );
    let mut out = Vec::new();
    for group in doc["spec"]["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .with_context(|| format!("{RULES}: a rule with neither alert nor record"))?;
            let expr = rule["expr"]
                .as_str()
                .with_context(|| format!("{RULES}: {name} has no expr"))?;
            if let Some(f) = rule["for"].as_str() {
                ensure!(
                    f.len() > 1
                        && f[..f.len() - 1].chars().all(|c| c.is_ascii_digit())
                        && f.ends_with(['s', 'm', 'h']),
                    "{RULES}: {name}: for {f:?} is not a duration like 15m"
                );
            }
            out.push((format!("{RULES}: {name}"), expr.to_owned()));
        }
    }
    ensure!(!out.is_empty(), "{RULES} has no rules");
    Ok(out)
}

/// promtool (Prometheus' own rule evaluation) on the PrometheusRule's spec as a plain
/// rule file: `check rules` (syntax, templates, duplicates), then the unit tests of
/// RULE_TESTS (each alert fires when it should, and not before).
async fn rule_unit_tests(ctx: &Ctx) -> Result<()> {
    let promtool = tools::go_tool("promtool").await?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo_root().join(RULES))?)?;
    let mut plain = serde_yaml::Mapping::new();
    plain.insert("groups".into(), doc["spec"]["groups"].clone());
    let rules = ctx.dir.join("rules.yaml");
    std::fs::write(&rules, serde_yaml::to_string(&plain)?)?;
    let tests = ctx.dir.join("prometheusrule_test.yaml");
    std::fs::copy(repo_root().join(RULE_TESTS), &tests)?;
    for args in [
        ["check", "rules", &rules.to_string_lossy()],
        ["test", "rules", &tests.to_string_lossy()],
    ] {
        let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        let out = tools::run(&promtool, &args, None).await?;
        let (code, stdout) = (out.code, out.stdout.clone());
        out.check()
            .with_context(|| format!("promtool {} (exit {code:?}):\n{stdout}", args.join(" ")))?;
    }
    Ok(())
}

/// `expr` with Grafana's variables replaced; any other variable is an error.
fn grafana_substituted(expr: &str, panel: &str) -> Result<String> {
    let mut e = expr.to_owned();
    for (var, value) in GRAFANA_VARIABLES {
        e = e.replace(var, value);
    }
    if e.contains('$') {
        bail!("{DASHBOARD}: panel {panel:?} uses a variable this test does not know: {expr}");
    }
    Ok(e)
}

/// (where, expression) of every panel target, rows' nested panels included.
fn dashboard_exprs() -> Result<Vec<(String, String)>> {
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(repo_root().join(DASHBOARD))?)
        .with_context(|| format!("{DASHBOARD} is not JSON"))?;
    let mut panels: Vec<&Value> = dash["panels"].as_array().into_iter().flatten().collect();
    let mut out = Vec::new();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().with_context(|| {
                format!("{DASHBOARD}: panel {title:?} has a target without expr")
            })?;
            out.push((
                format!("{DASHBOARD}: {title}"),
                grafana_substituted(expr, title)?,
            ));
        }
    }
    ensure!(!out.is_empty(), "{DASHBOARD} has no queries");
    Ok(out)
}

/// Families in /metrics (`# TYPE name type`) with the series names they expose, and
/// the label names seen on each series name.
struct Exposition {
    series: BTreeSet<String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

fn exposition(text: &str) -> Exposition {
    let mut series = BTreeSet::new();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut f = rest.split_whitespace();
            let (Some(name), Some(kind)) = (f.next(), f.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                _ => &[""],
            };
            series.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let entry = labels.entry(line[..name_end].to_owned()).or_default();
            if let Some(set) = line[name_end..]
                .strip_prefix('{')
                .and_then(|r| r.split('}').next())
            {
                for pair in set.split(',').filter(|p| !p.is_empty()) {
                    if let Some((k, _)) = pair.split_once('=') {
                        entry.insert(k.to_owned());
                    }
                }
            }
        }
    }
    Exposition { series, labels }
}

pub async fn run(ctx: Ctx) -> Result<()> {
    let checker = tools::go_tool("promql-check").await?;
    let mut exprs = rule_exprs()?;
    let rules = exprs.len();
    exprs.extend(dashboard_exprs()?);
    let queries: Vec<Value> = exprs
        .iter()
        .map(|(source, expr)| json!({"source": source, "expr": expr}))
        .collect();
    let answers = tools::run(&checker, &[], Some(&Value::Array(queries).to_string()))
        .await?
        .check()?;
    let answers: Vec<Value> = serde_json::from_str(&answers).context("promql-check output")?;
    ensure!(
        answers.len() == exprs.len(),
        "promql-check answered {} of {} expressions",
        answers.len(),
        exprs.len()
    );
    let errors: Vec<String> = answers
        .iter()
        .filter_map(|a| {
            a["error"]
                .as_str()
                .map(|e| format!("{}: {e}\n    {}", a["source"], a["expr"]))
        })
        .collect();
    ensure!(
        errors.is_empty(),
        "PromQL that Prometheus refuses:\n{}",
        errors.join("\n")
    );

    rule_unit_tests(&ctx).await?;

    // A real operator's /metrics after it did what the expressions watch: stopped a
    // policy through a throttling ECS API (429s, waits), and failed on a policy whose
    // Secret is missing (errors by kind, a Degraded condition). Families with labels
    // are only exposed once they have a series.
    let sim = start_sim(5, |c| c.throttle_rps = Some(1.0)).await?;
    ctx.secret(&ctx.ns, "otc-credentials", ACCESS_KEY, SECRET_KEY)
        .await?;
    let op = ctx.operator("operator", &ctx.ns, &[]).await?;
    ctx.k
        .apply_ok(&Policy::new(&ctx.ns, "watched", &sim, &sim.server_ids()).yaml())
        .await?;
    let mut broken = Policy::new(&ctx.ns, "no-secret", &sim, &sim.server_ids()[..1]);
    broken.secret = "missing".into();
    ctx.k.apply_ok(&broken.yaml()).await?;
    ctx.wait_status(
        &ctx.ns,
        "watched",
        Duration::from_secs(90),
        "policy Stopped",
        |s| s["phase"] == "Stopped" && summary(s, "stopped") == 5,
    )
    .await?;
    ctx.wait_status(
        &ctx.ns,
        "no-secret",
        Duration::from_secs(30),
        "policy Degraded (its Secret is missing)",
        |s| condition(s, "Degraded").is_some_and(|c| c["status"] == "True"),
    )
    .await?;
    ensure!(
        sim.stats().await.rate_limited > 0,
        "the sim sent no 429: the scenario did not exercise throttling"
    );
    let metrics = exposition(&op.metrics().await?);

    let mut missing = Vec::new();
    let mut used = BTreeSet::new();
    for a in &answers {
        for sel in a["selectors"].as_array().into_iter().flatten() {
            let metric = sel["metric"].as_str().unwrap_or("");
            used.insert(metric.to_owned());
            if SCRAPE_SERIES.contains(&metric) {
                continue;
            }
            if !metrics.series.contains(metric) {
                missing.push(format!("{}: {metric} is not in /metrics", a["source"]));
                continue;
            }
            let Some(seen) = metrics.labels.get(metric) else {
                continue;
            };
            for label in sel["labels"].as_array().into_iter().flatten() {
                let label = label.as_str().unwrap_or("");
                if !seen.contains(label) {
                    missing.push(format!(
                        "{}: {metric} has no label {label:?} in /metrics (it has {seen:?})",
                        a["source"]
                    ));
                }
            }
        }
    }
    ensure!(
        missing.is_empty(),
        "the alerts and dashboard use what the operator does not expose:\n{}",
        missing.join("\n")
    );
    eprintln!(
        "e2e monitoring: {rules} rules and {} dashboard queries parse; {} metrics used, all in /metrics: {used:?}",
        exprs.len() - rules,
        used.len()
    );
    Ok(())
}
