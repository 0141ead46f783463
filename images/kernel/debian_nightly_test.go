//go:build nightly

// Making Debian's kernel entry runs its maintainer scripts in an emulated
// arm64 chroot (minutes of qemu-user), more than a cold make test can
// afford; scripts/nightly runs this with -tags nightly and make vet
// compiles it.

package kernel

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestBuildDebian makes (cold: about 12 minutes at load, the chroot's
// maintainer scripts under qemu-user) or finds Debian's prebuilt kernel
// from the .debs scripts/setup-host fetched, and checks the entry: an
// arm64 Image, the generated initramfs, and the package's modules with
// depmod's upstream alias for arm_cca_guest.
func TestBuildDebian(t *testing.T) {
	ctx, opts := testOptions(t)
	start := time.Now()
	k, err := BuildDebian(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s in %v (%s)", k.Release, time.Since(start).Round(time.Millisecond), k.Dir)
	if !strings.HasPrefix(k.Release, SourceVersion+".") || !strings.HasSuffix(k.Release, "-arm64") {
		t.Errorf("release %q, want %s.*-arm64", k.Release, SourceVersion)
	}
	if !strings.Contains(k.Packages, "linux-image-"+k.Release+" ") {
		t.Errorf("packages %q do not name linux-image-%s", k.Packages, k.Release)
	}
	img, err := os.ReadFile(k.Image)
	if err != nil || len(img) < 64 || string(img[56:60]) != imageMagic {
		t.Errorf("%s is not an arm64 Image (%v)", k.Image, err)
	}
	if st, err := os.Stat(k.Initrd); err != nil || st.Size() < 1<<20 {
		t.Errorf("initrd %s: %v", k.Initrd, err)
	}
	alias := debugfsCat(t, k.ModulesDisk, "/"+k.Release+"/modules.alias")
	if !strings.Contains(alias, "alias platform:arm-cca-dev arm_cca_guest\n") {
		t.Errorf("modules.alias lacks upstream's arm_cca_guest alias")
	}
	dep := debugfsCat(t, k.ModulesDisk, "/"+k.Release+"/modules.dep")
	if !strings.Contains(dep, "kernel/drivers/virt/coco/arm-cca-guest/arm-cca-guest.ko.xz: kernel/drivers/virt/coco/guest/tsm_report.ko.xz") {
		t.Errorf("modules.dep lacks arm-cca-guest.ko.xz with its tsm_report dependency")
	}
	again, err := BuildDebian(ctx, Options{Cache: opts.Cache})
	if err != nil || again.Dir != k.Dir {
		t.Errorf("second call: %v, entry %v; want the same entry %s", err, again, k.Dir)
	}
}
