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
	sel.register(fs)
	var bo backendOptions
	bo.register(fs)
	fresh := fs.Bool("fresh", false, "boot afresh instead of resuming the saved boot of an earlier testbed boot")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := cellArg(fs, sel)
	if err != nil {
		return err
	}
	bo.name = "qemu"
	bo.resume = !*fresh
	if bo.runDir, err = runsDir(bo.cache); err != nil {
		return err
	}
	b, err := bo.backend(ctx, stderr)
	if err != nil {
		return err
	}
	if err := b.prepare(ctx, []cell.Cell{c}); err != nil {
		return err
	}
	inst, err := b.Start(ctx, c)
	if err != nil {
		return err
	}
	defer inst.Close()
	li := inst.(*vm.Instance)
	s := li.Session()
	state := filepath.Join(li.Dir(), sessionFile)
	if err := writeJSON(state, session{Cell: c.String(), Addr: s.Addr, KeyPath: s.KeyPath, HostKey: s.HostKey, Pid: li.VM().Pid()}); err != nil {
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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usagef("ssh: name the cell, e.g. testbed ssh faux/realm")
	}
	c, err := cell.Parse(fs.Arg(0))
	if err != nil {
		return err
	}
	dir, err := runsDir(*cache)
	if err != nil {
		return err
	}
	var s session
	b, err := os.ReadFile(filepath.Join(dir, c.FileName(), sessionFile))
	if errors.Is(err, os.ErrNotExist) {
		return usagef("ssh: %s is not running: start it with testbed boot %s in another terminal (after its first boot it resumes in about a second)", c, c)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("ssh: %s: %w", filepath.Join(dir, c.FileName(), sessionFile), err)
	}
	hk, err := guest.ParseHostKey([]byte(s.HostKey))
	if err != nil {
		return err
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
