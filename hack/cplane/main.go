// Command cplane runs a real, local Kubernetes control plane (etcd +
// kube-apiserver, built from the upstream Go modules) on loopback for the
// ecs-power-operator tests.
//
//	cplane build                      build (or reuse cached) kube-apiserver, kubectl, etcd
//	cplane up --dir DIR [--port N]    start etcd + kube-apiserver, write DIR/kubeconfig
//	cplane down --dir DIR             stop them (idempotent)
//	cplane kubectl-path               print the path of the built kubectl
//
// It is normally invoked through hack/cplane/cplane.sh, which sets CPLANE_SRC
// to the hack/cplane directory. Standard library only.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: cplane <command> [flags]

commands:
  build                         build kube-apiserver, kubectl and etcd into the cache (no-op if cached)
  up --dir DIR [--port N] [--timeout D]
                                start etcd + kube-apiserver on 127.0.0.1; prints the kubeconfig path last
  down --dir DIR [--grace D]    stop the control plane started in DIR (idempotent)
  kubectl-path                  print the path of the built kubectl (builds it if needed)

environment:
  EPO_CACHE    cache root (default $HOME/.cache/ecs-power-operator); binaries go to $EPO_CACHE/bin/
  CPLANE_SRC   the hack/cplane source directory (set by cplane.sh)
  GO           go binary to build with (default: go on PATH, else /usr/local/go/bin/go)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "build":
		var b *bins
		if b, err = ensureBuilt(); err == nil {
			fmt.Println(b.apiserver)
			fmt.Println(b.kubectl)
			fmt.Println(b.etcd)
		}
	case "kubectl-path":
		var b *bins
		if b, err = ensureBuilt(); err == nil {
			fmt.Println(b.kubectl)
		}
	case "up":
		err = cmdUp(args)
	case "down":
		err = cmdDown(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		logf("error: %v", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "cplane: "+format+"\n", a...) }

// ---------------------------------------------------------------- building

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

type buildSpec struct {
	name     string   // cache dir prefix, e.g. "k8s"
	modDir   string   // module to build in
	version  string   // version of the main dependency
	pkgs     []string // packages to build
	outs     []string // resulting binary names
	ldflags  string
	goVer    string
	cacheDir string
}

