// Package cvm answers "is this a confidential VM?" the way today's systemd
// asks it on arm64, over a sysfs-shaped fs.FS (paths relative to /sys):
// Systemd ports systemd's detection (src/basic/confidential-virt.c,
// detect_confidential_virtualization(), aarch64 branch since commit
// 2572bf6a): the guest is "cca" exactly when
// /sys/devices/platform/arm-cca-dev exists. Nothing else is consulted,
// which is why the registration variants matter to distributions. The
// emulated guest's systemd-detect-virt and ConditionSecurity=cvm answer
// with it. ("systemd as proposed", reading realm_guest, is a check over
// the snapshot: checks, cvm-proposed.)
//
// Tests: go test ./emulated/cvm
package cvm

import "io/fs"

// Verdicts, as systemd-detect-virt --cvm prints them.
const (
	CCA  = "cca"
	None = "none"
)

// FirstCCASystemd is the first systemd major version with the arm64 check.
// Measured on real guests (DESIGN.md): 257 (trixie) prints "none" with
// arm-cca-dev present; 262 (forky) prints "cca". 258 is the first release
// after 257.
const FirstCCASystemd = 258

// DevicePath is the one path systemd's aarch64 branch tests with access(2).
const DevicePath = "devices/platform/arm-cca-dev"

// Systemd returns what systemd of the given major version decides for
// sysfs. access(F_OK) follows symlinks, so Stat (not Lstat) is the port.
func Systemd(sysfs fs.FS, version int) string {
	if version < FirstCCASystemd {
		return None
	}
	if _, err := fs.Stat(sysfs, DevicePath); err == nil {
		return CCA
	}
	return None
}

// ExitCode is systemd-detect-virt's exit status for a verdict: 0 when
// something was detected, 1 for "none".
func ExitCode(verdict string) int {
	if verdict == None {
		return 1
	}
	return 0
}
