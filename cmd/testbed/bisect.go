package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"cca-testbed/cell"
	"cca-testbed/checks"
	"cca-testbed/images"
	"cca-testbed/images/kernel"
	"cca-testbed/series"
	"cca-testbed/snapshot"
)

// runBisect finds the first patch of a series that changes a check or a
// snapshot field in one cell: it builds and boots the series one prefix
// at a time, by binary search.
func runBisect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bisect", "SERIES --role R [--field PATH | --check NAME] [flags]", stdout)
	role := fs.String("role", string(cell.Plain), "the role to boot each prefix in")
	userspace := fs.String("userspace", string(cell.DefaultUserspace), "the guest userspace")
	field := fs.String("field", "", "watch the snapshot facts at this sysfs path and below (e.g. firmware/cca), or KIND:PATH for one kind (file:firmware/cca/realm_guest)")
	check := fs.String("check", "", "watch what this check measures ("+strings.Join(checks.Names(), ", ")+")")
	var bo backendOptions
	bo.register(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("bisect: name one series (a directory, an mbox, or GIT-TREE:A..B), got %d arguments", fs.NArg())
	}
	if err := bo.onlyQemu("bisect"); err != nil {
		return err
	}
	if err := bo.check(); err != nil {
		return err
	}
	if *field != "" && *check != "" {
		return usagef("bisect: watch a --field or a --check, not both")
	}
	if *check != "" && !slices.Contains(checks.Names(), *check) {
		return usagef("bisect: unknown check %q (known: %s)", *check, strings.Join(checks.Names(), ", "))
	}
	r, err := series.Read(ctx, fs.Arg(0))
	if err != nil {
		return usagef("bisect: %v", err)
	}
	if len(r.Patches) == 0 {
		return usagef("bisect: %s has no patches", fs.Arg(0))
	}
	c := cell.Cell{Variant: cell.Variant(r.Name)}
	if c.Role, err = cell.ParseRole(*role); err != nil {
		return usagef("bisect: %v", err)
	}
	if c.Userspace, err = cell.ParseUserspace(*userspace); err != nil {
		return usagef("bisect: %v", err)
	}
	unregister, err := cell.Register(cell.VariantInfo{Name: c.Variant, Description: "series: " + r.Summary(), DACheck: r.DACheck})
	if err != nil {
		return usagef("bisect %s: %v", fs.Arg(0), err)
	}
	defer unregister()
	watch, what := watcher(*field, *check)

	cache, err := images.Open(bo.cache)
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	if bo.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	n := len(r.Patches)
	fmt.Fprintf(stdout, "bisect %s: %d patches, cell %s, watching %s\n", r.Name, n, c, what)
	snaps := map[int]*snapshot.Snapshot{}
	var buildTime, bootTime time.Duration
	start := time.Now()
	probe := func(ctx context.Context, k int) (string, error) {
		prefix := r.Prefix(k)
		label := "base (no patches)"
		if k > 0 {
			label = fmt.Sprintf("patches 1-%d (up to %s)", k, r.Patches[k-1].Label(n))
		}
		fmt.Fprintf(stderr, "bisect: building %s\n", label)
		t := time.Now()
		if _, err := kernel.BuildSeries(ctx, kernel.Options{Cache: cache, Log: logger}, prefix); err != nil {
			return "", err
		}
		built := time.Since(t)
		buildTime += built
		fmt.Fprintf(stderr, "bisect: built in %v; booting %s\n", built.Round(100*time.Millisecond), c)
		t = time.Now()
		bo.recipes = map[cell.Variant]*series.Recipe{c.Variant: prefix}
		b, err := bo.qemuBackend(stderr)
		if err != nil {
			return "", err
		}
		s, err := takeSnapshot(ctx, b, c)
		if err != nil {
			return "", err
		}
		booted := time.Since(t)
		bootTime += booted
		snaps[k] = s
		v := watch(s)
		fmt.Fprintf(stdout, "  %-3d %s (build %v, boot+snapshot %v)\n      %s\n", k, label, built.Round(100*time.Millisecond), booted.Round(100*time.Millisecond), oneLine(v))
		return v, nil
	}
	res, err := series.Bisect(ctx, n, probe)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d builds (%v building, %v booting), %v in all\n", len(res.Steps), buildTime.Round(time.Second), bootTime.Round(time.Second), time.Since(start).Round(time.Second))
	if res.First == 0 {
		fmt.Fprintf(stdout, "no patch of %s changes %s in %s: the whole series measures as the base does\n", r.Name, what, c)
		return nil
	}
	p := r.Patches[res.First-1]
	fmt.Fprintf(stdout, "first change: patch %s\n", p.Label(n))
	for _, kv := range [][2]string{{"by", p.Author}, {"date", p.Date}, {"message-id", p.MessageID}, {"commit", p.Commit}, {"from", p.Name}} {
		if kv[1] != "" {
			fmt.Fprintf(stdout, "  %-10s %s\n", kv[0], kv[1])
		}
	}
	before, after := snaps[res.First-1], snaps[res.First]
	fmt.Fprintf(stdout, "%s before it (%d patches): %s\n", what, res.First-1, oneLine(watch(before)))
	fmt.Fprintf(stdout, "%s after it  (%d patches): %s\n", what, res.First, oneLine(watch(after)))
	return snapshot.WriteDiff(stdout, fmt.Sprintf("%s with %d patches", c, res.First-1), fmt.Sprintf("%s with %d patches", c, res.First), snapshot.Diff(before, after))
}

// watcher returns what bisect compares between prefixes, and its name.
func watcher(field, check string) (func(*snapshot.Snapshot) string, string) {
	switch {
	case check != "":
		for _, ch := range checks.All {
			if ch.Name == check {
				return func(s *snapshot.Snapshot) string { v, _ := ch.Measure(s); return v }, "check " + check
			}
		}
	case field != "":
		kind, p, ok := strings.Cut(field, ":")
		if !ok {
			kind, p = "", field
		}
		p = strings.Trim(p, "/")
		return func(s *snapshot.Snapshot) string {
			var lines []string
			for _, f := range s.Facts {
				if (kind == "" || f.Kind == kind) && (f.Path == p || strings.HasPrefix(f.Path, p+"/")) {
					lines = append(lines, f.String())
				}
			}
			if len(lines) == 0 {
				return "(no facts)"
			}
			return strings.Join(lines, "\n")
		}, "field " + field
	}
	return func(s *snapshot.Snapshot) string {
		var lines []string
		for _, f := range s.Facts {
			lines = append(lines, f.String())
		}
		return strings.Join(lines, "\n")
	}, "the whole snapshot"
}

func oneLine(v string) string { return strings.ReplaceAll(v, "\n", " | ") }
