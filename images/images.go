// Package images builds and caches what a boot needs: here, the guest root
// file system per userspace (Debian arm64 by mmdebstrap, with SSH keys made
// at build time), the static snapshot helper, and the copy-on-write
// overlays runs boot from; in the subpackage images/kernel, each variant's
// kernel. The Cache is generic (Cache.Get), so the kernel builds share its
// directory, locking, verification, pruning and event log.
//
// Tests: go test ./images (as root, after scripts/setup-host). The cache
// tests use fake builders and take under a second; the rootfs test builds
// the forky rootfs into the shared cache (6 to 10 minutes cold, a cache hit
// afterwards).
package images
