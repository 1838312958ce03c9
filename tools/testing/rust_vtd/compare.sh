#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# compare.sh: (inside the sysroot) upstream VFIO and iommufd selftests,
# unmodified, on the rust kernel (rust_vtd) and on the baseline kernel (the
# C driver), in the same VM with the same command line, and their results
# side by side.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
mode=${IOMMU:-legacy}
out=$LOGDIR/vfio-compare.md
for f in rust baseline; do
	log "upstream VFIO selftests on the $f kernel, intel-iommu mode '$mode'"
	RVTD_MEM=4G vm_boot "vfio-$f" "$f" "$mode" vfio 1500 "${VFIO_KARGS[@]}" \
		> "$LOGDIR/vfio-$f.qemu.log" 2>&1 || true
	log "upstream iommufd selftests on the $f kernel"
	vm_boot "iommufd-$f" "$f" "$mode" iommufd 1200 > "$LOGDIR/iommufd-$f.qemu.log" 2>&1 || true
done
# The plan prints "# TEST: pass P fail F skip S (exit E, T s)" per test.
# (The guest's serial lines end in CR LF.)
res() { tr -d '\r' < "$LOGDIR/$1.results.log"; }
field() { res vfio-$1 | sed -n "s/^# $2: pass \([0-9?]*\) fail \([0-9?]*\) skip \([0-9?]*\) (exit [0-9]*, \([0-9]*\) s)$/\\$3/p" | tail -n1; }
{
	echo "Upstream VFIO selftests, intel-iommu mode '$mode', $(pick_accel), $(date -u +%F)"
	echo
	echo "| test | rust_vtd pass/fail/skip | time | C driver pass/fail/skip | time |"
	echo "|---|---|---|---|---|"
	for t in vfio_pci_device_test vfio_pci_driver_test vfio_dma_mapping_test vfio_iommufd_setup_test; do
		echo "| $t | $(field rust $t 1)/$(field rust $t 2)/$(field rust $t 3) | $(field rust $t 4) s" \
			"| $(field baseline $t 1)/$(field baseline $t 2)/$(field baseline $t 3) | $(field baseline $t 4) s |"
	done
	# edu_iommufd fault-hwpt (plan-vfio.sh): ok or not ok, per check.
	ours() { res vfio-$1 | sed -n -E "s/^(not ok|ok) [0-9]+ (- )?${2}_[a-z0-9-]+\$/\1/p" | tail -n1; }
	for t in fault_capable_hwpt_replace_refused old_domain_kept_after_refused_replace \
		fault_capable_hwpt_attach_refused paging_hwpt_attaches_after_refusal; do
		echo "| edu: $t | $(ours rust $t) | | $(ours baseline $t) | |"
	done
	# iommufd: rust_vtd's run with the driver loaded against the C driver's.
	ifield() { res iommufd-$1 | sed -n "s/^# $3, $2: pass \([0-9?]*\) fail \([0-9?]*\) skip \([0-9?]*\) (exit [0-9]*, \([0-9]*\) s)$/\\1\/\\2\/\\3 | \\4 s/p" | tail -n1; }
	for t in iommufd iommufd_fail_nth; do
		echo "| $t (mock domain) | $(ifield rust with_rust_vtd $t) | $(ifield baseline with_c_driver $t) |"
	done
	failed() { res iommufd-$1 | sed -n "s/^# $3 failed ($2): //p" | sort; }
	for t in iommufd iommufd_fail_nth; do
		echo
		d=$(diff <(failed rust with_rust_vtd $t) <(failed baseline with_c_driver $t) | grep '^[<>]' || true)
		if [ -z "$d" ]; then
			echo "$t: the same $(failed rust with_rust_vtd $t | wc -l) cases fail with either driver."
		else
			echo "$t cases that fail with only one driver (< rust_vtd, > C driver):"
			echo
			echo "$d" | sed 's/^/    /'
		fi
	done
} > "$out"
cat "$out"
log "table: $out; logs: $LOGDIR/{vfio,iommufd}-{rust,baseline}.*.log"
