package kernel

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"cca-testbed/images"
	"cca-testbed/internal/proc"
	"cca-testbed/series"
)

// UserspaceDirName is the directory at the root of a modules disk that
// holds a recipe's userspace part, laid out as the guest's root. The
// rootfs mounts the disk on /usr/lib/modules and copies this tree into /
// before systemd-udevd starts (images.ModulesDiskUnit), so its udev rules
// act at coldplug. depmod and modprobe look only in <release>/.
const UserspaceDirName = "cca-userspace"

// userspaceRecipe is part of the key of a kernel with a userspace part.
const userspaceRecipe = "userspace 1: the kernel's modules.ext4 plus cca-userspace/<guest path>, written with debugfs"

// withUserspace returns k with a modules disk that also holds files (a
// recipe's userspace part): a cache entry of its own, keyed by the
// kernel's entry and the files, so the kernel is not rebuilt when only a
// rule changes, and the kernel's own entry is never written.
func withUserspace(ctx context.Context, cache *images.Cache, name string, k *Kernel, files []series.UserspaceFile) (*Kernel, error) {
	if len(files) == 0 {
		return k, nil
	}
	in := images.Inputs{"recipe": []byte(userspaceRecipe), "kernel": []byte(filepath.Base(k.Dir))}
	for _, f := range files {
		rel := strings.TrimPrefix(f.GuestPath, "/")
		if err := series.CheckGuestPath(rel); err != nil {
			return nil, fmt.Errorf("userspace file %s: %w", f.GuestPath, err)
		}
		in["file:"+rel] = f.Data
	}
	dir, err := cache.Get(ctx, Kind, in.Key(name+"-userspace"), func(ctx context.Context, tmp string) error {
		disk := filepath.Join(tmp, ModulesName)
		if err := copyFile(k.ModulesDisk, disk); err != nil {
			return err
		}
		return addFiles(ctx, disk, filepath.Join(tmp, "files"), files)
	})
	if err != nil {
		return nil, fmt.Errorf("kernel %s: userspace part: %w", name, err)
	}
	out := *k
	out.ModulesDisk = filepath.Join(dir, ModulesName)
	return &out, nil
}

// addFiles writes files into the ext4 image disk under UserspaceDirName,
// owned by root, mode 0644, and reads each back: debugfs reports its
// errors on stderr and still exits 0, so what it wrote is checked, not
// assumed. stage holds the files' contents under plain names while
// debugfs reads them.
func addFiles(ctx context.Context, disk, stage string, files []series.UserspaceFile) error {
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	var script strings.Builder
	made := map[string]bool{}
	var mkdir func(d string)
	mkdir = func(d string) {
		if d == "." || d == "/" || made[d] {
			return
		}
		mkdir(path.Dir(d))
		made[d] = true
		fmt.Fprintf(&script, "mkdir %s\nsif %s uid 0\nsif %s gid 0\nsif %s mode 040755\n", d, d, d, d)
	}
	for i, f := range files {
		dst := path.Join(UserspaceDirName, strings.TrimPrefix(f.GuestPath, "/"))
		src := "f" + strconv.Itoa(i)
		if err := os.WriteFile(filepath.Join(stage, src), f.Data, 0o644); err != nil {
			return err
		}
		mkdir(path.Dir(dst))
		fmt.Fprintf(&script, "write %s %s\nsif %s uid 0\nsif %s gid 0\nsif %s mode 0100644\n", src, dst, dst, dst, dst)
	}
	if err := os.WriteFile(filepath.Join(stage, "script"), []byte(script.String()), 0o600); err != nil {
		return err
	}
	var stderr bytes.Buffer
	if err := proc.Run(ctx, proc.Cmd{Argv: []string{"debugfs", "-w", "-f", "script", disk}, Dir: stage, Stderr: &stderr}); err != nil {
		return fmt.Errorf("%w: debugfs (e2fsprogs from scripts/setup-host): %w", ErrBuild, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.HasPrefix(line, "debugfs ") {
			return fmt.Errorf("%w: debugfs writing the userspace part: %s", ErrBuild, line)
		}
	}
	for _, f := range files {
		dst := path.Join(UserspaceDirName, strings.TrimPrefix(f.GuestPath, "/"))
		got, err := proc.Output(ctx, proc.Cmd{Argv: []string{"debugfs", "-R", "cat " + dst, disk}})
		if err != nil {
			return fmt.Errorf("%w: debugfs cat %s: %w", ErrBuild, dst, err)
		}
		if !bytes.Equal(got, f.Data) {
			return fmt.Errorf("%w: %s in the modules disk does not read back as written", ErrBuild, dst)
		}
	}
	return nil
}
