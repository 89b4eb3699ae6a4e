package main

// Child processes of the control plane: started detached in their own process
// group, watched while starting, and stopped by group with a grace period.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type proc struct {
	name    string
	pidFile string
	logFile string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

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
