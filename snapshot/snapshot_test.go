package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
	file("module/cca_testbed/parameters/answers", "c4000150:10000:1:20000:20000:0,c4000165:2:0:0:0:0,c4000190:10000:ffffffffffffffff:0:0:0\n")
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
		"answer module/cca_testbed/parameters/answers/RMI_VERSION(0x10000) x0=0x1 x1=0x20000 x2=0x20000 x3=0x0",
		"answer module/cca_testbed/parameters/answers/RMI_FEATURES(0x2) x0=0x0 x1=0x0 x2=0x0 x3=0x0",
		"answer module/cca_testbed/parameters/answers/RSI_VERSION(0x10000) x0=0xffffffffffffffff x1=0x0 x2=0x0 x3=0x0",
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

func TestTakeBadAnswers(t *testing.T) {
	root := mkTree(t)
	if err := os.WriteFile(filepath.Join(root, AnswersParam), []byte("c4000150:zz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Take(os.DirFS(root), Meta{}); err == nil || !strings.Contains(err.Error(), AnswersParam) {
		t.Fatalf("Take with a malformed answers list: err = %v, want one naming %s", err, AnswersParam)
	}
}

func TestRoundTrip(t *testing.T) {
	s, err := Take(os.DirFS(mkTree(t)), Meta{Cell: "platform/realm", Backend: "test", Kernel: "7.3.4-platform", Firmware: "rmm-2.0",
		RealFirmware: "tf-rmm-0.9", RMMVersion: "Booting RMM v.0.9.0(release) 1a2b3c4"})
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
		{"cca-testbed snapshot 2\nlink class/tsm/tsm0 x\nbogus a b\nend\n", "line 3: unknown fact kind \"bogus\""},
		{"cca-testbed snapshot 2\nmeta colour red\nend\n", "line 2: unknown meta key"},
		{"cca-testbed snapshot 2\ndevice\nend\n", "line 2: fact \"device\": path must be non-empty"},
		{`{"meta":{},"facts":[{"kind":"nope","path":"x"}]}`, "json line 1:21: fact 0: unknown fact kind"},
		{"{\"meta\":{},\n \"facts\": [}", "json line 2:12: invalid character '}'"},
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

// TestParseRefusesPartialOrDouble: a snapshot cut off at any line, or two
// snapshots in one input, is an error in both forms, never a smaller or
// merged snapshot.
func TestParseRefusesPartialOrDouble(t *testing.T) {
	s, err := Take(os.DirFS(mkTree(t)), Meta{Cell: "platform/realm", Backend: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var j bytes.Buffer
	if err := s.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	for form, whole := range map[string]string{"text": s.Text(), "json": j.String()} {
		if _, err := Parse(strings.NewReader(whole)); err != nil {
			t.Fatalf("%s: whole snapshot: %v", form, err)
		}
		// Cut at every line boundary, and in the middle of the last line.
		for i := 0; i < len(whole)-1; i++ {
			if whole[i] != '\n' && i != len(whole)-3 {
				continue
			}
			cut := whole[:i+1]
			if _, err := Parse(strings.NewReader(cut)); err == nil || !errors.Is(err, ErrFormat) {
				t.Errorf("%s cut after byte %d: err = %v, want ErrFormat", form, i+1, err)
			}
		}
		if _, err := Parse(strings.NewReader(whole + whole)); err == nil || !errors.Is(err, ErrFormat) {
			t.Errorf("%s twice: err = %v, want ErrFormat", form, err)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"cca-testbed snapshot 2\nlink a b\n", "line 3: no \"end\" line: the snapshot is cut off"},
		{"cca-testbed snapshot 2\nend\ncca-testbed snapshot 2\nend\n", "line 3: text after the end line"},
		{"{\"meta\":{}}\n{\"meta\":{}}", "json line 2:1: text after the end of the snapshot"},
		{"{\"meta\":{}, \"facts\": [", "json line 1:23: unexpected end of input"},
		{"cca-testbed snapshot 1\nlink a b\n", "version 1 had no end line"},
	} {
		if _, err := Parse(strings.NewReader(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestFormsAgree: both forms hold values to the same rules, so an input one
// form refuses cannot be written by the other (and read back differently).
func TestFormsAgree(t *testing.T) {
	tests := []struct {
		name string
		snap Snapshot
		want string
	}{
		{"line break in meta", Snapshot{Meta: Meta{Cell: "faux/realm\nlink x y"}}, "meta cell: value holds a line break"},
		{"carriage return in meta", Snapshot{Meta: Meta{Kernel: "7.3\r"}}, "meta kernel: value holds a line break"},
		{"invalid UTF-8 in meta", Snapshot{Meta: Meta{Kernel: "7.3\xff"}}, "meta kernel: value is not valid UTF-8"},
		{"invalid UTF-8 in a value", Snapshot{Facts: []Fact{{KindFile, "firmware/cca/realm_guest", "1\xfe"}}}, "not valid UTF-8"},
		{"invalid UTF-8 in a path", Snapshot{Facts: []Fact{{KindFile, "firmware/\xc3", "1"}}}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.snap.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
			for _, write := range []func(io.Writer) error{tt.snap.WriteText, tt.snap.WriteJSON} {
				var b bytes.Buffer
				if err := write(&b); err == nil || b.Len() > 0 {
					t.Errorf("wrote %q, err %v; want nothing written and an error", b.String(), err)
				}
			}
			j, err := json.MarshalIndent(&tt.snap, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			// encoding/json writes invalid UTF-8 as U+FFFD: put the raw
			// bytes back so the parser sees what a hostile file holds.
			raw := strings.ReplaceAll(string(j), `\ufffd`, "\xff")
			for form, in := range map[string]string{"text": tt.snap.Text(), "json": raw} {
				if _, err := Parse(strings.NewReader(in)); err == nil || !errors.Is(err, ErrFormat) {
					t.Errorf("%s form: Parse = %v, want ErrFormat", form, err)
				}
			}
		})
	}
}

func TestJSONPositions(t *testing.T) {
	tests := []struct{ in, want string }{
		{"{\n  \"meta\": {\"cell\": 3}\n}", "json line 2:20: meta cell: want a string, got a number"},
		{"{\n  \"meta\": {},\n  \"colour\": 1\n}", "json line 3:3: unknown key \"colour\""},
		{"{\"meta\": {\"cell\": \"a\", \"cell\": \"b\"}}", "json line 1:24: meta: key \"cell\" given twice"},
		{"{\"facts\": [\n {\"kind\": \"link\", \"path\": \"a\", \"extra\": \"\"}]}", "json line 2:32: fact 0: unknown key \"extra\""},
	}
	for _, tt := range tests {
		if _, err := Parse(strings.NewReader(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestMeasuredSnapshots: the snapshots of the measured run in docs/ stay
// readable and canonical (they are WriteText's output, byte for byte).
func TestMeasuredSnapshots(t *testing.T) {
	files, err := filepath.Glob("../docs/measured/*/snapshots/*.snap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no measured snapshots found (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if s.Text() != string(b) {
			t.Errorf("%s: not in canonical form", f)
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
	f.Add([]byte("cca-testbed snapshot 2\nmeta cell faux/realm\nlink class/tsm/tsm0 ../x\nend\n"))
	f.Add([]byte(`{"meta":{"cell":"x"},"facts":[{"kind":"link","path":"a","value":"b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(bytes.NewReader(data))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		// What parses must survive a round trip through both forms,
		// meta included.
		var j bytes.Buffer
		if err := s.WriteJSON(&j); err != nil {
			t.Fatal(err)
		}
		for form, out := range map[string]string{"text": s.Text(), "json": j.String()} {
			again, err := Parse(strings.NewReader(out))
			if err != nil {
				t.Fatalf("re-parse of own %s output: %v\n%s", form, err, out)
			}
			if d := Diff(s, again); len(d) != 0 || again.Meta != s.Meta {
				t.Fatalf("%s round trip changed %v, meta %+v => %+v", form, d, s.Meta, again.Meta)
			}
		}
		// Whatever parses is whole: a proper prefix of it never parses.
		if len(data) > 1 {
			if _, err := Parse(bytes.NewReader(data[:len(data)/2])); err == nil && len(bytes.TrimSpace(data[len(data)/2:])) > 0 {
				t.Fatalf("both %q and its first half parse", data)
			}
		}
	})
}

// FuzzParseJSON drives the JSON reader (FuzzParse mostly finds the text
// one): whatever it accepts is one whole valid document.
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"meta":{"cell":"x","kernel":"7.3"},"facts":[{"kind":"link","path":"a","value":"b"},{"kind":"cvm","path":"p"}]}`))
	f.Add([]byte(`{"facts":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseJSON(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: not ErrFormat on one line", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted a snapshot that fails Validate: %v", err)
		}
		var std Snapshot
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		std.normalize()
		if d := Diff(&std, s); len(d) != 0 || std.Meta != s.Meta {
			t.Fatalf("reads differently from encoding/json: %v", d)
		}
	})
}
