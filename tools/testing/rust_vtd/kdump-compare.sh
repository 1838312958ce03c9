#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# kdump-compare.sh: (inside the sysroot) the kdump plan, one crash and
# capture, on the rust kernel (rust_vtd) and on the baseline kernel (the C
# driver, built in), in the same VM with the same command line, and their
# results side by side.  Tests that read rust_vtd's debugfs or load its
# module run on rust_vtd only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
out=$LOGDIR/kdump-compare.md
for f in rust baseline; do
	log "kdump crash and capture on the $f kernel"
	vm_boot "kdump-$f" "$f" legacy kdump 900 oops=panic crashkernel=256M \
		iommufd.allow_unsafe_interrupts=1 rvtd.cycle=1 -- -trace vtd_dmar_fault \
		> "$LOGDIR/kdump-$f.qemu.log" 2>&1 || true
done
# "ok N name_legacy_1" -> "name ok"
results() {
	tr -d '\r' < "$LOGDIR/kdump-$1.results.log" 2>/dev/null |
		sed -n -E 's/^(not ok|ok) [0-9]+ (- )?(.*)_legacy_1$/\3 \1/p'
}
{
	echo "kdump, one crash and capture, intel-iommu legacy mode, $(pick_accel), $(date -u +%F)"
	echo
	echo "| test | rust_vtd | C driver |"
	echo "|---|---|---|"
	for t in $( (results rust; results baseline) | awk '!seen[$1]++ { print $1 }'); do
		r=$(results rust | awk -v t="$t" '$1 == t { $1 = ""; print substr($0, 2) }')
		c=$(results baseline | awk -v t="$t" '$1 == t { $1 = ""; print substr($0, 2) }')
		echo "| $t | ${r:--} | ${c:--} |"
	done
	for f in rust baseline; do
		echo
		echo "$f: plan $(grep -c 'plan kdump finished' "$LOGDIR/kdump-$f.results.log" 2>/dev/null |
			sed 's/^1$/finished/; s/^0$/did not finish/'), $(grep -c vtd_dmar_fault \
			"$LOGDIR/kdump-$f.qemu.log" 2>/dev/null || true) DMA faults traced by QEMU"
	done
} > "$out"
cat "$out"
log "table: $out; logs: $LOGDIR/kdump-{rust,baseline}.*.log"
