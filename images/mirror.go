package images

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoMirror is returned when the host's apt sources name no Debian
// archive the rootfs build could use.
var ErrNoMirror = errors.New("no Debian mirror in the host's apt sources")

// hostSources is where apt keeps the host's sources; a variable so tests can
// point it elsewhere.
var hostSources = struct{ dir, list string }{"/etc/apt/sources.list.d", "/etc/apt/sources.list"}

// Mirror returns the Debian archive URL the host's apt already uses (no
// trailing slash), read at run time so no host name is written into this
// repository. deb822 files (*.sources) are read before the one-line
// sources.list.
func Mirror() (string, error) {
	var files []string
	m, _ := filepath.Glob(filepath.Join(hostSources.dir, "*.sources"))
	files = append(files, m...)
	m, _ = filepath.Glob(filepath.Join(hostSources.dir, "*.list"))
	files = append(files, m...)
	files = append(files, hostSources.list)
	return mirrorFrom(files)
}

func mirrorFrom(files []string) (string, error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // sources.list is often absent on deb822-only hosts
		}
		for _, u := range ParseSources(b, strings.HasSuffix(f, ".sources")) {
			if isDebianArchive(u) {
				return strings.TrimRight(u, "/"), nil
			}
		}
	}
	return "", fmt.Errorf("%w (read %s): add a deb line for the Debian archive, or run scripts/setup-host", ErrNoMirror, strings.Join(files, ", "))
}

// isDebianArchive accepts http(s) URLs whose path ends in /debian: the
// main archive, not debian-security or debian-ports.
func isDebianArchive(u string) bool {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return false
	}
	return strings.HasSuffix(strings.TrimRight(p.Path, "/"), "/debian")
}

// ParseSources returns the URIs of the enabled binary ("deb") entries of an
// apt sources file, in order: deb822 format when deb822 is set, else the
// one-line format ("deb [opts] uri suite comp...").
func ParseSources(b []byte, deb822 bool) []string {
	if deb822 {
		return parseDeb822(b)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			// Options end at the first field that ends with "]".
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// parseDeb822 reads stanzas of "Field: value" lines (continuation lines
// start with white space; '#' lines are comments; blank lines separate
// stanzas).
func parseDeb822(b []byte) []string {
	var out []string
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && hasWord(fields["types"], "deb") && !strings.EqualFold(strings.TrimSpace(fields["enabled"]), "no") {
			out = append(out, strings.Fields(fields["uris"])...)
		}
		fields = map[string]string{}
		last = ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}
