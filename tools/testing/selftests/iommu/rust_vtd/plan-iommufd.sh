# SPDX-License-Identifier: GPL-2.0
# Upstream tools/testing/selftests/iommu (iommufd against the core's mock
# domain, CONFIG_IOMMUFD_TEST), unmodified: first with no IOMMU driver
# loaded, then with rust_vtd loaded and translating.  rust_vtd must not
# change a single result.  On the baseline kernel (make vfio-compare) it
# runs once, with the C driver.
. /tests/lib.sh
m=$RVTD_MODE
ulimit -l unlimited
# The dirty-tracking "huge" variants map up to 128 MiB of 2 MiB pages.
echo 160 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages

# run_iommufd TAG: run the suite, leave its results in /tmp/iommufd.TAG.
run_iommufd() {
	local start=$(date +%s) tot p f s
	/tests/upstream/iommu/iommufd > /tmp/iommufd.$1.out 2>&1
	echo $? > /tmp/iommufd.$1.rc
	tot=$(grep '^# Totals:' /tmp/iommufd.$1.out | tail -n1)
	p=$(echo "$tot" | sed -n 's/.* pass:\([0-9]*\).*/\1/p')
	f=$(echo "$tot" | sed -n 's/.* fail:\([0-9]*\).*/\1/p')
	s=$(echo "$tot" | sed -n 's/.* skip:\([0-9]*\).*/\1/p')
	diag "iommufd, $1: pass ${p:-?} fail ${f:-?} skip ${s:-?} (exit $(cat /tmp/iommufd.$1.rc), $(($(date +%s) - start)) s)"
	grep -E '^(not )?ok ' /tmp/iommufd.$1.out | sed 's/^\(not ok\|ok\) [0-9]* /\1 /' > /tmp/iommufd.$1
	[ "${p:-0}" -gt 0 ]
}

# failures TAG: list the cases that failed, one per line, for compare.sh.
failures() { grep '^not ok' /tmp/iommufd.$1 | sed "s/^not ok /# iommufd failed ($1): /"; }

if [ -z "$KO" ]; then
	# The baseline kernel (make vfio-compare): the C driver is built in
	# and translating; the suite runs once.
	run_iommufd with_c_driver
	result "upstream_iommufd_ran_with_c_driver_$m" $?
	failures with_c_driver
else
	run_iommufd without_rust_vtd
	result "upstream_iommufd_ran_without_iommu_driver_$m" $?
	insmod $KO
	result "insmod_succeeds_$m" $?
	run_iommufd with_rust_vtd
	result "upstream_iommufd_ran_with_rust_vtd_$m" $?
	diff /tmp/iommufd.without_rust_vtd /tmp/iommufd.with_rust_vtd > /tmp/iommufd.diff
	st=$?
	sed 's/^/#   /' /tmp/iommufd.diff | head -20
	result "upstream_iommufd_same_results_with_rust_vtd_$m" $st
	failures with_rust_vtd
	[ $(($(reg32 $(dmar_units | head -n1) 0x1c) >> 31 & 1)) = 1 ]
	result "translation_still_enabled_$m" $?
fi
check_no_splats "iommufd_$m"
