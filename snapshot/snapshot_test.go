package snapshot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mkTree builds a small sysfs-shaped tree on disk with real symlinks, the
// way a platform realm guest looks, so Take is tested through os.DirFS just
// as the in-guest helper uses it.
func mkTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	file := func(p, content string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	file("devices/platform/arm-cca-dev/uevent", "DRIVER=cca_guest_tsm\nMODALIAS=platform:arm-cca-dev\n")
	file("devices/platform/arm-cca-dev/modalias", "platform:arm-cca-dev\n")
	file("devices/platform/arm-cca-dev/power/control", "auto\n")
	link("devices/platform/arm-cca-dev/subsystem", "../../../bus/platform")
	link("devices/platform/arm-cca-dev/driver", "../../../bus/platform/drivers/cca_guest_tsm")
	file("bus/platform/drivers/cca_guest_tsm/bind", "")
	link("bus/platform/devices/arm-cca-dev", "../../../devices/platform/arm-cca-dev")
	file("devices/platform/9000000.pl011/uevent", "MODALIAS=of:Nuart\n")
	link("bus/platform/devices/9000000.pl011", "../../../devices/platform/9000000.pl011")
	file("module/cca_guest_tsm/initstate", "live\n")
	file("module/printk/parameters/time", "Y\n")
	if err := os.MkdirAll(filepath.Join(root, "kernel/config/tsm/report"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "class/tsm"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestTake(t *testing.T) {
	s, err := Take(os.DirFS(mkTree(t)), Meta{Cell: "platform/realm", Backend: "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"absent bus/faux/devices",
		"link bus/platform/devices/arm-cca-dev ../../../devices/platform/arm-cca-dev",
		"device devices/platform/arm-cca-dev",
		"subsystem devices/platform/arm-cca-dev platform",
		"driver devices/platform/arm-cca-dev cca_guest_tsm",
		"modalias devices/platform/arm-cca-dev platform:arm-cca-dev",
		"uevent devices/platform/arm-cca-dev DRIVER=cca_guest_tsm",
		"uevent devices/platform/arm-cca-dev MODALIAS=platform:arm-cca-dev",
		"dir kernel/config/tsm",
		"dir kernel/config/tsm/report",
		"module module/cca_guest_tsm live",
	}
	text := s.Text()
	for _, w := range want {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("snapshot lacks %q; got:\n%s", w, text)
		}
	}
	for _, bad := range []string{"pl011", "printk", "power"} {
		if strings.Contains(text, bad) {
			t.Errorf("snapshot holds irrelevant %q:\n%s", bad, text)
		}
	}
	if s.Has(KindAbsent, "class/tsm") {
		t.Errorf("empty class/tsm reported absent")
	}
}

func TestRoundTrip(t *testing.T) {
	s, err := Take(os.DirFS(mkTree(t)), Meta{Cell: "platform/realm", Backend: "test", Kernel: "7.3.4-platform", Firmware: "rmm-2.0"})
	if err != nil {
		t.Fatal(err)
	}
	s.Add(Fact{KindCVM, "systemd-detect-virt", "cca"})
	for _, form := range []string{"text", "json"} {
		t.Run(form, func(t *testing.T) {
			var b bytes.Buffer
			if form == "text" {
				err = s.WriteText(&b)
			} else {
				err = s.WriteJSON(&b)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(&b)
			if err != nil {
				t.Fatal(err)
			}
			if d := Diff(s, got); len(d) != 0 || got.Meta != s.Meta {
				t.Errorf("round trip changed: %v, meta %+v want %+v", d, got.Meta, s.Meta)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty input"},
		{"hello\n", "line 1"},
		{"cca-testbed snapshot 1\nlink class/tsm/tsm0 x\nbogus a b\n", "line 3: unknown fact kind \"bogus\""},
		{"cca-testbed snapshot 1\nmeta colour red\n", "line 2: unknown meta key"},
		{"cca-testbed snapshot 1\ndevice\n", "line 2: fact \"device\": path must be non-empty"},
		{`{"meta":{},"facts":[{"kind":"nope","path":"x"}]}`, "json fact 0"},
		{`{"meta":{}, "facts": [}`, "json at byte"},
	}
	for _, tt := range tests {
		_, err := Parse(strings.NewReader(tt.in))
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want ErrFormat containing %q", tt.in, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) error spans lines: %q", tt.in, err)
		}
	}
}

func TestDiff(t *testing.T) {
	a := &Snapshot{}
	a.Add(Fact{KindLink, "class/tsm/tsm0", "../../devices/platform/arm-rmi-dev/tsm/tsm0"},
		Fact{KindUevent, "devices/platform/arm-rmi-dev", "MODALIAS=platform:arm-rmi-dev"},
		Fact{KindCVM, "systemd-detect-virt", "cca"})
	b := &Snapshot{}
	b.Add(Fact{KindLink, "class/tsm/tsm0", "../../devices/faux/arm-rmi-dev/tsm/tsm0"},
		Fact{KindUevent, "devices/faux/arm-rmi-dev", "DRIVER=faux_driver"},
		Fact{KindCVM, "systemd-detect-virt", "cca"})
	got := Diff(a, b)
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{
		"~ link class/tsm/tsm0: ../../devices/platform/arm-rmi-dev/tsm/tsm0 => ../../devices/faux/arm-rmi-dev/tsm/tsm0",
		"+ uevent devices/faux/arm-rmi-dev DRIVER=faux_driver",
		"- uevent devices/platform/arm-rmi-dev MODALIAS=platform:arm-rmi-dev",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("Diff =\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if d := Diff(a, a); len(d) != 0 {
		t.Errorf("Diff(a, a) = %v, want none", d)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("cca-testbed snapshot 1\nmeta cell faux/realm\nlink class/tsm/tsm0 ../x\n"))
	f.Add([]byte(`{"meta":{"cell":"x"},"facts":[{"kind":"link","path":"a","value":"b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		// What parses must survive a round trip through text.
		again, err := Parse(strings.NewReader(s.Text()))
		if err != nil {
			t.Fatalf("re-parse of own output: %v\n%s", err, s.Text())
		}
		if d := Diff(s, again); len(d) != 0 {
			t.Fatalf("round trip changed %v", d)
		}
	})
}
