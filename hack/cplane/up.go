package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

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
	b, err := ensureControlPlane()
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
