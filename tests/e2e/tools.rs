//! The other programs the scenarios run: helm, promql-check, promtool, kstatus and
//! argocd-health (built from their Go modules by hack/cplane, cached like kubectl),
//! podman and runc (Debian's), and hack/image.sh. A missing one is an error that
//! names it.

use crate::cluster::repo_root;
use crate::kubectl::Output;
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// `hack/cplane/cplane.sh tool-path NAME`: the cached binary, built on first use.
pub async fn go_tool(name: &str) -> Result<PathBuf> {
    let script = repo_root().join("hack/cplane/cplane.sh");
    let out = run(&script, &["tool-path", name], None).await?;
    let path = PathBuf::from(
        out.check()
            .with_context(|| format!("building {name} (hack/cplane)"))?
            .lines()
            .last()
            .with_context(|| format!("cplane tool-path {name} printed nothing"))?
            .trim(),
    );
    if !path.is_file() {
        bail!(
            "cplane tool-path {name} named {}, which does not exist",
            path.display()
        );
    }
    Ok(path)
}

/// A program from PATH, or an error naming it and the Debian package that has it.
pub fn installed(program: &str, package: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
        .with_context(|| {
            format!("{program} is not installed (Debian: apt-get install {package}; hack/test.sh installs it)")
        })
}

/// Runs `bin args` to completion, `stdin` piped in if given.
pub async fn run(bin: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("stdin of the child")?;
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe);
    }
    let out = child.wait_with_output().await?;
    let name = bin.file_name().unwrap_or(bin.as_os_str()).to_string_lossy();
    Ok(Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        cmdline: format!("{name} {}", args.join(" ")),
    })
}

/// The reference hack/image.sh gives the current sources, once that image exists.
/// The image is built before the suite (hack/test.sh runs hack/image.sh): a musl
/// release build takes minutes, longer than a scenario may.
pub async fn operator_image() -> Result<String> {
    let buildah = installed("buildah", "buildah")?;
    let script = repo_root().join("hack/image.sh");
    let reference = run(&script, &["--print-ref"], None).await?.check()?;
    let reference = reference.trim().to_owned();
    let exists = run(&buildah, &["inspect", "--type", "image", &reference], None).await?;
    if !exists.ok() {
        bail!(
            "the operator image {reference} (of the current sources) is not built: run hack/image.sh \
             (hack/test.sh does it before the tests)"
        );
    }
    Ok(reference)
}
