# SPDX-License-Identifier: GPL-2.0
# Upstream tools/testing/selftests/vfio, unmodified, with QEMU's igb bound
# to vfio-pci behind the IOMMU driver: real DMA through its page tables in
# every IOMMU mode the tests offer (VFIO type1 and type1v2, iommufd's
# compatibility container, native iommufd).
. /tests/lib.sh
m=$RVTD_MODE
flavour=$(uname -r | grep -q rust-vtd && echo rust)
# Two tests more with rust_vtd: insmod, and the faults it reports.
if [ -n "$KO" ]; then plan 13; else plan 11; fi

if [ -n "$KO" ]; then
	insmod $KO
	result "insmod_succeeds_$m" $?
fi
igb=$(pci_devices 0x8086:0x10c9 | head -n1)
echo vfio-pci > /sys/bus/pci/devices/$igb/driver_override
echo $igb > /sys/bus/pci/drivers_probe
# The hugetlb variants need pages reserved: 2 MiB and 1 GiB ones, on the
# kernel command line (hugepagesz=... hugepages=...).
diag "igb $igb, driver $(basename $(readlink /sys/bus/pci/devices/$igb/driver)), group type $(cat /sys/bus/pci/devices/$igb/iommu_group/type)"
diag "hugepages: 2M $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages), 1G $(cat /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages)"
ulimit -l unlimited
tp=0 tf=0 ts=0
for t in vfio_pci_device_test vfio_pci_driver_test vfio_dma_mapping_test vfio_iommufd_setup_test; do
	start=$(date +%s)
	# Each line with the uptime it arrived at (the harness flushes its
	# output before it forks each case), for the time every case took:
	# a case that runs past the harness's 30 s kills the rest of the run.
	{ /tests/upstream/vfio/$t $igb 2>&1; echo "rc $?"; } | while IFS= read -r l; do
		read -r up _ < /proc/uptime
		echo "$up $l"
	done > /tmp/$t.ts
	rc=$(sed -n 's/^[0-9.]* rc \([0-9]*\)$/\1/p' /tmp/$t.ts | tail -n1)
	grep -v '^[0-9.]* rc [0-9]*$' /tmp/$t.ts | sed 's/^[0-9.]* //' > /tmp/$t.out
	# The slowest cases: from a case's RUN line to the next one's (or the
	# totals), seconds.
	awk '/^[0-9.]+ #  RUN / { if (n != "") print $1 - s, n; s = $1; n = $4 }
		/^[0-9.]+ # Totals:/ { if (n != "") print $1 - s, n; n = "" }' /tmp/$t.ts |
		sort -n -r | head -n 3 | awk '{ printf "%s %.1f s; ", $2, $1 }' > /tmp/$t.slow
	diag "$t: slowest cases: $(cat /tmp/$t.slow)"
	tot=$(grep '^# Totals:' /tmp/$t.out | tail -n1)
	p=$(echo "$tot" | sed -n 's/.* pass:\([0-9]*\).*/\1/p')
	f=$(echo "$tot" | sed -n 's/.* fail:\([0-9]*\).*/\1/p')
	s=$(echo "$tot" | sed -n 's/.* skip:\([0-9]*\).*/\1/p')
	diag "$t: pass ${p:-?} fail ${f:-?} skip ${s:-?} (exit $rc, $(($(date +%s) - start)) s)"
	grep -E '^not ok|^ok .*# SKIP' /tmp/$t.out | head -n 12 | sed 's/^/#   /'
	# The first failing case's own output, up to its verdict.
	awk '/^#  RUN /{buf=""} {buf=buf $0 "\n"} /^not ok /{printf "%s", buf; exit}' /tmp/$t.out |
		tail -n 25 | sed 's/^/#     /'
	sed "s/^/[$t] /" /tmp/$t.out > /dev/console 2>/dev/null # whole output in the console log
	[ "$rc" = 0 ] && [ "${f:-1}" = 0 ] && [ "${s:-1}" = 0 ] && [ "${p:-0}" -gt 0 ]
	result "upstream_${t}_$m" $?
	tp=$((tp + ${p:-0})) tf=$((tf + ${f:-0})) ts=$((ts + ${s:-0}))
