# SPDX-License-Identifier: GPL-2.0
# Upstream tools/testing/selftests/iommu, unmodified: iommufd against the
# core's mock domain (CONFIG_IOMMUFD_TEST), and iommufd_fail_nth, which
# fails each allocation of its ioctls in turn.  Both run first with no
# IOMMU driver loaded, then with rust_vtd loaded and translating: rust_vtd
# must not change a single result.  On the baseline kernel (make
# vfio-compare) they run once, with the C driver.
#
# Then iommufd against a real device: iommufd_device (kselftest harness)
# runs HWPT and IOAS cases on edu through vfio-pci, each checked by DMA,
# with rust_vtd translating (and on the baseline kernel with the C driver).
#
# Last, rust_vtd's own allocations: vtd_fail_nth fails each allocation
# rust_vtd makes during iommufd work on the igb (paging domains, attach,
# replace, map, unmap, detach), one per round.
. /tests/lib.sh
m=$RVTD_MODE
ulimit -l unlimited
# The dirty-tracking "huge" variants map up to 128 MiB of 2 MiB pages.
echo 160 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
SUITES="iommufd iommufd_fail_nth"
# iommufd_device's cases, each one result.
DEVICE_CASES="get_hw_info attach_ioas_dma_lands hwpt_alloc_attach_unmap detach_blocks_dma
	hwpt_replace ioas_copy iova_ranges_exclude_msi_window fault_capable_hwpt_refused"
ncases=$(echo $DEVICE_CASES | wc -w)
if [ -n "$KO" ]; then plan $((16 + ncases)); else plan $((4 + ncases)); fi

# run_suite SUITE TAG: run it, leave its results in /tmp/SUITE.TAG.
run_suite() {
	local start=$(date +%s) tot p f s
	/tests/upstream/iommu/$1 > /tmp/$1.$2.out 2>&1
	echo $? > /tmp/$1.$2.rc
	tot=$(grep '^# Totals:' /tmp/$1.$2.out | tail -n1)
	p=$(echo "$tot" | sed -n 's/.* pass:\([0-9]*\).*/\1/p')
	f=$(echo "$tot" | sed -n 's/.* fail:\([0-9]*\).*/\1/p')
	s=$(echo "$tot" | sed -n 's/.* skip:\([0-9]*\).*/\1/p')
	diag "$1, $2: pass ${p:-?} fail ${f:-?} skip ${s:-?} (exit $(cat /tmp/$1.$2.rc), $(($(date +%s) - start)) s)"
	grep -E '^(not )?ok ' /tmp/$1.$2.out | sed 's/^\(not ok\|ok\) [0-9]* /\1 /' > /tmp/$1.$2
	[ "${p:-0}" -gt 0 ]
}

# device_suite TAG: iommufd_device on edu, bound to vfio-pci for it; one
# result per case, iommufd_device_CASE_TAG.
device_suite() {
	local edu=$(pci_devices 0x1234:0x11e8 | head -n1) c
	echo 1 > /sys/module/iommufd/parameters/allow_unsafe_interrupts
	echo vfio-pci > /sys/bus/pci/devices/$edu/driver_override
	echo $edu > /sys/bus/pci/drivers_probe
	IOMMUFD_DEVICE=$edu /bin/iommufd_device > /tmp/iommufd_device.$1 2>&1
	diag "iommufd_device on $edu, $1: $(grep '^# Totals:' /tmp/iommufd_device.$1)"
	grep -E '^#.*(iommufd_device\.c:|FAIL)' /tmp/iommufd_device.$1 | head -20
	for c in $DEVICE_CASES; do
		grep -qE "^ok [0-9]+ edu\.$c\$" /tmp/iommufd_device.$1
		result "iommufd_device_${c}_$1" $?
	done
	echo $edu > /sys/bus/pci/drivers/vfio-pci/unbind
	echo > /sys/bus/pci/devices/$edu/driver_override
}

# failures SUITE TAG: list the cases that failed, one per line, for compare.sh.
failures() { grep '^not ok' /tmp/$1.$2 | sed "s/^not ok /# $1 failed ($2): /"; }

# leaks_now WHEN: count (in $LEAKS) and show the objects kmemleak finds
# unreferenced now, then forget them.  (Without patch 0014,
# iommufd_fail_nth leaks a struct dev_iommu in the core's mock device code
# for every mock device whose fwspec allocation it fails, with or without
# an IOMMU driver.)
leaks_now() {
	# kmemleak reports only objects older than 5 s, and only from the
	# second scan that finds them unreferenced and unchanged.
	sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	echo scan > /sys/kernel/debug/kmemleak
	LEAKS=$(grep -c 'unreferenced object' /sys/kernel/debug/kmemleak)
	diag "kmemleak after $1: $LEAKS unreferenced objects"
	grep -A14 'unreferenced object' /sys/kernel/debug/kmemleak | grep -E '^ +[A-Za-z0-9_.]+\+0x' |
		grep -vE 'slab_|kmalloc|syscall|SYSCALL|ioctl' | sort | uniq -c | sort -rn | head -8 | sed 's/^/#   /'
	echo clear > /sys/kernel/debug/kmemleak
}
echo clear > /sys/kernel/debug/kmemleak

