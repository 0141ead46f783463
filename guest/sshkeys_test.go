package guest

import (
	"strings"
	"testing"

	"cca-testbed/guest/guesttest"

	"golang.org/x/crypto/ssh"
)

func TestParseHostKey(t *testing.T) {
	k := guesttest.NewSigner(t).PublicKey()
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	tests := []struct {
		name  string
		in    string
		valid bool
	}{
		{"bare", line, true},
		{"comment and newline", line + " root@guest\n", true},
		{"empty", "", false},
		{"garbage", "ssh-ed25519 not-base64", false},
		{"two keys", line + "\n" + line + "\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHostKey([]byte(tt.in))
			if tt.valid != (err == nil) {
				t.Fatalf("got err %v, want valid=%v", err, tt.valid)
			}
			if err == nil && ssh.FingerprintSHA256(got) != ssh.FingerprintSHA256(k) {
				t.Fatalf("got %s, want %s", ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(k))
			}
		})
	}
}

func FuzzParseHostKey(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs x\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseHostKey(b)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}
