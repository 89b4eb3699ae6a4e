// Command cplane runs a real, local Kubernetes control plane (etcd +
// kube-apiserver, built from the upstream Go modules) on loopback for the
// ecs-power-operator tests, and builds the other Go tools the tests use: one
// cache layout ($EPO_CACHE/bin/<name>-<version>/) for all of them.
//
//	cplane build                      build (or reuse cached) kube-apiserver, kubectl, etcd
//	cplane up --dir DIR [--port N]    start etcd + kube-apiserver, write DIR/kubeconfig
//	cplane down --dir DIR             stop them (idempotent)
//	cplane kubectl-path               print the path of the built kubectl
//	cplane tool-path NAME             print the path of kubectl, helm, promql-check, promtool,
//	                                  kstatus or argocd-health (built on first use)
//
// It is normally invoked through hack/cplane/cplane.sh, which sets CPLANE_SRC
// to the hack/cplane directory. Standard library only. Files by job:
// build.go (module builds and their cache), up.go, down.go, procs.go (child
// processes), pki.go (certificates and kubeconfig).
package main

import (
	"fmt"
	"os"
)

const usage = `usage: cplane <command> [flags]

commands:
  build                         build kube-apiserver, kubectl and etcd into the cache (no-op if cached);
                                prints their paths
  up --dir DIR [--port N] [--timeout D]
                                start etcd + kube-apiserver on 127.0.0.1; prints the kubeconfig path last
  down --dir DIR [--grace D]    stop the control plane started in DIR (idempotent)
  kubectl-path                  print the path of the built kubectl (builds it if needed)
  tool-path NAME                print the path of the built tool NAME: kubectl, helm, promql-check, promtool,
                                kstatus or argocd-health (builds it if needed)

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
		err = buildControlPlane()
	case "kubectl-path":
		err = printToolPath("kubectl")
	case "tool-path":
		if len(args) != 1 {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		err = printToolPath(args[0])
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

func printToolPath(name string) error {
	path, err := toolPath(name)
	if err == nil {
		fmt.Println(path)
	}
	return err
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, "cplane: "+format+"\n", a...) }
