#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# profile.sh: (inside the sysroot, the rust and baseline kernels and images
# built) make profile: the strict single-page dma_map_benchmark row on
# rust_vtd and on the C driver, each in a one-vCPU guest under QEMU's
# insnprof plugin (insnprof.c), which counts the guest kernel's executed
# instructions per translation block; insnprof.py charges them to
# functions and writes $LOGDIR/profile/insns.md: instructions per map/unmap
# pair, in total and for the functions that differ most.  Unlike ftrace's
# profile in make bench, it sees rust_vtd's Rust functions, and it costs
# the guest nothing it would not also cost the other kernel.
# See Documentation/iommu/rust_vtd-bench.rst.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

OUT=$LOGDIR/profile
mkdir -p "$OUT"
so=$CACHE/insnprof.so
cc -O2 -Wall -shared -fPIC -fvisibility=hidden -o "$so" "$TOP/tools/testing/rust_vtd/insnprof.c" ||
	die "cannot build the insnprof plugin"
for f in rust baseline; do
	rm -f "$OUT/$f.blocks"
	log "profile: the $f kernel under insnprof"
	LOGDIR=$OUT RVTD_SMP=1 vm_boot "insns-$f" "$f" legacy insns 900 kmemleak=off intel_iommu=on -- \
		-plugin "$so,out=$OUT/$f.blocks" > "$OUT/insns-$f.qemu.log" 2>&1 || true
	res=$OUT/insns-$f.results.log
	grep -q 'plan insns finished' "$res" ||
		die "the $f VM did not finish (see $OUT/insns-$f.console.log, $OUT/insns-$f.qemu.log)"
	! tr -d '\r' < "$res" | grep '^not ok' || die "the $f VM failed a step (see $res)"
	[ -s "$OUT/$f.blocks" ] || die "no counts from the $f VM (see $OUT/insns-$f.qemu.log)"
done
python3 "$TOP/tools/testing/rust_vtd/insnprof.py" "$OUT" "$CACHE/build-rust" "$CACHE/build-baseline" \
	> "$OUT/insns.md"
cat "$OUT/insns.md"
log "report: $OUT/insns.md"
