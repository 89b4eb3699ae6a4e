#!/usr/bin/env bash
# Builds the operator's container image on this machine, without a registry:
# a static musl binary packed FROM scratch with CA roots and a nonroot user
# (65532), by buildah. The same layout as the Dockerfile (see README, "Container
# image").
#
#   hack/image.sh                       # build, or reuse the image of the same sources; prints its reference
#   hack/image.sh --oci-archive FILE    # also write the image as an OCI archive to FILE
#   hack/image.sh --print-ref           # print the reference the current sources get; build nothing
#
# The reference is localhost/ecs-power-operator:<version>-<key>, where <key>
# hashes everything the image is made of (Cargo.toml, Cargo.lock, src/, the
# rootfs files, the CA bundle, this script): an unchanged image is not rebuilt.
# It is also tagged localhost/ecs-power-operator:<version>, the tag
# deploy/base/deployment.yaml names.
#
# Needs: cargo with the x86_64-unknown-linux-musl target (rustup target add),
# musl-gcc (Debian: musl-tools; ring compiles C), buildah, and the CA bundle
# /etc/ssl/certs/ca-certificates.crt (Debian: ca-certificates). The musl build
# goes to $CARGO_TARGET_DIR (default target/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=x86_64-unknown-linux-musl
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ROOTFS="$ROOT/hack/image/rootfs"
NAME=localhost/ecs-power-operator

die() { printf 'hack/image.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'hack/image.sh: %s\n' "$*" >&2; }

archive="" print_ref=""
while (($#)); do
  case "$1" in
    --oci-archive) [[ $# -ge 2 ]] || die "--oci-archive needs a file name"; archive="$2"; shift 2 ;;
    --oci-archive=*) archive="${1#*=}"; shift ;;
    --print-ref) print_ref=1; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
[[ -f "$CA_BUNDLE" ]] || die "missing $CA_BUNDLE: install Debian's ca-certificates"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -1)"
[[ -n "$version" ]] || die "no version in Cargo.toml"
key="$(
  cd "$ROOT"
  {
    find Cargo.toml Cargo.lock src hack/image -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum "$CA_BUNDLE" hack/image.sh
  } | sha256sum | cut -c1-12
)"
ref="$NAME:$version-$key"
if [[ -n "$print_ref" ]]; then
  echo "$ref"
  exit 0
fi

command -v buildah >/dev/null || die "buildah not found (Debian: apt-get install buildah)"

if buildah inspect --type image "$ref" >/dev/null 2>&1; then
  log "$ref is up to date (same sources); not rebuilt"
else
  command -v cargo >/dev/null || die "cargo not found"
  command -v musl-gcc >/dev/null || die "musl-gcc not found (Debian: apt-get install musl-tools)"
  if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
    die "the Rust target $TARGET is not installed: rustup target add $TARGET"
  fi
  t0=$SECONDS
  # Static: musl links statically by default; ring's C parts need a musl C compiler.
  (cd "$ROOT" && CC_x86_64_unknown_linux_musl=musl-gcc CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target "$TARGET" --bin ecs-power-operator)
  bin="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/ecs-power-operator"
  [[ -x "$bin" ]] || die "cargo did not produce $bin"
  if readelf -l "$bin" | grep -q 'program interpreter'; then
    die "$bin is dynamically linked; the image has no libc"
  fi
  log "binary built in $((SECONDS - t0))s"

  stage="$(mktemp -d)"
  ctr=""
  cleanup() {
    rm -rf "$stage"
    [[ -z "$ctr" ]] || buildah rm "$ctr" >/dev/null 2>&1 || true
  }
  trap cleanup EXIT
  cp -a "$ROOTFS/." "$stage/"
  install -D -m 0644 "$CA_BUNDLE" "$stage/etc/ssl/certs/ca-certificates.crt"
  install -D -m 0755 "$bin" "$stage/ecs-power-operator"
  chmod 0644 "$stage/etc/passwd" "$stage/etc/group"

  ctr="$(buildah from scratch)"
  buildah copy --quiet "$ctr" "$stage/" / >/dev/null
  buildah config \
    --user 65532:65532 \
    --entrypoint '["/ecs-power-operator"]' \
    --cmd run \
    --port 8080/tcp \
    --label org.opencontainers.image.title=ecs-power-operator \
    --label org.opencontainers.image.version="$version" \
    --label dev.ecspower.source-key="$key" \
    "$ctr"
  buildah commit --quiet --timestamp 0 "$ctr" "$ref" >/dev/null
  log "committed $ref in $((SECONDS - t0))s"
  # Images of earlier sources are not used again; a rebuild of one costs seconds.
  buildah images --format '{{.Name}}:{{.Tag}}' | grep -E "^$NAME:$version-[0-9a-f]{12}\$" \
    | grep -vx "$ref" | xargs -r buildah rmi >/dev/null 2>&1 || true
fi
buildah tag "$ref" "$NAME:$version"

if [[ -n "$archive" ]]; then
  rm -f "$archive"
  buildah push --quiet "$ref" "oci-archive:$archive:$ref"
  log "wrote OCI archive $archive ($(du -h "$archive" | cut -f1))"
fi
echo "$ref"
