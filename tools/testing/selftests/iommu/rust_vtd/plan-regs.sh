# SPDX-License-Identifier: GPL-2.0
# Register-based invalidation (VT-d 6.5.1): what units without an
# invalidation queue use, and what QEMU's unit never needs, since it
# always offers one (ECAP.QI).  rust_vtd loaded with
# queued_invalidation=0 leaves the queue off and invalidates through the
# context command (CCMD) and IOTLB registers.  Then real DMA through
# translated domains whose changes must take effect: QEMU caches IOTLB
# and context entries, so a DMA after an unmap faults, and a DMA after a
# domain replace lands in the new buffer, only if the invalidation was
# carried out.
. /tests/lib.sh
m=$RVTD_MODE
base=$(dmar_units | head -n1)
plan 8

dmesg -c > /dev/null
insmod $KO queued_invalidation=0
result "insmod_succeeds_$m" $?

# The queue stays off; the registers show invalidations carried out: the
# actual granularity of the last context-cache (CCMD.CAIG) and IOTLB
# (IOTLB.IAIG, at ECAP.IRO + 8) invalidation is not 0 ("ignored").
qies=$(($(reg32 $base 0x1c) >> 26 & 1))
ccmd=$(reg64 $base 0x28)
iro=$(((($(reg64 $base 0x10) >> 8) & 0x3ff) * 16))
iotlb=$(reg64 $base $((iro + 8)))
caig=$(((ccmd >> 59) & 3)) iaig=$(((iotlb >> 57) & 3))
diag "GSTS.QIES $qies, CCMD $ccmd (CAIG $caig), IOTLB $iotlb at $(printf %#x $iro) + 8 (IAIG $iaig), queue submissions $(qs submissions)"
dmesg | grep 'rust_vtd' | grep 'registers' | head -n 2 | sed 's/^/# /'
[ $qies = 0 ] && [ $caig != 0 ] && [ $iaig != 0 ] && [ "$(qs submissions)" = 0 ] &&
	dmesg | grep -q 'rust_vtd: dmar0: invalidation through the registers'
result "register_invalidation_in_use_$m" $?

# iommufd: translated DMA lands; after the unmap, 100 DMAs to the
# unmapped IOVA never land, each with its fault; replacing the domain
# retargets the DMA; a 4 MiB mapping translates; an unmap frees its
# tables.  Every unmap and replace is invalidated through the registers.
echo vfio-pci > /sys/bus/pci/devices/$EDU/driver_override
echo $EDU > /sys/bus/pci/drivers_probe
src=${EDU#*:}
seq0=$(fault_seq)
edu_iommufd $EDU 100 20 > /tmp/iommufd.out 2>&1
grep -v '^ok \|^not ok ' /tmp/iommufd.out | sed 's/^#* */# edu_iommufd: /' | head -8
grep '^not ok ' /tmp/iommufd.out | sed 's/^/# /'
n=$(wait_faults_at $src 0x101000 $seq0 100)
diag "unmapped IOVA: 100 attempts, $n faults of $src at 0x101000"
st=0
for t in translated_dma_lands unmapped_dma_never_lands hwpt_replace_retargets \
	large_mapping_translates unmap_frees_page_tables; do
	grep -q "^ok $t\$" /tmp/iommufd.out || st=1
done
[ $st = 0 ] && [ $n -ge 100 ]
result "iommufd_dma_with_register_invalidation_$m" $?
echo $EDU > /sys/bus/pci/drivers/vfio-pci/unbind
echo > /sys/bus/pci/devices/$EDU/driver_override

# The DMA API: e1000e's driver on a lazy (DMA-FQ) domain, whose flush
# queue invalidates from a timer: 50 pings intact, no fault.
f0=$(fault_seq)
e1000e_ping DMA-FQ
st=$?
result "e1000e_ping_with_register_invalidation_$m" $st
[ -n "$ifc" ] && ip link set $ifc down
[ -e /sys/bus/pci/devices/$nic/driver ] && echo $nic > /sys/bus/pci/devices/$nic/driver/unbind

# Two threads mapping and unmapping on a strict domain: every unmap waits
# for its own register invalidation, under the unit's register lock.
echo DMA > /sys/bus/pci/devices/$nic/iommu_group/type
echo dma_map_benchmark > /sys/bus/pci/devices/$nic/driver_override
echo $nic > /sys/bus/pci/drivers_probe
out=$(dma_map_benchmark -t 2 -s 3 -g 16 2>&1)
st=$?
diag "strict, 2 threads: $(echo "$out" | grep -o 'average [a-z]* latency(us):[0-9.]*' | tr '\n' ' ')"
[ $st = 0 ] && [ "$(group_type $nic)" = DMA ] && [ "$(fault_seq)" = "$f0" ] &&
	[ "$(qs unconfirmed)" = 0 ]
result "strict_unmaps_with_register_invalidation_$m" $?
echo $nic > /sys/bus/pci/drivers/dma_map_benchmark/unbind
echo > /sys/bus/pci/devices/$nic/driver_override

units_unbind
rmmod rust_vtd
result "units_unbind_then_rmmod_$m" $?
check_no_splats "regs_$m"
end_plan "regs_$m"
