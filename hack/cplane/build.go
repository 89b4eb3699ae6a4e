package main

// Building the binaries the tests use from their upstream Go modules, cached
// under $EPO_CACHE/bin/<name>-<version>/ and rebuilt only when a stamp (module
// files, ldflags, Go toolchain) changes.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

// bins are the control plane's binaries.
type bins struct {
	apiserver, kubectl, etcd string
	k8sVersion, etcdVersion  string
}

func srcDir() (string, error) {
	candidates := []string{os.Getenv("CPLANE_SRC")}
	if wd, err := os.Getwd(); err == nil {
		candidates = append(candidates, wd, filepath.Join(wd, "hack", "cplane"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(c, "k8s", "go.mod")); err == nil {
			return filepath.Abs(c)
		}
	}
	return "", errors.New("cannot find the hack/cplane source dir; set CPLANE_SRC or use hack/cplane/cplane.sh")
}

func cacheRoot() (string, error) {
	if c := os.Getenv("EPO_CACHE"); c != "" {
		return filepath.Abs(c)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "ecs-power-operator"), nil
}

func goBinary() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// moduleVersion extracts the required version of mod from a go.mod file.
func moduleVersion(gomod, mod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	re := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(mod) + `\s+(v\S+)`)
	m := re.FindSubmatch(data)
	if m == nil {
		return "", fmt.Errorf("%s: no requirement on %s", gomod, mod)
	}
	return string(m[1]), nil
}

// majorMinor splits "v1.34.4" into "1", "34".
func majorMinor(version string) (string, string) {
	p := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(p) < 2 {
		return "", ""
	}
	return p[0], p[1]
}

type buildSpec struct {
	name     string   // cache dir prefix, e.g. "k8s"
	modDir   string   // module to build in
	version  string   // version of the main dependency
	pkgs     []string // packages to build
	outs     []string // resulting binary names
	ldflags  string
	cacheDir string
}

func (s *buildSpec) path(out string) string { return filepath.Join(s.cacheDir, out) }

