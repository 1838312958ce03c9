#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench.sh: (inside the sysroot, the rust and baseline kernels and images
# built) make bench: every scenario of plan-bench.sh on the rust kernel
# (rust_vtd) and on the baseline kernel (the C driver), in the same VM with
# the same command line, alternating rust/baseline BENCH_REPS times (5),
# on a 3-vCPU guest.  Writes $LOGDIR/bench/: results-raw.tsv (every figure
# of every run, with the commit, date, host and versions), profile.tsv
# (ftrace's function profile of the strict dma_map_benchmark rows, from
# untimed passes), results.md (medians, spreads and Rust/C ratios, and the
# profile) and ratios.png.  Exits non-zero
# when a figure is missing from some round.
# See Documentation/iommu/rust_vtd-bench.rst for what the figures mean.

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

REPS=${BENCH_REPS:-5}
OUT=$LOGDIR/bench
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT/results.tsv" "$OUT/profile.tsv"

# The bench disk: sparse, so that QEMU reads zeros without host I/O and
# the guest's DMA path is what the block figures measure.
[ -f "$CACHE/bench.img" ] || truncate -s 256M "$CACHE/bench.img"
qargs=(-device pcie-root-port,id=rp5,chassis=5,slot=5
	-device virtio-blk-pci,bus=rp5,drive=bench,serial=bench,disable-legacy=on,iommu_platform=on
	-drive if=none,id=bench,format=raw,readonly=on,file="$CACHE/bench.img")
# kmemleak (in both test kernels) off; 1 GiB of 2 MiB hugepages for the
# iommufd scenario; VFIO without interrupt remapping; the C driver on.
kargs=(kmemleak=off hugepages=512 iommufd.allow_unsafe_interrupts=1 intel_iommu=on)

accel=$(pick_accel)
log "make bench: $REPS rounds of rust, baseline; $accel; results in $OUT"
for i in $(seq "$REPS"); do
	for f in rust baseline; do
		log "round $i/$REPS: $f kernel"
		start=$SECONDS
		# (The rust side is the bench flavour: the rust kernel plus the
		# tracers the baseline kernel has too, configs/bench.config.)
		flavour=$f
		[ $f = rust ] && flavour=bench
		LOGDIR=$OUT RVTD_MEM=4G RVTD_SMP=3 vm_boot "bench-$f-$i" "$flavour" legacy bench 900 "${kargs[@]}" -- "${qargs[@]}" \
			> "$OUT/bench-$f-$i.qemu.log" 2>&1 || true
		res=$OUT/bench-$f-$i.results.log
		tr -d '\r' < "$res" | sed -n "s/^# BENCH \([^ ]*\) \([0-9.]*\)\$/$f\t$i\t\1\t\2/p" >> "$OUT/results.tsv"
		tr -d '\r' < "$res" | sed -n "s/^# PROFILE \([^ ]*\) \([^ ]*\) \([0-9]*\) \([0-9.]*\)\$/$f\t$i\t\1\t\2\t\3\t\4/p" \
			>> "$OUT/profile.tsv"
		tr -d '\r' < "$res" | grep '^not ok' | sed "s/^/  $f round $i: /" >&2 || true
		grep -q 'plan bench finished' "$res" || log "  the $f VM did not finish (see $OUT/bench-$f-$i.console.log)"
		log "  $(grep -c "^$f	$i	" "$OUT/results.tsv") figures in $((SECONDS - start)) s"
	done
done

# Plotting needs matplotlib, which only make bench uses: installed into the
# sysroot on first use.
if ! python3 -c 'import matplotlib' 2>/dev/null; then
	log "installing python3-matplotlib into the sysroot (for the plot)"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		python3-matplotlib; } > "$OUT/apt.log" 2>&1 || log "  failed (see $OUT/apt.log); no plot"
fi
commit=$(git -c safe.directory='*' -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)
st=0
python3 "$TOP/tools/testing/rust_vtd/bench_report.py" "$OUT" \
	"date=$(date -u '+%F %H:%M UTC')" \
	"commit=$commit" \
	"qemu=$(qemu-system-x86_64 --version | head -n1)" \
	"kernel=$(cat "$CACHE/build-bench/kernelrelease") (rust, bench.config), $(cat "$CACHE/build-baseline/kernelrelease") (baseline)" \
	"accel=$accel" \
	"host=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs" \
	"vcpus=3" \
	"rounds=$REPS" || st=$?
cat "$OUT/results.md"
log "results: $OUT/results.md, $OUT/ratios.png, $OUT/results-raw.tsv"
[ $st = 0 ] || die "figures are missing (see the report's last section)"
