package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"cca-testbed/images"
	"cca-testbed/images/firmware"
)

// runFirmware lists the Arm firmware builds, or builds them (cached) and
// prints where their flash images are, for --machine rme --firmware.
func runFirmware(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("firmware", "[--build NAME[,NAME]|all] [flags]", stdout)
	build := fs.String("build", "", `build these firmware builds (cached) and print their flash images; "all" for every one`)
	pathOnly := fs.Bool("path", false, "print only each flash image's path, one a line (for --firmware)")
	src := fs.String("firmware-src", "", "directory of the TF-A and TF-RMM tarballs or checkouts (default $"+firmware.SourcesEnv+", else ../shared/firmware-src beside the repository)")
	cache := fs.String("cache", "", "image and kernel cache (default $CCA_TESTBED_CACHE or $XDG_CACHE_HOME/cca-testbed)")
	verbose := fs.Bool("v", false, "log the build's progress to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("firmware: takes no arguments (use --build NAME)")
	}
	if *build == "" {
		if *pathOnly {
			return usagef("firmware: --path needs --build")
		}
		for _, s := range firmware.Specs() {
			fmt.Fprintf(stdout, "%-11s TF-A %s + TF-RMM v%s, %s\n", s.Name, s.TFAVersion, s.RMMVersion, s.Implements)
		}
		return nil
	}
	specs, err := firmwareSpecs(*build)
	if err != nil {
		return err
	}
	c, err := images.Open(*cache)
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	c.Log = logger
	for _, s := range specs {
		fw, err := firmware.Build(ctx, firmware.Options{Cache: c, Sources: *src, Log: logger}, s)
		if err != nil {
			if errors.Is(err, firmware.ErrSource) && *src == "" {
				return fmt.Errorf("%w (or pass --firmware-src DIR)", err)
			}
			return err
		}
		if *pathOnly {
			fmt.Fprintln(stdout, fw.Flash)
			continue
		}
		fmt.Fprintln(stdout, fw.Info)
		fmt.Fprintf(stdout, "  flash:   %s\n", fw.Flash)
		fmt.Fprintf(stdout, "  boot:    --machine rme --firmware %s (QEMU: -bios FLASH -device loader,file=Image,addr=%s,force-raw=on)\n", fw.Flash, fw.KernelBase)
		fmt.Fprintf(stdout, "  sources: %s\n", strings.Join(fw.Sources, "; "))
		fmt.Fprintf(stdout, "  built:   %s in build root %s; log %s\n", fw.Toolchain, fw.BuildRoot, fw.Log)
	}
	return nil
}

// firmwareSpecs reads --build: names separated by commas, or "all".
func firmwareSpecs(arg string) ([]firmware.Spec, error) {
	names := split(arg) // drops "all"
	if len(names) == 0 {
		return firmware.Specs(), nil
	}
	var specs []firmware.Spec
	for _, n := range names {
		s, err := firmware.Lookup(n)
		if err != nil {
			return nil, usagef("--build: %v", err)
		}
		specs = append(specs, s)
	}
	return specs, nil
}
