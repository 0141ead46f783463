package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"cca-testbed/internal/proc"
)

// isolate are unshare's options for every build step: a private mount
// namespace (every mount made inside disappears with its last process)
// and a PID namespace whose init is killed with unshare (--kill-child),
// so stopping unshare ends every compiler below it, even those that
// ignore SIGTERM.
var isolate = []string{"--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", "--"}

// runLogged runs a host tool through internal/proc (its own process
// group, stopped whole on cancellation and when the testbed dies) with
// its output appended to log. The error is short: the log holds the
// output, and callers quote its tail.
func runLogged(ctx context.Context, log io.Writer, name string, args ...string) error {
	fmt.Fprintf(log, "\n$ %s %s\n", name, strings.Join(args, " "))
	err := proc.Run(ctx, proc.Cmd{Argv: append([]string{name}, args...), Stdout: log, Stderr: log})
	var pe *proc.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", name, pe.Err)
	}
	return err
}

// tailOf is the last n non-empty lines of a log file joined with " | ":
// short enough for a one-line error, usually enough to see why.
func tailOf(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// chrootScript runs as root in the private namespaces: it mounts the
// build root $1 read-only at $2, gives it a fresh /proc, the host's /dev,
// and tmpfs on /tmp and /build (the work tree: it vanishes with the
// namespace, so neither a finished nor a cancelled build has thousands of
// files to delete), binds the output directory $3 at /build/out, unpacks
// the sources (triples after $4: tar|dir, path, project) into /build/src
// with the host's tools, and runs /build/out/build.sh chrooted, with a
// clean environment.
const chrootScript = `set -eu
root=$1 mnt=$2 out=$3 jobs=$4
shift 4
mount --bind "$root" "$mnt"
mount -o remount,bind,ro "$mnt"
mount -t proc proc "$mnt/proc"
mount --bind /dev "$mnt/dev"
mount -t tmpfs -o mode=1777 tmpfs "$mnt/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$mnt/build"
mkdir "$mnt/build/src" "$mnt/build/out"
mount --bind "$out" "$mnt/build/out"
while [ $# -ge 3 ]; do
	echo "` + stageMarker + `stage unpack $2"
	case $1 in
	tar) tar -xJf "$2" -C "$mnt/build/src" --no-same-owner ;;
	dir) cp -a "$2" "$mnt/build/src/$3" ;;
	esac
	[ -d "$mnt/build/src/$3" ] || { echo "$2 holds no $3/ directory"; exit 1; }
	shift 3
done
exec chroot "$mnt" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LC_ALL=C.UTF-8 JOBS="$jobs" /bin/sh -eu /build/out/build.sh
`

// runInRoot runs out/build.sh chrooted into root (read-only) with the
// sources unpacked in /build/src and out at /build/out; mnt (an empty
// directory) is the mount point.
func runInRoot(ctx context.Context, log io.Writer, root, mnt, out string, jobs int, srcs []resolved) error {
	args := append(append([]string{}, isolate...), "/bin/sh", "-c", chrootScript, "sh", root, mnt, out, fmt.Sprint(jobs))
	for _, s := range srcs {
		kind := "tar"
		if s.checkout {
			kind = "dir"
		}
		args = append(args, kind, s.path, s.Project)
	}
	return runLogged(ctx, log, "unshare", args...)
}