func k8sSpec(src string) (*buildSpec, error) {
	k8sVer, err := moduleVersion(filepath.Join(src, "k8s", "go.mod"), "k8s.io/kubernetes")
	if err != nil {
		return nil, err
	}
	// Version stamps as upstream's hack/lib/version.sh sets them.
	var kx []string
	major, minor := majorMinor(k8sVer)
	for _, pkg := range []string{"k8s.io/client-go/pkg/version", "k8s.io/component-base/version"} {
		kx = append(kx,
			"-X", pkg+".gitVersion="+k8sVer,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean")
	}
	return &buildSpec{
		name: "k8s", modDir: filepath.Join(src, "k8s"), version: k8sVer,
		pkgs:    []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"},
		outs:    []string{"kube-apiserver", "kubectl"},
		ldflags: "-s -w " + strings.Join(kx, " "),
	}, nil
}

func etcdSpec(src string) (*buildSpec, error) {
	etcdVer, err := moduleVersion(filepath.Join(src, "etcd", "go.mod"), "go.etcd.io/etcd/server/v3")
	if err != nil {
		return nil, err
	}
	return &buildSpec{
		name: "etcd", modDir: filepath.Join(src, "etcd"), version: etcdVer,
		pkgs: []string{"."}, outs: []string{"etcd"}, ldflags: "-s -w",
	}, nil
}

// helmSpec builds the helm CLI with the ldflags of helm's own Makefile: its
// version, and the Kubernetes version its linter and `helm template` assume
// (the client-go minor it is built with, as `1.<minor>`).
func helmSpec(src string) (*buildSpec, error) {
	dir := filepath.Join(src, "helm")
	helmVer, err := moduleVersion(filepath.Join(dir, "go.mod"), "helm.sh/helm/v3")
	if err != nil {
		return nil, err
	}
	clientGo, err := moduleVersion(filepath.Join(dir, "go.mod"), "k8s.io/client-go")
	if err != nil {
		return nil, err
	}
	_, kubeMinor := majorMinor(clientGo)
	x := []string{"-X", "helm.sh/helm/v3/internal/version.version=" + helmVer,
		"-X", "helm.sh/helm/v3/internal/version.gitTreeState=clean"}
	for _, pkg := range []string{"helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"} {
		x = append(x, "-X", pkg+".k8sVersionMajor=1", "-X", pkg+".k8sVersionMinor="+kubeMinor)
	}
	return &buildSpec{
		name: "helm", modDir: dir, version: helmVer,
		pkgs: []string{"helm.sh/helm/v3/cmd/helm"}, outs: []string{"helm"},
		ldflags: "-s -w " + strings.Join(x, " "),
	}, nil
}

// promqlSpec builds, from one Prometheus version, promql-check (main.go: its
// PromQL parser) and promtool (its rule checker and rule unit-test runner).
func promqlSpec(src string) (*buildSpec, error) {
	dir := filepath.Join(src, "promql")
	ver, err := moduleVersion(filepath.Join(dir, "go.mod"), "github.com/prometheus/prometheus")
	if err != nil {
		return nil, err
	}
	return &buildSpec{
		name: "promql", modDir: dir, version: ver,
		pkgs: []string{".", "github.com/prometheus/prometheus/cmd/promtool"},
		outs: []string{"promql-check", "promtool"},
		ldflags: "-s -w -X github.com/prometheus/common/version.Version=" + ver +
			" -X github.com/prometheus/common/version.Branch=module",
	}, nil
}

// programSpec builds a test program of the project: the main package of the
// module in <src>/<name>, named after its directory, versioned by the library it
// exercises.
func programSpec(name, library string) func(string) (*buildSpec, error) {
	return func(src string) (*buildSpec, error) {
		dir := filepath.Join(src, name)
		ver, err := moduleVersion(filepath.Join(dir, "go.mod"), library)
		if err != nil {
			return nil, err
		}
		return &buildSpec{
			name: name, modDir: dir, version: ver,
			pkgs: []string{"."}, outs: []string{name}, ldflags: "-s -w",
		}, nil
	}
}

// tools are the binaries `cplane tool-path NAME` knows, by output name.
var tools = map[string]func(string) (*buildSpec, error){
	"kubectl":      k8sSpec,
	"helm":         helmSpec,
	"promql-check": promqlSpec,
	"promtool":     promqlSpec,
	// kstatus reads live policies with the library Flux's wait and healthChecks use.
	"kstatus": programSpec("kstatus", "sigs.k8s.io/cli-utils"),
	// argocd-health runs the Argo CD health check in gopher-lua, the Lua Argo CD embeds.
	"argocd-health": programSpec("argocd-health", "github.com/yuin/gopher-lua"),
}

// ensureSpecs builds (or finds cached) every spec, one caller at a time.
func ensureSpecs(makers ...func(string) (*buildSpec, error)) ([]*buildSpec, error) {
	src, err := srcDir()
	if err != nil {
		return nil, err
	}
	root, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	var specs []*buildSpec
	for _, newSpec := range makers {
		s, err := newSpec(src)
		if err != nil {
			return nil, err
		}
		s.cacheDir = filepath.Join(root, "bin", s.name+"-"+s.version)
		specs = append(specs, s)
	}
	lock, err := lockFile(filepath.Join(root, "bin", ".build.lock"))
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	for _, s := range specs {
		if err := s.ensure(); err != nil {
			return nil, err
		}
	}
	return specs, nil
}

func ensureControlPlane() (*bins, error) {
	specs, err := ensureSpecs(k8sSpec, etcdSpec)
	if err != nil {
		return nil, err
	}
	k, e := specs[0], specs[1]
	return &bins{
		apiserver: k.path("kube-apiserver"), kubectl: k.path("kubectl"),
		etcd: e.path("etcd"), k8sVersion: k.version, etcdVersion: e.version,
	}, nil
}

// toolPath builds (if needed) the named tool and returns its path.
func toolPath(name string) (string, error) {
	newSpec, ok := tools[name]
	if !ok {
		known := make([]string, 0, len(tools))
		for n := range tools {
			known = append(known, n)
		}
		sort.Strings(known)
		return "", fmt.Errorf("unknown tool %q (known: %s)", name, strings.Join(known, ", "))
	}
	specs, err := ensureSpecs(newSpec)
	if err != nil {
		return "", err
	}
	return specs[0].path(name), nil
}

// buildControlPlane builds kube-apiserver, kubectl and etcd and prints their
// paths. The other tools are built on first use (`tool-path`).
func buildControlPlane() error {
	specs, err := ensureSpecs(k8sSpec, etcdSpec)
	if err != nil {
		return err
	}
	for _, s := range specs {
		for _, o := range s.outs {
			fmt.Println(s.path(o))
		}
	}
	return nil
}

// lockFile takes an exclusive flock so concurrent callers don't build twice.
func lockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stamp identifies a build: module files, the module's own main.go if it has
// one (each program is that one file), ldflags, Go toolchain, platform.
func (s *buildSpec) stamp(goVersion string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(s.modDir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(data))
		h.Write(data)
	}
	if data, err := os.ReadFile(filepath.Join(s.modDir, "main.go")); err == nil {
		h.Write(data)
	} else if !os.IsNotExist(err) {
		return "", err
	}
	fmt.Fprintf(h, "pkgs=%q ldflags=%q go=%s %s/%s\n", s.pkgs, s.ldflags, goVersion, runtime.GOOS, runtime.GOARCH)
	return fmt.Sprintf("%s %s %s\n", s.name, s.version, hex.EncodeToString(h.Sum(nil))[:16]), nil
}

func (s *buildSpec) ensure() error {
	goBin := goBinary()
	// Cheap check first: "go env GOVERSION" costs ~10ms.
	out, err := exec.Command(goBin, "env", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("running %s env GOVERSION: %v", goBin, err)
	}
	want, err := s.stamp(strings.TrimSpace(string(out)))
	if err != nil {
		return err
	}
	marker := filepath.Join(s.cacheDir, ".version")
	if have, err := os.ReadFile(marker); err == nil && string(have) == want {
		ok := true
		for _, o := range s.outs {
			if st, err := os.Stat(filepath.Join(s.cacheDir, o)); err != nil || st.Mode()&0o111 == 0 {
				ok = false
			}
		}
		if ok {
			return nil
		}
	}
	logf("building %s %s into %s (this takes a while on a cold cache)...", s.name, s.version, s.cacheDir)
	start := time.Now()
	tmp, err := os.MkdirTemp(filepath.Dir(s.cacheDir), "."+s.name+"-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	args := []string{"build", "-trimpath", "-ldflags", s.ldflags, "-o", tmp + string(os.PathSeparator)}
	args = append(args, s.pkgs...)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = s.modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s failed: %v", s.modDir, err)
	}
	if err := os.MkdirAll(s.cacheDir, 0o755); err != nil {
		return err
	}
	os.Remove(marker)
	for _, o := range s.outs {
		if err := os.Rename(filepath.Join(tmp, o), filepath.Join(s.cacheDir, o)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(marker, []byte(want), 0o644); err != nil {
		return err
	}
	logf("built %s %s in %s", s.name, s.version, time.Since(start).Round(time.Second))
	return nil
}
