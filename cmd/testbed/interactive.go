package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"cca-testbed/cell"
	"cca-testbed/guest"
	"cca-testbed/internal/proc"
	"cca-testbed/vm"
)

// session is what `testbed boot` leaves for `testbed ssh`: how to reach
// the running cell, with the host key pinned.
type session struct {
	Cell    string `json:"cell"`
	Addr    string `json:"addr"`
	KeyPath string `json:"key_path"`
	HostKey string `json:"host_key"` // authorized_keys form
	Pid     int    `json:"qemu_pid"`
	// Started is the QEMU process's start time (/proc/PID/stat field 22,
	// clock ticks since boot), so a recycled pid is not taken for it.
	Started uint64 `json:"qemu_started,omitempty"`
}

const sessionFile = "session.json"

// runsDir is where `testbed boot` keeps each cell's run directory.
func runsDir(cacheFlag string) (string, error) {
	dir, err := cacheDir(cacheFlag)
	return filepath.Join(dir, "run"), err
}

func runBoot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("boot", "VARIANT/ROLE[@USERSPACE] [flags]   (real QEMU; stays up until Ctrl-C)", stdout)
	var sel selection
	sel.register(fs.FlagSet)
	var bo backendOptions
	bo.register(fs.FlagSet)
	bo.registerSeries(fs.FlagSet)
	fresh := fs.Bool("fresh", false, "boot afresh instead of resuming the saved boot of an earlier testbed boot")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := bo.loadSeries(ctx, &sel, fs.NArg()); err != nil {
		return err
	}
	defer bo.unloadSeries()
	c, err := cellArg(fs, sel)
	if err != nil {
		return err
	}
	if err := bo.onlyQemu("boot"); err != nil {
		return err
	}
	bo.resume = !*fresh
	if bo.runDir, err = runsDir(bo.cache); err != nil {
		return err
	}
	// One testbed boot per cell: a second would boot beside the first
	// and leave testbed ssh reaching only one of them.
	file := filepath.Join(bo.runDir, c.FileName(), sessionFile)
	if s, err := readSession(file); err == nil && qemuAlive(s) {
		return usagef("boot: %s is already up (QEMU pid %d, from another testbed boot): reach it with testbed ssh %s", c, s.Pid, c)
	}
	b, err := bo.backend(ctx, stderr)
	if err != nil {
		return err
	}
	if err := b.prepare(ctx, []cell.Cell{c}); err != nil {
		return cellErr(c, err)
	}
	inst, err := b.Start(ctx, c)
	if err != nil {
		return cellErr(c, err)
	}
	defer inst.Close()
	li := inst.(*vm.Instance)
	s := li.Session()
	state := filepath.Join(li.Dir(), sessionFile)
	pid := li.VM().Pid()
	started, err := proc.StartTime(pid)
	if err != nil {
		return fmt.Errorf("%s: QEMU (pid %d): %w", c, pid, err)
	}
	if err := writeJSON(state, session{Cell: c.String(), Addr: s.Addr, KeyPath: s.KeyPath, HostKey: s.HostKey, Pid: pid, Started: started}); err != nil {
		return err
	}
	defer os.Remove(state)
	fmt.Fprintf(stdout, "%s is up (SSH after %.1fs). Reach it with:\n  testbed ssh %s\n  ssh -F %s %s\nconsole: %s\nCtrl-C stops it.\n",
		c, li.BootToSSH.Seconds(), c, filepath.Join(li.Dir(), vm.SSHConfigName), vm.HostAlias(c), li.VM().Console())
	select {
	case <-ctx.Done():
		fmt.Fprintf(stdout, "stopping %s\n", c)
		return nil
	case <-li.VM().Exited():
		return fmt.Errorf("%s: QEMU ended: %w", c, li.VM().Err())
	}
}

func runSSH(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ssh", "VARIANT/ROLE[@USERSPACE] [-- COMMAND...]   (a cell started with testbed boot)", stdout)
	cache := fs.String("cache", "", "image and kernel cache the cell was booted from")
	var scale string
	scaleFlag(fs.FlagSet, &scale)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := setScale(fs.FlagSet, scale); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usagef("ssh: name the cell, e.g. testbed ssh faux/realm")
	}
	c, err := cell.Parse(fs.Arg(0))
	if err != nil {
		if c, err = seriesCell(fs.Arg(0), err); err != nil {
			return err
		}
	}
	dir, err := runsDir(*cache)
	if err != nil {
		return err
	}
	file := filepath.Join(dir, c.FileName(), sessionFile)
	s, err := readSession(file)
	if errors.Is(err, os.ErrNotExist) {
		return usagef("ssh: %s is not running: start it with testbed boot %s in another terminal (after its first boot it resumes in about a second)", c, c)
	}
	if err != nil {
		return fmt.Errorf("ssh: %w", err)
	}
	// A testbed boot that was killed leaves its session behind; its QEMU
	// died with it (parent-death signal). Say so now rather than dial a
	// port nobody listens on until the deadline.
	if !qemuAlive(s) {
		os.Remove(file)
		return fmt.Errorf("ssh: %s is not running: its QEMU (pid %d) has ended, so the testbed boot that started it is gone (session %s removed); start it again with testbed boot %s", c, s.Pid, file, c)
	}
	hk, err := guest.ParseHostKey([]byte(s.HostKey))
	if err != nil {
		return fmt.Errorf("ssh: %s: host key: %w", file, err)
	}
	g, err := guest.DialSSH(ctx, guest.SSHConfig{Addr: s.Addr, KeyPath: s.KeyPath, HostKey: hk})
	if err != nil {
		return fmt.Errorf("ssh %s: %w", c, err)
	}
	defer g.Close()
	tty := false
	if st, err := os.Stdin.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 && fs.NArg() == 1 {
		tty = true
	}
	code, err := g.Shell(ctx, tty, os.Stdin, stdout, stderr, fs.Args()[1:]...)
	if err != nil {
		return err
	}
	if code != 0 {
		return remoteExit(code)
	}
	return nil
}

func writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o600)
}

// qemuAlive reports whether the session's QEMU still runs: its pid exists,
// started when the session says, and is not a zombie.
func qemuAlive(s session) bool {
	if s.Pid <= 0 {
		return false
	}
	started, err := proc.StartTime(s.Pid)
	if err != nil {
		return false
	}
	return s.Started == 0 || started == s.Started
}

func readSession(file string) (session, error) {
	var s session
	b, err := os.ReadFile(file)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", file, err)
	}
	return s, nil
}
