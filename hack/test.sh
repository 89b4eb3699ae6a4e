#!/usr/bin/env bash
# The project's test command (README: "every test"). On a fresh machine it first
# builds what is missing, then runs formatting, lints and every test target,
# including the end-to-end suite on a real kube-apiserver + etcd (tests/e2e/).
# Nothing is skipped: a missing tool is an error that names it.
#
#   hack/test.sh            # everything
#   E2E_THREADS=2 hack/test.sh   # fewer e2e scenarios at once on a busy machine
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
current="setup"
trap 'rc=$?; printf "\nhack/test.sh: FAILED (exit %s) in step: %s\n" "$rc" "$current" >&2' ERR

t_start=$SECONDS
step() { current="$*"; printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nhack/test.sh: ERROR: %s\n' "$*" >&2; exit 1; }
timed() {
  local t0=$SECONDS
  "$@"
  printf '    (%ss)\n' "$((SECONDS - t0))" >&2
}

# --- tools a fresh machine may lack ------------------------------------------
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "cargo not found: install Rust >= 1.89 (https://rustup.rs)"
for component in rustfmt clippy; do
  sub=${component/rustfmt/fmt}
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "cargo $sub is missing and rustup is not installed to add $component"
    step "rustup component add $component"
    rustup component add "$component"
  fi
done
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null || die "go not found: Go >= 1.26 is needed to build kube-apiserver, kubectl and etcd from their modules (hack/cplane)"
command -v python3 >/dev/null || die "python3 not found (needed by the Python SDK conformance test)"

# The image scenario (tests/e2e/scenarios/image.rs): Debian's podman, buildah, runc,
# musl-tools (musl-gcc, for ring) and CA roots, and Rust's musl target.
missing_pkgs=()
for tool in podman:podman buildah:buildah runc:runc musl-gcc:musl-tools; do
  command -v "${tool%%:*}" >/dev/null || missing_pkgs+=("${tool#*:}")
done
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing_pkgs+=(ca-certificates)
if ((${#missing_pkgs[@]})); then
  command -v apt-get >/dev/null && [[ $EUID -eq 0 ]] \
    || die "missing ${missing_pkgs[*]} (Debian packages; install them, or run hack/test.sh as root on Debian)"
  step "apt-get install ${missing_pkgs[*]}"
  timed apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive timed apt-get install -y -qq "${missing_pkgs[@]}" >&2
fi
for tool in podman buildah runc musl-gcc; do
  command -v "$tool" >/dev/null || die "$tool not found after installing its package"
done
musl_target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$musl_target"; then
  command -v rustup >/dev/null || die "the Rust target $musl_target is missing and rustup is not installed to add it"
  step "rustup target add $musl_target"
  rustup target add "$musl_target"
fi

step "control-plane binaries (kube-apiserver, kubectl, etcd; cached after the first build)"
timed hack/cplane/cplane.sh build >&2

step "Go test tools: kstatus, the Argo CD health-check runner, helm, promql-check and promtool (hack/cplane; cached after the first build)"
for tool in kstatus argocd-health helm promtool; do
  timed hack/cplane/cplane.sh tool-path "$tool" >&2
done

step "operator image (hack/image.sh: musl build + buildah; reused while the sources are unchanged)"
timed hack/image.sh >&2

if [[ -f tests/sdk/setup-venv.sh ]]; then
  step "Python SDK venv (tests/sdk/setup-venv.sh)"
  timed bash tests/sdk/setup-venv.sh >&2
fi

# --- checks -------------------------------------------------------------------
step "cargo fmt --all -- --check"
timed cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
timed cargo clippy --all-targets -- -D warnings

step "cargo test --all-targets --no-fail-fast (unit, integration, end-to-end; every binary runs even if one fails)"
timed cargo test --all-targets --no-fail-fast

printf '\nhack/test.sh: all checks passed in %ss\n' "$((SECONDS - t_start))" >&2
