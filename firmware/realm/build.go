// Package realm is the testbed's realm firmware (README.md in this
// directory): the C and assembly sources, compiled into the images cache
// by content (Build), and the table the firmware answers from, written
// per cell from the rmi model (NewTable, Table.Bytes) and read back and
// checked by ParseTable exactly as the firmware checks it. The table's
// mode makes the same binary a realm's RMM (RSI, the realm memory view)
// or, in host mode, a KVM host's (RMI answers, no stage 2).
//
// Tests: go test ./firmware/realm (builds the firmware with the host's
// cross compiler and boots it under QEMU with a dummy kernel for the
// fault paths; the fuzz target is FuzzParseTable).
package realm

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"cca-testbed/images"
	"cca-testbed/internal/proc"
	"cca-testbed/internal/timeout"
)

// Sources holds src/: the firmware's sources and Makefile, compiled in so a built
// testbed needs no checkout and the cache key is exactly what was built.
//
//go:embed src
var Sources embed.FS

// Kind is the images.Cache kind of firmware entries.
const CacheKind = "realmfw"

// BinName is the raw image in a cache entry, given to QEMU as -bios.
const BinName = "realm-fw.bin"

// recipe is part of the cache key: bump it when the way the firmware is
// built changes outside the sources.
const recipe = "realmfw 1: make with the embedded Makefile"

// ErrToolchain is wrapped when the cross compiler or make is missing.
var ErrToolchain = errors.New("realm firmware toolchain missing")

// ErrBuild is wrapped when compiling the firmware fails.
var ErrBuild = errors.New("realm firmware build failed")

// CrossCompile is the toolchain prefix scripts/setup-host installs.
const CrossCompile = "aarch64-linux-gnu-"

// Build returns the path of the firmware binary, compiling it into c
// unless an entry built from the same sources and compiler exists.
func Build(ctx context.Context, c *images.Cache) (string, error) {
	if c == nil {
		var err error
		if c, err = images.Open(""); err != nil {
			return "", err
		}
	}
	out, err := proc.Output(ctx, proc.Cmd{Argv: []string{CrossCompile + "gcc", "--version"}})
	if err != nil {
		return "", fmt.Errorf("%w: %sgcc --version: %v; run scripts/setup-host", ErrToolchain, CrossCompile, err)
	}
	compiler, _, _ := strings.Cut(string(out), "\n")
	in := images.Inputs{"recipe": []byte(recipe), "compiler": []byte(compiler)}
	err = fs.WalkDir(Sources, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Sources, p)
		in["src:"+p] = b
		return err
	})
	if err != nil {
		return "", err
	}
	dir, err := c.Get(ctx, CacheKind, in.Key("realm"), func(ctx context.Context, tmp string) error {
		return build(ctx, tmp)
	})
	if err != nil {
		return "", fmt.Errorf("realm firmware: %w", err)
	}
	return filepath.Join(dir, BinName), nil
}

// build copies the sources into tmp/src and runs make there, leaving only
// the binary and the ELF (for debugging) in tmp.
func build(ctx context.Context, tmp string) error {
	src := filepath.Join(tmp, "src")
	sub, err := fs.Sub(Sources, "src")
	if err != nil {
		return err
	}
	if err := os.CopyFS(src, sub); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout.Scaled(5*time.Minute))
	defer cancel()
	var log bytes.Buffer
	err = proc.Run(ctx, proc.Cmd{Argv: []string{"make", "-C", src, "O=" + tmp, "CROSS_COMPILE=" + CrossCompile},
		Env: append(os.Environ(), "LC_ALL=C"), Stdout: &log, Stderr: &log, Lines: 10})
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%w: %v", ErrToolchain, err)
		}
		return fmt.Errorf("%w: %v", ErrBuild, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "build.log"), log.Bytes(), 0o644); err != nil {
		return err
	}
	return os.RemoveAll(src)
}
