package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"time"
)

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
