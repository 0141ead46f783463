package guest

import (
	"fmt"

	"golang.org/x/crypto/ssh"
)

// These helpers let callers fill SSHConfig from the files images/ writes
// without importing x/crypto/ssh themselves: that dependency stays in
// this package.

// ParseHostKey parses a host public key in authorized_keys form
// ("ssh-ed25519 AAAA... comment"), as in ssh_host_ed25519_key.pub.
func ParseHostKey(authorizedKey []byte) (ssh.PublicKey, error) {
	k, _, _, rest, err := ssh.ParseAuthorizedKey(authorizedKey)
	if err != nil {
		return nil, fmt.Errorf("parse host key: %w: want one line like \"ssh-ed25519 AAAA... comment\"", err)
	}
	if len(rest) > 0 {
		if _, _, _, _, err := ssh.ParseAuthorizedKey(rest); err == nil {
			return nil, fmt.Errorf("parse host key: more than one key: pin exactly one")
		}
	}
	return k, nil
}
