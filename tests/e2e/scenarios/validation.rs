//! Bad policies are refused by `kubectl apply` with the field named; a good one is
//! accepted; `kubectl explain` teaches the resource.

use crate::harness::{Ctx, Policy};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

fn uuids(n: usize) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect()
}

const ENDPOINT: &str = "https://ecs.eu-de.otc.t-systems.com";

pub async fn run(ctx: Ctx) -> Result<()> {
    let ns = ctx.ns.clone();
    let base = |name: &str| Policy::with_endpoint(&ns, name, ENDPOINT, &uuids(3));

    let mut cases: Vec<(&str, Policy, Vec<String>)> = Vec::new();
    let needles = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut p = base("bad-server-id");
    p.ids[1] = "not-a-uuid".into();
    cases.push((
        "server id that is not a UUID",
        p,
        needles(&["spec.servers[1].id"]),
    ));
    let mut p = base("bad-project-id");
    p.project_id = "0123456789ABCDEF".into();
    cases.push((
        "projectId that is not 32 hex",
        p,
        needles(&["spec.cloud.projectId"]),
    ));
    let mut p = base("bad-stop-type");
    p.stop_type = "Gentle".into();
    cases.push(("unknown stopType", p, needles(&["spec.stopType", "Gentle"])));
    let mut p = base("duplicate-ids");
    p.ids[2] = p.ids[0].clone();
    let dup = p.ids[0].clone();
    cases.push(("duplicate server ids", p, vec!["spec.servers".into(), dup]));
    let mut p = base("too-many-servers");
    p.ids = uuids(10_001);
    cases.push(("10,001 servers", p, needles(&["spec.servers", "10000"])));
    let mut p = base("http-not-loopback");
    p.endpoint = "http://ecs.example.com".into();
    cases.push((
        "http endpoint that is not loopback",
        p,
        needles(&["spec.cloud.endpoint"]),
    ));
    for (name, endpoint, what) in [
        (
            "endpoint-userinfo",
            "https://user:pw@ecs.example.com",
            "endpoint with user:password@",
        ),
        (
            "endpoint-loopback-userinfo",
            "http://user@127.0.0.1:9",
            "loopback endpoint with user@",
        ),
        (
            "endpoint-query",
            "https://ecs.example.com/?x=1",
            "endpoint with a query",
        ),
        (
            "endpoint-fragment",
            "http://127.0.0.1:9/#x",
            "endpoint with a fragment",
        ),
    ] {
        let mut p = base(name);
        p.endpoint = endpoint.into();
        cases.push((
            what,
            p,
            needles(&["spec.cloud.endpoint", "query or fragment"]),
        ));
    }
    let selecting = |name: &str, ids: &[String], extra: &str| {
        let mut p = Policy::with_endpoint(&ns, name, ENDPOINT, ids);
        p.extra_spec = extra.to_owned();
        p
    };
    cases.push((
        "neither servers nor selector",
        selecting("no-servers", &[], ""),
        needles(&["spec.servers or spec.selector"]),
    ));
    cases.push((
        "empty selector",
        selecting("empty-selector", &[], "  selector: {}\n  maxServers: 5\n"),
        needles(&["spec.selector", "tags or a namePattern"]),
    ));
    cases.push((
        "selector with empty tags",
        selecting(
            "empty-tags",
            &[],
            "  selector: {tags: {}}\n  maxServers: 5\n",
        ),
        needles(&["spec.selector", "tags or a namePattern"]),
    ));
    cases.push((
        "selector without maxServers",
        selecting("no-max", &[], "  selector: {tags: {env: dev}}\n"),
        needles(&["spec.maxServers is required"]),
    ));
    cases.push((
        "tag key ECS refuses",
        selecting(
            "bad-tag-key",
            &[],
            "  selector: {tags: {\"en v\": dev}}\n  maxServers: 5\n",
        ),
        needles(&["spec.selector.tags"]),
    ));
    cases.push((
        "tag value too long",
        selecting(
            "long-tag-value",
            &[],
            &format!(
                "  selector: {{tags: {{env: {}}}}}\n  maxServers: 5\n",
                "v".repeat(44)
            ),
        ),
        needles(&["spec.selector.tags"]),
    ));
    cases.push((
        "maxServers 0",
        selecting(
            "zero-max",
            &[],
            "  selector: {tags: {env: dev}}\n  maxServers: 0\n",
        ),
        needles(&["spec.maxServers"]),
    ));
    cases.push((
        "excluded id that is not a UUID",
        selecting("bad-exclude", &uuids(1), "  exclude: [{id: not-a-uuid}]\n"),
        needles(&["spec.exclude[0].id"]),
    ));
    let scheduled = |name: &str, schedule: &str| {
        let mut p = base(name);
        p.extra_spec = format!("  schedule:\n{schedule}");
        p
    };
    let nightly = "    timeZone: Europe/Berlin\n    windows: [{days: [Mon], from: \"19:00\", to: \"07:00\"}]\n";
    for (name, what, schedule, field) in [
        (
            "schedule-bad-day",
            "unknown day",
            "    timeZone: UTC\n    windows: [{days: [Monday]}]\n".to_owned(),
            "spec.schedule.windows[0].days[0]",
        ),
        (
            "schedule-bad-time",
            "time 25:00",
            "    timeZone: UTC\n    windows: [{days: [Mon], from: \"25:00\"}]\n".to_owned(),
            "spec.schedule.windows[0].from",
        ),
        (
            "schedule-from-24",
            "window beginning at 24:00",
            "    timeZone: UTC\n    windows: [{days: [Mon], from: \"24:00\"}]\n".to_owned(),
            "spec.schedule.windows[0].from",
        ),
        (
            "schedule-empty-window",
            "window with from = to",
            "    timeZone: UTC\n    windows: [{days: [Mon], from: \"07:00\", to: \"07:00\"}]\n"
                .to_owned(),
            "spec.schedule.windows[0]",
        ),
        (
            "schedule-no-days",
            "window without days",
            "    timeZone: UTC\n    windows: [{days: []}]\n".to_owned(),
            "spec.schedule.windows[0].days",
        ),
        (
            "schedule-no-windows",
            "no windows",
            "    timeZone: UTC\n    windows: []\n".to_owned(),
            "spec.schedule.windows",
        ),
        (
            "schedule-bad-zone",
            "time zone that is no IANA name",
            "    timeZone: \"Berlin time\"\n    windows: [{days: [Mon]}]\n".to_owned(),
            "spec.schedule.timeZone",
        ),
        (
            "schedule-bad-date",
            "exception date 2026-13-01",
            format!("{nightly}    exceptions: [{{dates: [\"2026-13-01\"], stopped: true}}]\n"),
            "spec.schedule.exceptions[0].dates[0]",
        ),
        (
            "schedule-half-range",
            "exception range without to",
            format!("{nightly}    exceptions: [{{from: \"2026-12-07\", stopped: false}}]\n"),
            "spec.schedule.exceptions[0]",
        ),
        (
            "schedule-reversed-range",
            "exception range ending before it begins",
            format!(
                "{nightly}    exceptions: [{{from: \"2026-12-11\", to: \"2026-12-07\", stopped: false}}]\n"
            ),
            "spec.schedule.exceptions[0]",
        ),
        (
            "schedule-empty-exception",
            "exception naming no day",
            format!("{nightly}    exceptions: [{{stopped: true}}]\n"),
            "spec.schedule.exceptions[0]",
        ),
        (
            "schedule-bad-after-window",
            "afterWindow Restart",
            format!("{nightly}    afterWindow: Restart\n"),
            "spec.schedule.afterWindow",
        ),
        (
            "schedule-bad-lead",
            "startLeadTime 1.5h",
            format!("{nightly}    afterWindow: Start\n    startLeadTime: 1.5h\n"),
            "spec.schedule.startLeadTime",
        ),
    ] {
        cases.push((what, scheduled(name, &schedule), needles(&[field])));
    }

    let mut problems = Vec::new();
    for (what, policy, needles) in &cases {
        let out = ctx.k.apply(&policy.yaml()).await?;
        let stderr = out.stderr.trim().to_string();
        if out.ok() {
            problems.push(format!(
                "{what}: ACCEPTED by kubectl apply (expected refusal); stdout: {}",
                out.stdout.trim()
            ));
            continue;
        }
        let missing: Vec<&String> = needles
            .iter()
            .filter(|n| !stderr.contains(n.as_str()))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{what}: refused, but stderr lacks {missing:?}: {}",
                short(&stderr)
            ));
        } else {
            eprintln!("e2e validation: {what}: refused: {}", short(&stderr));
        }
        if ctx
            .k
            .get_json(&["epp", &policy.name, "-n", &ns])
            .await?
            .is_some()
        {
            problems.push(format!(
                "{what}: policy {} exists after refusal",
                policy.name
            ));
        }
    }

    // A valid policy (http on loopback, 10,000 servers: the maximum) is accepted.
    let mut good = base("valid");
    good.endpoint = "http://127.0.0.1:9".into();
    good.stop_type = "Hard".into();
    good.ids = uuids(10_000);
    let out = ctx.k.apply(&good.yaml()).await?;
    if !out.ok() {
        problems.push(format!(
            "a valid 10,000-server policy was refused: {}",
            short(&out.stderr)
        ));
    } else if ctx
        .k
        .get_json(&["epp", "valid", "-n", &ns])
        .await?
        .is_none()
    {
        problems.push("valid policy applied but not found".into());
    }
    let selector_only = selecting(
        "valid-selector",
        &[],
        "  selector: {tags: {env: dev, Kostenstelle: Größe_1}, namePattern: \"^dev-\"}\n  maxServers: 200\n  exclude: [{id: 726fb98f-46ca-475e-917e-2563e5a8cd20}]\n",
    );
    let out = ctx.k.apply(&selector_only.yaml()).await?;
    if !out.ok() {
        problems.push(format!(
            "a valid selector-only policy was refused: {}",
            short(&out.stderr)
        ));
    }
    let small = base("valid-small");
    let out = ctx.k.apply(&small.yaml()).await?;
    if !out.ok() {
        problems.push(format!(
            "a valid 3-server https policy was refused: {}",
            short(&out.stderr)
        ));
    }
    let issue_example = scheduled(
        "valid-schedule",
        "    timeZone: Europe/Berlin
    windows:
      - {days: [Mon, Tue, Wed, Thu, Fri], from: \"19:00\", to: \"07:00\"}
      - {days: [Sat, Sun]}
      - {days: [Mon], from: \"12:00:30\", to: \"24:00\"}
    exceptions:
      - {dates: [\"2026-12-24\", \"2026-12-31\"], stopped: true}
      - {from: \"2026-12-07\", to: \"2026-12-11\", stopped: false}
    afterWindow: Start
    startLeadTime: Auto
",
    );
    let out = ctx.k.apply(&issue_example.yaml()).await?;
    if !out.ok() {
        problems.push(format!(
            "a valid schedule (weeknights, weekends, seconds, holidays, a range) was refused: {}",
            short(&out.stderr)
        ));
    }
    let mut prefixed = base("valid-path-prefix");
    prefixed.endpoint = "https://ecs.example.com:8443/proxy/ecs/".into();
    let out = ctx.k.apply(&prefixed.yaml()).await?;
    if !out.ok() {
        problems.push(format!(
            "an https endpoint with a port and a path was refused: {}",
            short(&out.stderr)
        ));
    }

    // kubectl explain: every spec field has a description. The OpenAPI publication of
    // a new CRD can lag its Established condition by a few seconds.
    let t0 = Instant::now();
    let explain = loop {
        let out = ctx.k.run(&["explain", "ecspowerpolicy.spec"], None).await?;
        if out.ok() || t0.elapsed() > Duration::from_secs(30) {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if !explain.ok() {
        problems.push(format!(
            "kubectl explain ecspowerpolicy.spec failed: {}",
            explain.stderr
        ));
    } else {
        let fields = explain_fields(&explain.stdout);
        for want in [
            "cloud",
            "servers",
            "selector",
            "exclude",
            "maxServers",
            "stopType",
            "suspend",
            "dryRun",
            "schedule",
        ] {
            match fields.iter().find(|(f, _)| f == want) {
                None => problems.push(format!(
                    "kubectl explain ecspowerpolicy.spec lists no field `{want}`"
                )),
                Some((_, d)) if d.trim().is_empty() => problems.push(format!(
                    "kubectl explain: field `{want}` has no description"
                )),
                _ => {}
            }
        }
        if !explain.stdout.contains("DESCRIPTION") {
            problems.push("kubectl explain printed no DESCRIPTION".into());
        }
    }
    for path in [
        "ecspowerpolicy.spec.cloud",
        "ecspowerpolicy.spec.schedule",
        "ecspowerpolicy.spec.schedule.windows",
        "ecspowerpolicy.spec.schedule.exceptions",
        "ecspowerpolicy.status.summary",
        "ecspowerpolicy.status.schedule",
    ] {
        let out = ctx.k.run(&["explain", path], None).await?;
        let empty: Vec<String> = explain_fields(&out.stdout)
            .into_iter()
            .filter(|(_, d)| d.trim().is_empty())
            .map(|(f, _)| f)
            .collect();
        if !out.ok() || !empty.is_empty() {
            problems.push(format!(
                "kubectl explain {path}: fields without description {empty:?} {}",
                out.stderr
            ));
        }
    }

    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.len() > 400 {
        format!("{}…", &s[..400])
    } else {
        s
    }
}

/// (field, description) pairs from the FIELDS section of `kubectl explain`.
fn explain_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut in_fields = false;
    for line in text.lines() {
        if line.starts_with("FIELDS:") {
            in_fields = true;
            continue;
        }
        if !in_fields {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ") {
            // A field line is `  name<TAB><type>`; `  enum: ...` and deeper lines describe it.
            if !rest.starts_with(' ') && rest.contains("\t<") {
                let name = rest.split_whitespace().next().unwrap_or("").to_string();
                out.push((name, String::new()));
                continue;
            }
            if let Some(last) = out.last_mut() {
                last.1.push_str(rest.trim());
                last.1.push(' ');
            }
        }
    }
    out
}
