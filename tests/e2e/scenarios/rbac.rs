//! deploy/'s RBAC is enough for the operator (every other scenario runs it with its
//! ServiceAccount token) and no broader than needed.

use crate::cluster::{OPERATOR_NS, OPERATOR_SA};
use crate::harness::Ctx;
use crate::kubectl::Kubectl;
use anyhow::{Result, bail};

pub async fn run(ctx: Ctx) -> Result<()> {
    let sa = format!("system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}");
    let ns = ctx.ns.as_str();
    let epp = "ecspowerpolicies.ecspower.dev";
    // (verb, resource, subresource, namespace, expected)
    let checks: &[(&str, &str, Option<&str>, &str, bool)] = &[
        ("list", epp, None, ns, true),
        ("watch", epp, None, ns, true),
        ("get", epp, None, ns, true),
        ("list", epp, None, "--all-namespaces", true),
        ("patch", epp, Some("status"), ns, true),
        ("get", "secrets", None, ns, true),
        ("watch", "secrets", None, ns, true),
        ("create", "events.events.k8s.io", None, ns, true),
        ("get", "leases.coordination.k8s.io", None, OPERATOR_NS, true),
        (
            "update",
            "leases.coordination.k8s.io",
            None,
            OPERATOR_NS,
            true,
        ),
        (
            "create",
            "leases.coordination.k8s.io",
            None,
            OPERATOR_NS,
            true,
        ),
        ("update", epp, None, ns, false),
        ("patch", epp, None, ns, false),
        ("delete", epp, None, ns, false),
        ("create", epp, None, ns, false),
        ("update", epp, Some("status"), ns, false),
        ("create", "secrets", None, ns, false),
        ("update", "secrets", None, ns, false),
        ("delete", "secrets", None, ns, false),
        ("list", "pods", None, ns, false),
        ("create", "pods", None, ns, false),
        ("create", "leases.coordination.k8s.io", None, ns, false),
        ("update", "leases.coordination.k8s.io", None, ns, false),
        (
            "create",
            "leases.coordination.k8s.io",
            None,
            "kube-system",
            false,
        ),
        ("list", "configmaps", None, ns, false),
        (
            "create",
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            ns,
            false,
        ),
        (
            "create",
            "clusterrolebindings.rbac.authorization.k8s.io",
            None,
            ns,
            false,
        ),
    ];
    let mut wrong = Vec::new();
    for (verb, resource, sub, namespace, expected) in checks {
        let mut args = vec!["auth", "can-i", verb, resource, "--as", &sa];
        let ns_flag;
        if *namespace == "--all-namespaces" {
            args.push("--all-namespaces");
        } else {
            ns_flag = format!("--namespace={namespace}");
            args.push(&ns_flag);
        }
        let sub_flag;
        if let Some(sub) = sub {
            sub_flag = format!("--subresource={sub}");
            args.push(&sub_flag);
        }
        let out = ctx.k.run(&args, None).await?;
        let answer = out.stdout.trim();
        let yes = answer == "yes";
        if answer != "yes" && answer != "no" {
            wrong.push(format!(
                "{}: unexpected answer {answer:?} {}",
                out.cmdline,
                out.stderr.trim()
            ));
        } else if yes != *expected {
            wrong.push(format!(
                "can {verb} {resource}{} in {namespace}: {answer}, expected {}",
                sub.map(|s| format!("/{s}")).unwrap_or_default(),
                if *expected { "yes" } else { "no" }
            ));
        }
    }
    // The token kubeconfig the operators run with really is the ServiceAccount.
    let as_operator = Kubectl::new(ctx.k.bin.clone(), ctx.cluster.operator_kubeconfig.clone());
    let who = as_operator
        .run(
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ],
            None,
        )
        .await?;
    if who.stdout.trim() != sa {
        wrong.push(format!(
            "operator kubeconfig authenticates as {:?} ({}), not {sa}",
            who.stdout.trim(),
            who.stderr.trim()
        ));
    }
    let forbidden = as_operator.run(&["get", "pods", "-n", ns], None).await?;
    if forbidden.ok() || !forbidden.stderr.contains("forbidden") {
        wrong.push(format!(
            "operator token could list pods: {} {}",
            forbidden.stdout, forbidden.stderr
        ));
    }
    if !wrong.is_empty() {
        bail!(
            "RBAC of deploy/ differs from least privilege:\n  {}",
            wrong.join("\n  ")
        );
    }
    Ok(())
}
