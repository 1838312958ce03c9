#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# image.sh FLAVOUR: (inside the sysroot) build the guest initramfs: static
# busybox, the kernel's modules, the guest tests and the tools they use.

. "$(dirname "$0")/lib.sh"

FLAVOUR=${1:-rust}
B=$CACHE/build-$FLAVOUR
OUT=$CACHE/image-$FLAVOUR
ROOT=$OUT/root
[ -f "$B/kernelrelease" ] || die "build the $FLAVOUR kernel first"

rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,etc,lib,proc,sys,dev,tmp,run,root,tests}
cp /usr/bin/busybox "$ROOT/bin/busybox"
cp "$TOP/tools/testing/rust_vtd/guest/init" "$ROOT/init"
chmod +x "$ROOT/init"
cp -a "$B/staging/lib/modules" "$ROOT/lib/"
cp -a "$TOP/tools/testing/selftests/iommu/rust_vtd/." "$ROOT/tests/"
echo "root:x:0:0:root:/root:/bin/sh" > "$ROOT/etc/passwd"
# The guest tests' C helpers, static, against this kernel's uapi headers.
for c in "$TOP"/tools/testing/selftests/iommu/rust_vtd/*.c; do
	[ -e "$c" ] || continue
	clang -static -O2 -Wall -Werror -isystem "$B/hdr/include" \
		-I"$CACHE/src/linux/tools/testing/selftests" -o "$ROOT/bin/$(basename "$c" .c)" "$c"
done
rm -f "$ROOT"/tests/*.[ch]
# tools/dma/dma_map_benchmark (CONFIG_DMA_MAP_BENCHMARK's user side).
clang -static -O2 -Wall -D_GNU_SOURCE -isystem "$B/hdr/include" -o "$ROOT/bin/dma_map_benchmark" \
	"$CACHE/src/linux/tools/dma/dma_map_benchmark.c"
# Upstream selftests, unmodified, built static from the kernel source.
ST=$CACHE/selftests-$FLAVOUR
mkdir -p "$ST/vfio" "$ROOT/tests/upstream/vfio"
make -s -C "$CACHE/src/linux/tools/testing/selftests/vfio" LLVM=1 OUTPUT="$ST/vfio" \
	KHDR_INCLUDES="-isystem $B/hdr/include" LDFLAGS="-static -pthread" >/dev/null
for t in vfio_pci_device_test vfio_pci_driver_test vfio_dma_mapping_test vfio_iommufd_setup_test; do
	cp "$ST/vfio/$t" "$ROOT/tests/upstream/vfio/"
done
# Our tests that drive a device through upstream's VFIO selftest library.
for c in "$TOP"/tools/testing/selftests/iommu/rust_vtd/vfio/*.c; do
	clang -static -O2 -Wall -Werror -isystem "$B/hdr/include" \
		-I"$CACHE/src/linux/tools/testing/selftests/vfio/lib/include" \
		-I"$CACHE/src/linux/tools/include" -o "$ROOT/bin/$(basename "$c" .c)" \
		"$c" $(find "$ST/vfio/libvfio" -name '*.o' | sort) -luuid -pthread
done
mkdir -p "$ST/iommu" "$ROOT/tests/upstream/iommu"
make -s -C "$CACHE/src/linux/tools/testing/selftests/iommu" LLVM=1 OUTPUT="$ST/iommu" \
	KHDR_INCLUDES="-isystem $B/hdr/include" LDFLAGS="-static -pthread" >/dev/null
cp "$ST/iommu/iommufd" "$ST/iommu/iommufd_fail_nth" "$ROOT/tests/upstream/iommu/"
# The kdump test: the kernel itself, which the guest loads as its capture
# kernel (kexec_crash_load), and makedumpfile with the libraries it needs
# (the image has no others), where the dynamic loader looks for them.
mkdir -p "$ROOT/boot"
cp "$B/arch/x86/boot/bzImage" "$ROOT/boot/bzImage"
for f in /usr/bin/makedumpfile $(ldd /usr/bin/makedumpfile | grep -o '/[^ ]*'); do
	mkdir -p "$ROOT$(dirname "$f")"
	cp -L "$f" "$ROOT$f"
done
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1 > "$OUT/initramfs.gz.new")
mv "$OUT/initramfs.gz.new" "$OUT/initramfs.gz"
