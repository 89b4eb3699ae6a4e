//! The Argo CD health check of EcsPowerPolicy (deploy/argocd/), run by gopher-lua, the
//! Lua runtime Argo CD embeds (hack/cplane/argocd-health), on the cases of its
//! health_test.yaml: status objects captured from the e2e scenario `gitops`. Needs Go
//! (the runner is built from the Go module proxy and cached); without it the test
//! fails and says so.

use std::path::Path;
use std::process::Command;

const CHECK_DIR: &str = "deploy/argocd/resource_customizations/ecspower.dev/EcsPowerPolicy";

#[test]
fn health_check_passes_its_argocd_test_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("hack/cplane/cplane.sh"))
        .args(["run", "argocd-health", "test"])
        .arg(root.join(CHECK_DIR))
        .output()
        .expect("run hack/cplane/cplane.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Argo CD health check failed its cases ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let cases = std::fs::read_to_string(root.join(CHECK_DIR).join("health_test.yaml"))
        .expect("health_test.yaml");
    let expected = cases.matches("inputPath:").count();
    assert!(expected >= 9, "health_test.yaml lost cases: {expected}");
    assert!(
        stdout.contains(&format!("{expected} of {expected} cases passed")),
        "not every case ran:\n{stdout}"
    );
    for status in ["Healthy", "Progressing", "Degraded", "Suspended"] {
        assert!(
            cases.contains(&format!("status: {status}")),
            "no {status} case in health_test.yaml"
        );
    }
}