if [ -z "$KO" ]; then
	# The baseline kernel (make vfio-compare): the C driver is built in
	# and translating; each suite runs once.
	for t in $SUITES; do
		run_suite $t with_c_driver
		result "upstream_${t}_ran_with_c_driver_$m" $?
		failures $t with_c_driver
	done
	device_suite "with_c_driver_$m"
	check_no_splats "iommufd_$m"
	leaks_now "the upstream suites with the C driver"
	end_plan "iommufd_$m"
	exit 0
fi

for t in $SUITES; do
	run_suite $t without_rust_vtd
	result "upstream_${t}_ran_without_iommu_driver_$m" $?
done
check_no_splats "iommufd_without_iommu_driver_$m"
leaks_now "the upstream suites without an IOMMU driver"
splats_from_now
insmod $KO
result "insmod_succeeds_$m" $?
for t in $SUITES; do
	run_suite $t with_rust_vtd
	result "upstream_${t}_ran_with_rust_vtd_$m" $?
	diff /tmp/$t.without_rust_vtd /tmp/$t.with_rust_vtd > /tmp/$t.diff
	st=$?
	sed 's/^/#   /' /tmp/$t.diff | head -20
	result "upstream_${t}_same_results_with_rust_vtd_$m" $st
	failures $t with_rust_vtd
done
[ $(($(reg32 $(dmar_units | head -n1) 0x1c) >> 31 & 1)) = 1 ]
result "translation_still_enabled_$m" $?
check_no_splats "iommufd_$m"
leaks_now "the upstream suites with rust_vtd"
[ "$LEAKS" = 0 ]
result "upstream_suites_leak_nothing_with_rust_vtd_$m" $?
splats_from_now
device_suite "with_rust_vtd_$m"

# --- rust_vtd's allocations, failed one at a time (vtd_fail_nth) ---
# Fault injection counts only allocations with rust_vtd's code on the
# stack: from its first text symbol to a page past its last.
text=$(grep -E '^[0-9a-f]+ [tT] .*\[rust_vtd\]$' /proc/kallsyms | cut -d' ' -f1 | sort)
lo=0x$(echo "$text" | head -n1) hi=$(printf '0x%x' $((0x$(echo "$text" | tail -n1) + 4096)))
diag "rust_vtd text $lo-$hi ($(echo "$text" | wc -l) symbols)"
# fail_iommufd is iommufd's own (CONFIG_IOMMUFD_TEST): fail-nth counts
# its points too, which fail with EFAULT, EINVAL or ENOENT.
FAULTS="failslab fail_page_alloc fail_iommufd"
for a in $FAULTS; do
	d=/sys/kernel/debug/$a
	echo 0 > $d/verbose
	echo $lo > $d/require-start
	echo $hi > $d/require-end
done
echo N > /sys/kernel/debug/failslab/ignore-gfp-wait
echo N > /sys/kernel/debug/fail_page_alloc/ignore-gfp-wait
echo N > /sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem
echo 0 > /sys/kernel/debug/fail_page_alloc/min-order
# The igb through vfio-pci; QEMU's interrupt remapping is not in use.
echo 1 > /sys/module/iommufd/parameters/allow_unsafe_interrupts
igb=$(pci_devices 0x8086:0x10c9 | head -n1)
echo vfio-pci > /sys/bus/pci/devices/$igb/driver_override
echo $igb > /sys/bus/pci/drivers_probe
pt0=$(sec_pagetables_kb)
start=$(date +%s)
vtd_fail_nth $igb > /tmp/vtd_fail_nth 2>&1
rc=$?
diag "vtd_fail_nth: exit $rc, $(($(date +%s) - start)) s: $(grep '^FAILNTH' /tmp/vtd_fail_nth)"
# Which steps failed, and how often.
grep '^# n=' /tmp/vtd_fail_nth | sed 's/^# n=[0-9]*: //' | sort | uniq -c | sed 's/^ */#   /'
grep -E 'tables wrong|want|without injection|after the rounds|still injecting|^[^#F]' /tmp/vtd_fail_nth | head -20 | sed 's/^/#   /'
result "rust_vtd_allocation_failures_give_enomem_and_right_tables_$m" $rc
for a in $FAULTS; do
	echo 0 > /sys/kernel/debug/$a/require-start
	printf '0x%x\n' -1 > /sys/kernel/debug/$a/require-end
done
echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null || sleep 3
pt1=$(sec_pagetables_kb)
diag "IOMMU page tables: $pt0 KiB before, $pt1 KiB after"
[ -n "$pt0" ] && [ "$pt0" = "$pt1" ]
result "rust_vtd_allocation_failures_leave_no_page_tables_$m" $?
leaks_now vtd_fail_nth
[ "$LEAKS" = 0 ]
result "rust_vtd_allocation_failures_leak_nothing_$m" $?
check_no_splats "vtd_fail_nth_$m"
end_plan "iommufd_$m"
