// Command etcd is a minimal wrapper around etcd's own entry point so that the
// etcd server can be built from the published go.etcd.io/etcd/server/v3 module
// (Debian's etcd 3.4 is too old for Kubernetes v1.34).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
