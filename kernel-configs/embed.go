// Package kernelconfigs carries the testbed's kernel side into the binary:
// base.config, the per-variant fragments, the patches and the kernel
// sources in src/ (see README.md). images/kernel reads them from FS, so a built
// testbed needs no checkout to build its kernels, and the cache key is
// exactly what was compiled in.
//
// Tests: none here; go test ./images/kernel builds kernels from these files.
package kernelconfigs

import "embed"

// FS holds base.config, <variant>.config, patches/*.patch and src/*.
//
//go:embed base.config *.config patches/*.patch src
var FS embed.FS