done
diag "upstream VFIO selftests (${flavour:-baseline}): $tp pass, $tf fail, $ts skip"

# DMA to unmapped IOVAs with the igb (igb_unmapped_dma, on upstream's VFIO
# selftest library): 1000 writes, alternately to an IOVA unmapped since
# and to one never mapped, 20 ms apart (as edu_iommufd: QEMU collapses
# faults of a requester with one pending, and rust_vtd polls for them);
# with rust_vtd, each also waits until a newer fault is in the fault log,
# so that a loaded host cannot make two attempts' faults meet in QEMU.
# None may land, and each must have its own fault: the tool prints the
# IOVA of every attempt, and for every page, rust_vtd's fault log must
# hold as many faults of the igb there as there were attempts.
seq0=$(fault_seq)
lost0=$(fault_overflows)
start=$(date +%s)
if [ -n "$KO" ]; then
	RVTD_FAULT_LOG=$FAULT_LOG igb_unmapped_dma $igb 1000 20 > /tmp/igb_unmapped_dma 2>&1
else
	igb_unmapped_dma $igb 1000 20 > /tmp/igb_unmapped_dma 2>&1
fi
rc=$?
src=${igb#0000:}
sleep 1
grep '^ATTEMPT ' /tmp/igb_unmapped_dma | while read -r _ a; do printf '%#x\n' $((a & ~4095)); done |
	sort | uniq -c > /tmp/igb_attempts
awk -v s=$src -v n=$seq0 '$1 > n && $2 == s { print $3 }' $FAULT_LOG 2>/dev/null | sort | uniq -c > /tmp/igb_faults
short=0 pages=0 attempts=0
while read -r want page; do
	got=$(awk -v p=$page '$2 == p { print $1 }' /tmp/igb_faults)
	pages=$((pages + 1)) attempts=$((attempts + want))
	[ "${got:-0}" -ge $want ] || { short=$((short + 1)); [ $short -le 5 ] && diag "page $page: $want attempts, ${got:-0} faults"; }
done < /tmp/igb_attempts
lost=$(($(fault_overflows) - lost0))
diag "igb_unmapped_dma: exit $rc, $(($(date +%s) - start)) s: $(grep '^IGB' /tmp/igb_unmapped_dma); $attempts attempts on $pages pages, $short pages short of faults, overflows: $lost"
grep -v '^IGB\|^ATTEMPT' /tmp/igb_unmapped_dma | head -8 | sed 's/^/#   /'
dmesg | grep "rust_vtd: dmar[0-9]*: DMA write fault: source $src" | tail -n 1 | sed 's/^/# /'
grep -q '^IGB attempts 1000 landed 0 ' /tmp/igb_unmapped_dma && [ $rc = 0 ]
result "igb_dma_to_unmapped_iova_never_lands_$m" $?
if [ -n "$KO" ]; then
	[ $attempts = 1000 ] && [ $short = 0 ] && [ $lost = 0 ]
	result "igb_every_unmapped_dma_attempt_faults_$m" $?
fi

# A fault-capable HWPT (IOMMU_HWPT_FAULT_ID_VALID) through iommufd, with
# edu on vfio-pci: neither driver can deliver its page faults (QEMU's edu
# has no PRI), so both must refuse its attach and its replace with ENODEV,
# and edu's DMA must keep landing through its paging HWPT (make
# vfio-compare shows both drivers).
echo vfio-pci > /sys/bus/pci/devices/$EDU/driver_override
echo $EDU > /sys/bus/pci/drivers_probe
edu_iommufd $EDU fault-hwpt > /tmp/fault.out 2>&1
grep -v '^ok ' /tmp/fault.out | sed 's/^#* */# edu_iommufd fault-hwpt: /'
for t in fault_capable_hwpt_replace_refused old_domain_kept_after_refused_replace \
	fault_capable_hwpt_attach_refused paging_hwpt_attaches_after_refusal; do
	grep -q "^ok $t\$" /tmp/fault.out
	result "${t}_$m" $?
done
check_no_splats "vfio_$m"
end_plan "vfio_$m"
