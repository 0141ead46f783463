package series

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckGuestPath(t *testing.T) {
	tests := []struct {
		rel, want string // want "" means accepted
	}{
		{"etc/udev/rules.d/60-cca.rules", ""},
		{"etc/systemd/system/cca-load.service", ""},
		{"etc/systemd/system/cca.target", ""},
		{"etc/modules-load.d/cca.conf", ""},
		{"etc/modprobe.d/cca.conf", ""},
		{"/etc/udev/rules.d/60-cca.rules", "relative"},
		{"etc/udev/rules.d/../../passwd", `".." is not allowed`},
		{"etc/udev/rules.d/./x.rules", `"." is not allowed`},
		{"etc//udev/rules.d/x.rules", `"" is not allowed`},
		{"etc/udev/rules.d/x.conf", "ending in .rules"},
		{"etc/udev/rules.d/.rules", "ending in .rules"},
		{"etc/udev/rules.d/a b.rules", "plain file name"},
		{"etc/systemd/system/x.conf", "ending in .service"},
		{"etc/systemd/system/x.service.d/y.conf", "installs only to"},
		{"etc/passwd", "installs only to"},
		{"usr/lib/udev/rules.d/60-cca.rules", "installs only to"},
		{"etc\\udev\\rules.d\\x.rules", "relative"},
		{"", "relative"},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			err := CheckGuestPath(tt.rel)
			if tt.want == "" {
				if err != nil {
					t.Errorf("err = %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestReadUserspace: a recipe's userspace part, from its userspace/ tree,
// a userspace: key and udev:/unit: lines, sorted by guest path; every
// refusal is one line naming the file.
func TestReadUserspace(t *testing.T) {
	one := "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n"
	mk := func(files map[string]string, links ...string) string {
		dir := filepath.Join(t.TempDir(), "r")
		for n, s := range files {
			p := filepath.Join(dir, filepath.FromSlash(n))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i+1 < len(links); i += 2 {
			if err := os.Symlink(links[i+1], filepath.Join(dir, filepath.FromSlash(links[i]))); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	base := map[string]string{"series": "p\n", "p": one}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name  string
		dir   string
		paths []string
		want  string // error text; "" means it reads
	}{
		{"tree", mk(with(map[string]string{"recipe": "name: t\n",
			"userspace/etc/udev/rules.d/60-a.rules":    "ACTION==\"add\"\n",
			"userspace/etc/modules-load.d/cca.conf":    "arm_cca_guest\n",
			"userspace/etc/systemd/system/cca.service": "[Service]\n"})), []string{
			"/etc/modules-load.d/cca.conf", "/etc/systemd/system/cca.service", "/etc/udev/rules.d/60-a.rules"}, ""},
		{"key names another tree", mk(with(map[string]string{"recipe": "userspace: guest\n",
			"guest/etc/modprobe.d/x.conf": "options x y=1\n"})), []string{"/etc/modprobe.d/x.conf"}, ""},
		{"udev line and tree", mk(with(map[string]string{"recipe": "udev: 10-b.rules\n", "10-b.rules": "x\n",
			"userspace/etc/udev/rules.d/60-a.rules": "y\n"})), []string{"/etc/udev/rules.d/10-b.rules", "/etc/udev/rules.d/60-a.rules"}, ""},
		{"no userspace", mk(with(map[string]string{"recipe": "name: t\n"})), nil, ""},
		{"named tree missing", mk(with(map[string]string{"recipe": "userspace: nowhere\n"})), nil, "userspace"},
		{"outside the places", mk(with(map[string]string{"recipe": "name: t\n", "userspace/etc/passwd": "root::0:0\n"})), nil,
			"userspace/etc/passwd"},
		{"directory elsewhere", mk(with(map[string]string{"recipe": "name: t\n", "userspace/usr/lib/udev/rules.d/x.rules": "x\n"})), nil,
			"userspace/usr: a userspace part installs only to"},
		{"wrong ending", mk(with(map[string]string{"recipe": "name: t\n", "userspace/etc/udev/rules.d/x.conf": "x\n"})), nil,
			"userspace/etc/udev/rules.d/x.conf: want a plain file name"},
		{"symlink", mk(with(map[string]string{"recipe": "name: t\n", "userspace/etc/udev/rules.d/a.rules": "x\n"}),
			"userspace/etc/udev/rules.d/b.rules", "a.rules"), nil, "userspace/etc/udev/rules.d/b.rules: not a regular file"},
		{"too large", mk(with(map[string]string{"recipe": "name: t\n",
			"userspace/etc/udev/rules.d/a.rules": strings.Repeat("#\n", MaxUserspaceFile)})), nil, "a.rules"},
		{"twice", mk(with(map[string]string{"recipe": "udev: a.rules\n", "a.rules": "x\n",
			"userspace/etc/udev/rules.d/a.rules": "y\n"})), nil, "/etc/udev/rules.d/a.rules given twice"},
		{"unit line", mk(with(map[string]string{"recipe": "unit: x.rules\n", "x.rules": "x\n"})), nil, "unit file x.rules: want a plain file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Read(context.Background(), tt.dir)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
					t.Errorf("err = %v, want one line mentioning %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range r.Userspace {
				got = append(got, u.GuestPath)
				if len(u.Data) == 0 {
					t.Errorf("%s: no content", u.GuestPath)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.paths, ",") {
				t.Errorf("userspace = %v, want %v", got, tt.paths)
			}
			if len(tt.paths) > 0 && !strings.Contains(r.Summary(), "userspace part: "+strings.Join(tt.paths, ", ")) {
				t.Errorf("summary %q does not list the userspace part", r.Summary())
			}
		})
	}
}