func ensureBuilt() (*bins, error) {
	src, err := srcDir()
	if err != nil {
		return nil, err
	}
	root, err := cacheRoot()
	if err != nil {
		return nil, err
	}
	k8sVer, err := moduleVersion(filepath.Join(src, "k8s", "go.mod"), "k8s.io/kubernetes")
	if err != nil {
		return nil, err
	}
	etcdVer, err := moduleVersion(filepath.Join(src, "etcd", "go.mod"), "go.etcd.io/etcd/server/v3")
	if err != nil {
		return nil, err
	}
	// Version stamps as upstream's hack/lib/version.sh sets them.
	var kx []string
	major, minor := "", ""
	if p := strings.SplitN(strings.TrimPrefix(k8sVer, "v"), ".", 3); len(p) >= 2 {
		major, minor = p[0], p[1]
	}
	for _, pkg := range []string{"k8s.io/client-go/pkg/version", "k8s.io/component-base/version"} {
		kx = append(kx,
			"-X", pkg+".gitVersion="+k8sVer,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean")
	}
	specs := []*buildSpec{
		{
			name: "k8s", modDir: filepath.Join(src, "k8s"), version: k8sVer,
			pkgs:    []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kubectl"},
			outs:    []string{"kube-apiserver", "kubectl"},
			ldflags: "-s -w " + strings.Join(kx, " "),
		},
		{
			name: "etcd", modDir: filepath.Join(src, "etcd"), version: etcdVer,
			pkgs:    []string{"."},
			outs:    []string{"etcd"},
			ldflags: "-s -w",
		},
	}
	lock, err := lockFile(filepath.Join(root, "bin", ".build.lock"))
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	for _, s := range specs {
		s.cacheDir = filepath.Join(root, "bin", s.name+"-"+s.version)
		if err := s.ensure(); err != nil {
			return nil, err
		}
	}
	k, e := specs[0].cacheDir, specs[1].cacheDir
	return &bins{
		apiserver: filepath.Join(k, "kube-apiserver"), kubectl: filepath.Join(k, "kubectl"),
		etcd: filepath.Join(e, "etcd"), k8sVersion: k8sVer, etcdVersion: etcdVer,
	}, nil
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

// stamp identifies a build: module files, ldflags, Go toolchain, platform.
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
	if s.name == "etcd" {
		data, err := os.ReadFile(filepath.Join(s.modDir, "main.go"))
		if err != nil {
			return "", err
		}
		h.Write(data)
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

// ---------------------------------------------------------------- up

type proc struct {
	name    string
	pidFile string
	logFile string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

func cmdUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (required)")
	port := fs.Int("port", 0, "kube-apiserver secure port (default: a free port)")
	timeout := fs.Duration("timeout", 90*time.Second, "how long to wait for /readyz")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("up: --dir is required")
	}
	d, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	for _, n := range []string{"etcd", "kube-apiserver"} {
		if pid, ok := livePid(filepath.Join(d, n+".pid"), n); ok {
			return fmt.Errorf("%s already running in %s (pid %d); run 'cplane down --dir %s' first", n, d, pid, d)
		}
	}
	b, err := ensureBuilt()
	if err != nil {
		return err
	}
	start := time.Now()

	pki, err := genPKI(filepath.Join(d, "pki"))
	if err != nil {
		return fmt.Errorf("generating certificates: %v", err)
	}
	etcdClient, err := freePort()
	if err != nil {
		return err
	}
	etcdPeer, err := freePort()
	if err != nil {
		return err
	}
	apiPort := *port
	if apiPort == 0 {
		if apiPort, err = freePort(); err != nil {
			return err
		}
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	var procs []*proc
	fail := func(err error, show ...*proc) error {
		for i := len(procs) - 1; i >= 0; i-- {
			stopProc(procs[i])
		}
		for _, p := range show {
			fmt.Fprintf(os.Stderr, "----- last lines of %s -----\n", p.logFile)
			fmt.Fprint(os.Stderr, tail(p.logFile, 40))
			fmt.Fprintf(os.Stderr, "----- end of %s -----\n", p.logFile)
		}
		return err
	}
	// Clean up on Ctrl-C / SIGTERM while starting.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()

	etcd, err := startProc(d, "etcd", b.etcd,
		"--name=cplane",
		"--data-dir="+filepath.Join(d, "etcd-data"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=cplane="+peerURL,
		"--initial-cluster-state=new",
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes=8589934592",
	)
	if err != nil {
		return fail(err)
	}
	procs = append(procs, etcd)
	if err := waitFor(ctx, 30*time.Second, []*proc{etcd}, func() error {
		return httpOK(http.DefaultClient, etcdURL+"/health")
	}); err != nil {
		return fail(fmt.Errorf("etcd did not become healthy: %v", err), etcd)
	}

	api, err := startProc(d, "kube-apiserver", b.apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(d, "pki", "apiserver-generated"),
		"--tls-cert-file="+pki.serverCert,
		"--tls-private-key-file="+pki.serverKey,
		"--client-ca-file="+pki.caCert,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki.saPub,
		"--service-account-signing-key-file="+pki.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// 127.0.0.1 is not a valid Endpoints address; there is no cluster
		// network anyway, so don't maintain the "kubernetes" Endpoints.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	)
	if err != nil {
		return fail(err, etcd)
	}
	procs = append(procs, api)

	kc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.clientTLS}}
	if err := waitFor(ctx, *timeout, procs, func() error {
		return httpOK(kc, server+"/readyz")
	}); err != nil {
		show := []*proc{api}
		if processExited(etcd) {
			show = []*proc{etcd, api}
		}
		return fail(fmt.Errorf("kube-apiserver did not become ready: %v", err), show...)
	}

	kubeconfig := filepath.Join(d, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, pki); err != nil {
		return fail(err)
	}
	env := fmt.Sprintf("KUBECONFIG=%s\nKUBECTL=%s\nKUBE_APISERVER=%s\nETCD_ENDPOINT=%s\nK8S_VERSION=%s\nETCD_VERSION=%s\n",
		kubeconfig, b.kubectl, server, etcdURL, b.k8sVersion, b.etcdVersion)
	if err := os.WriteFile(filepath.Join(d, "env"), []byte(env), 0o644); err != nil {
		return fail(err)
	}
	logf("control plane ready in %s: kube-apiserver %s at %s (pid %d), etcd %s at %s (pid %d)",
		time.Since(start).Round(10*time.Millisecond), b.k8sVersion, server, api.cmd.Process.Pid,
		b.etcdVersion, etcdURL, etcd.cmd.Process.Pid)
	logf("logs: %s/{etcd,kube-apiserver}.log; env: %s/env; stop with: cplane down --dir %s", d, d, d)
	fmt.Println(kubeconfig)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startProc starts bin detached in its own session/process group, logging to
// DIR/name.log and recording its pid in DIR/name.pid.
func startProc(dir, name, bin string, args ...string) (*proc, error) {
	p := &proc{
		name:    name,
		pidFile: filepath.Join(dir, name+".pid"),
		logFile: filepath.Join(dir, name+".log"),
		exited:  make(chan struct{}),
	}
	logF, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logF.Close()
	fmt.Fprintf(logF, "# %s %s\n", bin, strings.Join(args, " "))
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = devnull, logF, logF
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // new session => own process group, pgid == pid
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %v", name, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(p.cmd.Process.Pid)+"\n"), 0o644); err != nil {
		stopProc(p)
		return nil, err
	}
	return p, nil
}

func processExited(p *proc) bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func stopProc(p *proc) {
	if !processExited(p) {
		killGroup(p.cmd.Process.Pid, 5*time.Second)
		select {
		case <-p.exited:
		case <-time.After(2 * time.Second):
		}
	}
	os.Remove(p.pidFile)
}

func waitFor(ctx context.Context, timeout time.Duration, watch []*proc, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		for _, p := range watch {
			if processExited(p) {
				return fmt.Errorf("%s exited: %v", p.name, p.waitErr)
			}
		}
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s: %v", timeout, last)
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func httpOK(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)\n", path, err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(empty)\n"
	}
	return strings.Join(lines, "\n") + "\n"
}

// ---------------------------------------------------------------- down

func cmdDown(args []string) error {
	fs := flag.NewFlagSet("down", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (required)")
	grace := fs.Duration("grace", 10*time.Second, "time to wait after SIGTERM before SIGKILL")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("down: --dir is required")
	}
	d, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	// API server first, then its storage.
	for _, n := range []string{"kube-apiserver", "etcd"} {
		pidFile := filepath.Join(d, n+".pid")
		if pid, ok := livePid(pidFile, n); ok {
			logf("stopping %s (process group %d)", n, pid)
			killGroup(pid, *grace)
		}
		if err := os.Remove(pidFile); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// livePid reads a pid file and reports whether that pid is a live process
// running the expected binary (guards against pid reuse).
func livePid(pidFile, name string) (int, bool) {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	argv0 := string(bytes.SplitN(cmdline, []byte{0}, 2)[0])
	if filepath.Base(argv0) != name {
		return 0, false
	}
	return pid, len(groupMembers(pid)) > 0
}

// groupMembers lists non-zombie processes whose process group is pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces/parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killGroup sends SIGTERM to the process group, waits up to grace for it to
// disappear, then SIGKILLs whatever is left.
func killGroup(pgid int, grace time.Duration) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if len(groupMembers(pgid)) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf("process group %d still alive after %s; sending SIGKILL", pgid, grace)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for i := 0; i < 50 && len(groupMembers(pgid)) > 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- PKI

type pkiFiles struct {
	caCert, serverCert, serverKey, adminCert, adminKey, saKey, saPub string
	caPEM, adminCertPEM, adminKeyPEM                                 []byte
	clientTLS                                                        *tls.Config
}

func genPKI(dir string) (*pkiFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pkiFiles{
		caCert: filepath.Join(dir, "ca.crt"), serverCert: filepath.Join(dir, "apiserver.crt"),
		serverKey: filepath.Join(dir, "apiserver.key"), adminCert: filepath.Join(dir, "admin.crt"),
		adminKey: filepath.Join(dir, "admin.key"), saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"),
	}
	now := time.Now().Add(-time.Hour)
	notAfter := now.Add(10 * 365 * 24 * time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "cplane-ca"},
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(p.caCert, p.caPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, "ca.key"), caKey); err != nil {
		return nil, err
	}

	leaf := func(tmpl *x509.Certificate, certPath, keyPath string) ([]byte, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial(), now, notAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
			return nil, nil, err
		}
		if err := writeKey(keyPath, key); err != nil {
			return nil, nil, err
		}
		keyPEM, _ := os.ReadFile(keyPath)
		return certPEM, keyPEM, nil
	}
	if _, _, err := leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback, net.ParseIP("10.0.0.1")},
	}, p.serverCert, p.serverKey); err != nil {
		return nil, err
	}
	if p.adminCertPEM, p.adminKeyPEM, err = leaf(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, p.adminCert, p.adminKey); err != nil {
		return nil, err
	}

	// Service-account token signing key pair (ES256).
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeKey(p.saKey, saKey); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, err
	}

	pair, err := tls.X509KeyPair(p.adminCertPEM, p.adminKeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	p.clientTLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
	return p, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n.Add(n, big.NewInt(1))
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeKubeconfig(path, server string, p *pkiFiles) error {
	b64 := base64.StdEncoding.EncodeToString
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cplane
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: cplane
  context:
    cluster: cplane
    user: admin
    namespace: default
current-context: cplane
`, server, b64(p.caPEM), b64(p.adminCertPEM), b64(p.adminKeyPEM))
	return os.WriteFile(path, []byte(cfg), 0o600)
}
