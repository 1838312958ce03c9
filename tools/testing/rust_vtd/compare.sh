#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# compare.sh: (inside the sysroot) upstream VFIO selftests, unmodified, on
# the rust kernel (rust_vtd) and on the baseline kernel (the C driver), in
# the same VM with the same command line, and their results side by side.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
mode=${IOMMU:-legacy}
out=$LOGDIR/vfio-compare.md
for f in rust baseline; do
	log "upstream VFIO selftests on the $f kernel, intel-iommu mode '$mode'"
	RVTD_MEM=4G vm_boot "vfio-$f" "$f" "$mode" vfio 1500 "${VFIO_KARGS[@]}" \
		> "$LOGDIR/vfio-$f.qemu.log" 2>&1 || true
done
# The plan prints "# TEST: pass P fail F skip S (exit E, T s)" per test.
field() { sed -n "s/^# $2: pass \([0-9?]*\) fail \([0-9?]*\) skip \([0-9?]*\) (exit [0-9]*, \([0-9]*\) s)$/\\$3/p" \
	"$LOGDIR/vfio-$1.results.log" | tail -n1; }
{
	echo "Upstream VFIO selftests, intel-iommu mode '$mode', $(pick_accel), $(date -u +%F)"
	echo
	echo "| test | rust_vtd pass/fail/skip | time | C driver pass/fail/skip | time |"
	echo "|---|---|---|---|---|"
	for t in vfio_pci_device_test vfio_pci_driver_test vfio_dma_mapping_test vfio_iommufd_setup_test; do
		echo "| $t | $(field rust $t 1)/$(field rust $t 2)/$(field rust $t 3) | $(field rust $t 4) s" \
			"| $(field baseline $t 1)/$(field baseline $t 2)/$(field baseline $t 3) | $(field baseline $t 4) s |"
	done
} > "$out"
cat "$out"
log "table: $out; logs: $LOGDIR/vfio-{rust,baseline}.*.log"
