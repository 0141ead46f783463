// Package kernelconfigs carries the testbed's kernel side into the binary:
// base.config, the per-variant fragments, the patches and the kernel
// sources in src/ (see README.md). images/kernel reads them from FS, so the
// kernels' cache key is exactly what was compiled into the testbed binary:
// an edit here takes effect when the testbed is rebuilt. The real backend
// still runs from a checkout, with the go command on PATH: it builds the
// in-guest snapshot helper from cmd/sysfs-snapshot (images.BuildHelper).
//
// Tests: none here; go test ./images/kernel builds kernels from these files.
package kernelconfigs

import "embed"

// FS holds base.config, <variant>.config, patches/*.patch and src/*.
//
//go:embed base.config *.config patches/*.patch src
var FS embed.FS
