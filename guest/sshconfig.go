package guest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// KnownHostsLine is the known_hosts line pinning key for addr, in the
// form OpenSSH looks up for a non-default port ("[127.0.0.1]:2222 ssh-ed25519 AAAA...").
func KnownHostsLine(addr string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
}

// WriteKnownHosts writes the known_hosts file for cfg's pinned host key.
func WriteKnownHosts(w io.Writer, cfg SSHConfig) error {
	if cfg.HostKey == nil {
		return fmt.Errorf("known_hosts: HostKey is nil: pin the guest's host key")
	}
	_, err := fmt.Fprintln(w, KnownHostsLine(cfg.Addr, cfg.HostKey))
	return err
}

var sshHostAlias = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)

// WriteOpenSSHConfig writes an ssh_config stanza so that a person can run
// `ssh -F file host` against the guest with the same guarantees as DialSSH:
// the key at keyPath, and the host key checked strictly against
// knownHostsPath (write it with WriteKnownHosts). Both paths must be
// absolute.
func WriteOpenSSHConfig(w io.Writer, host string, cfg SSHConfig, keyPath, knownHostsPath string) error {
	cfg = cfg.withDefaults()
	if !sshHostAlias.MatchString(host) {
		return fmt.Errorf("ssh_config: host alias %q: use letters, digits, '.', '_' and '-'", host)
	}
	if cfg.HostKey == nil {
		return fmt.Errorf("ssh_config: HostKey is nil: pin the guest's host key")
	}
	h, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("ssh_config: Addr %q: %v: use host:port like 127.0.0.1:2222", cfg.Addr, err)
	}
	key, err := sshConfigPath("key", keyPath)
	if err != nil {
		return err
	}
	kh, err := sshConfigPath("known_hosts", knownHostsPath)
	if err != nil {
		return err
	}
	if !sshHostAlias.MatchString(cfg.User) {
		return fmt.Errorf("ssh_config: user %q: use a plain user name", cfg.User)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Written by cca-testbed: ssh -F <this file> %s\n", host)
	fmt.Fprintf(bw, "Host %s\n", host)
	for _, kv := range [][2]string{
		{"HostName", h},
		{"Port", port},
		{"User", cfg.User},
		{"IdentityFile", key},
		{"IdentitiesOnly", "yes"},
		{"UserKnownHostsFile", kh},
		{"GlobalKnownHostsFile", "/dev/null"},
		{"StrictHostKeyChecking", "yes"},
		{"HostKeyAlgorithms", strings.Join(hostKeyAlgorithms(cfg.HostKey), ",")},
		{"UpdateHostKeys", "no"},
		{"BatchMode", "yes"},
		{"ConnectTimeout", fmt.Sprint(max(1, int(cfg.DialTimeout.Seconds())))},
		{"LogLevel", "ERROR"},
	} {
		fmt.Fprintf(bw, "  %s %s\n", kv[0], kv[1])
	}
	return bw.Flush()
}

// sshConfigPath renders a path as an ssh_config argument: absolute, '%'
// doubled (ssh expands %-tokens in these keywords), double-quoted when it
// holds a space.
func sshConfigPath(what, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("ssh_config: %s path %q is not absolute: pass the full path", what, p)
	}
	if strings.ContainsAny(p, "\"\\") || strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "", fmt.Errorf("ssh_config: %s path %q holds a quote, backslash or control character: move the file", what, p)
	}
	p = strings.ReplaceAll(p, "%", "%%")
	if strings.ContainsAny(p, " \t") {
		p = `"` + p + `"`
	}
	return p, nil
}
