# SPDX-License-Identifier: GPL-2.0
# rust_vtd as an IOMMU driver: groups, translation on, the identity and
# blocking domains shown with real DMA, release, and taking units down.
. /tests/lib.sh
base=$(dmar_units | head -n1)
m=$RVTD_MODE

# A device with a driver bound before rust_vtd loads: virtio-blk.
modprobe virtio_blk 2>/dev/null || insmod /lib/modules/*/kernel/drivers/block/virtio_blk.ko
dd if=/dev/urandom of=/tmp/pattern bs=4096 count=16 2>/dev/null
dmesg -c > /dev/null
insmod $KO
result "insmod_succeeds_$m" $?
[ $(($(reg32 $base 0x1c) >> 31 & 1)) = 1 ]
result "translation_enabled_after_load_$m" $?

# Invalidations go through the queue: QIES set, and the unit has consumed
# every descriptor the attaches above queued (IQH == IQT, past zero).
qies=$(($(reg32 $base 0x1c) >> 26 & 1))
iqh=$(($(reg64 $base 0x80))) iqt=$(($(reg64 $base 0x88)))
diag "GSTS.QIES $qies, IQH $iqh, IQT $iqt"
[ $qies = 1 ] && [ $iqt != 0 ] && [ $iqh = $iqt ]
result "queued_invalidation_in_use_$m" $?

# The C driver's sysfs attributes, in its formats.
a=/sys/class/iommu/dmar0/intel-iommu
ver=$(reg32 $base 0x0)
cap=$(reg64 $base 0x8)
fail=0
for want in "version $(((ver >> 4) & 15)):$((ver & 15))" "address $(printf %x $base)" \
	"cap $(printf %x $cap)" "ecap $(printf %x $(reg64 $base 0x10))" \
	"domains_supported $((1 << (4 + 2 * (cap & 7))))" "domains_used 1"; do
	got="${want%% *} $(cat $a/${want%% *} 2>&1)"
	[ "$got" = "$want" ] || { diag "$a: got '$got', want '$want'"; fail=1; }
done
result "intel_iommu_sysfs_attributes_$m" $fail

# Every PCI device gets a group; with no paging domains yet, the default
# domain of every group is identity.
fail=0
for d in /sys/bus/pci/devices/*; do
	g=$(readlink $d/iommu_group 2>/dev/null)
	if [ -z "$g" ]; then diag "${d##*/}: no IOMMU group"; fail=1; continue; fi
	t=$(cat /sys/kernel/iommu_groups/${g##*/}/type)
	[ "$t" = identity ] || { diag "${d##*/}: group ${g##*/} type $t"; fail=1; }
done
diag "$(ls /sys/kernel/iommu_groups | wc -l) groups for $(ls /sys/bus/pci/devices | wc -l) devices"
result "every_pci_device_has_a_group_$m" $fail

# Every group reserves the interrupt window.
fail=0
for g in /sys/kernel/iommu_groups/*; do
	grep -q '^0x00000000fee00000 0x00000000feefffff msi$' $g/reserved_regions ||
		{ diag "group ${g##*/}: $(cat $g/reserved_regions)"; fail=1; }
done
result "groups_reserve_the_msi_window_$m" $fail

# Bound before the IOMMU registered: kept on direct DMA, no splat.
n=$(dmesg | grep -c 'driver bound before the IOMMU: identity domain')
diag "$n devices were bound before the IOMMU"
[ "$n" -ge 2 ] && [ -z "$(splats)" ]
result "late_registration_keeps_bound_devices_direct_$m" $?

# The boot disk keeps working with translation on.
dd if=/tmp/pattern of=/dev/vda bs=4096 count=16 conv=fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/readback bs=4096 count=16 iflag=direct 2>/dev/null ||
	dd if=/dev/vda of=/tmp/readback bs=4096 count=16 2>/dev/null
cmp -s /tmp/pattern /tmp/readback
result "virtio_blk_write_read_with_translation_on_$m" $?

# Identity: edu copies RAM -> device -> RAM through physical addresses.
pci_enable_master $EDU
fill $SCRATCH 16 0x5a5a0000
fill $((SCRATCH + 0x1000)) 16 0
edu_dma $SCRATCH $EDU_BUF 64 0 && edu_dma $EDU_BUF $((SCRATCH + 0x1000)) 64 1 &&
	same $((SCRATCH + 0x1000)) 16 0x5a5a0000
result "identity_domain_dma_lands_$m" $?

# Blocking: edu bound to vfio-pci and held by an iommufd with nothing
# attached; its DMA to RAM must not land and must fault, every time.
echo vfio-pci > /sys/bus/pci/devices/$EDU/driver_override
echo $EDU > /sys/bus/pci/drivers_probe
vfio_hold $EDU > /tmp/hold 2>&1 &
hold=$!
i=0
while ! grep -q held /tmp/hold && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
fail=0 faults=0
i=0
if ! grep -q held /tmp/hold; then
	diag "vfio_hold: $(cat /tmp/hold)"
	fail=1 i=100
fi
pci_enable_master $EDU
src=${EDU#*:}
while [ $i -lt 100 ] && [ $fail = 0 ]; do
	before=$(fault_lines $src)
	fill $((SCRATCH + 0x2000)) 16 0x11110000
	edu_dma $EDU_BUF $((SCRATCH + 0x2000)) 64 1 || fail=1
	same $((SCRATCH + 0x2000)) 16 0x11110000 || { diag "attempt $i: DMA landed"; fail=1; }
	if wait_fault $src $before; then faults=$((faults + 1)); else diag "attempt $i: no fault reported"; fail=1; fi
	i=$((i + 1))
done
diag "blocked DMA: $i attempts, $faults faults reported by rust_vtd, memory unchanged: $([ $fail = 0 ] && echo yes || echo no)"
dmesg | grep 'rust_vtd: dmar0: DMA write fault' | tail -n 1 | sed 's/^/# /'
result "blocking_domain_dma_faults_$m" $fail
kill $hold
wait $hold 2>/dev/null
echo $EDU > /sys/bus/pci/drivers/vfio-pci/unbind
echo > /sys/bus/pci/devices/$EDU/driver_override

# Release: a removed device goes through the blocking release domain.
EDUBAR=$(edu_bar)
pci_enable_master $EDU
echo 1 > /sys/bus/pci/devices/$EDU/remove
fill $((SCRATCH + 0x3000)) 16 0x22220000
before=$(fault_lines $src)
# The device is gone from the kernel but not from the machine: program it
# at the BAR address it had.
edu_dma_after_remove() {
	devmem $((EDUBAR + 0x80)) 64 $EDU_BUF
	devmem $((EDUBAR + 0x88)) 64 $((SCRATCH + 0x3000))
	devmem $((EDUBAR + 0x90)) 64 64
	devmem $((EDUBAR + 0x98)) 64 3
	usleep 500000
}
edu_dma_after_remove
wait_fault $src $before && same $((SCRATCH + 0x3000)) 16 0x22220000
result "release_domain_blocks_after_remove_$m" $?
echo 1 > /sys/bus/pci/rescan
sleep 1
[ -e /sys/bus/pci/devices/$EDU/iommu_group ] && {
	pci_enable_master $EDU
	fill $((SCRATCH + 0x1000)) 16 0
	edu_dma $SCRATCH $EDU_BUF 64 0 && edu_dma $EDU_BUF $((SCRATCH + 0x1000)) 64 1 &&
		same $((SCRATCH + 0x1000)) 16 0x5a5a0000
}
result "replug_gets_group_and_identity_dma_again_$m" $?

# Taking the units down: rmmod is refused while the core holds devices;
# unbinding the units releases them and turns translation off.
rmmod rust_vtd 2>/dev/null && { diag "rmmod succeeded with devices probed"; insmod $KO; }
units_unbind
gsts=$(reg32 $base 0x1c)
[ $((gsts >> 31 & 1)) = 0 ] && [ $((gsts >> 26 & 1)) = 0 ] && [ -z "$(ls /sys/kernel/iommu_groups)" ] && rmmod rust_vtd
result "units_unbind_then_rmmod_$m" $?
dd if=/dev/vda of=/tmp/readback bs=4096 count=16 iflag=direct 2>/dev/null &&
	cmp -s /tmp/pattern /tmp/readback
result "bound_device_dma_after_unload_$m" $?

# 50 load/unload cycles with a bound device doing DMA in between.
echo clear > /sys/kernel/debug/kmemleak 2>/dev/null
iomem0=$(md5sum < /proc/iomem)
fail=0
i=0
while [ $i -lt 50 ]; do
	insmod $KO || { diag "insmod failed in cycle $i"; fail=1; break; }
	dd if=/dev/vda of=/dev/null bs=4096 count=16 iflag=direct 2>/dev/null || { diag "disk read failed in cycle $i"; fail=1; }
	units_unbind
	rmmod rust_vtd || { diag "rmmod failed in cycle $i"; fail=1; break; }
	i=$((i + 1))
done
[ "$(md5sum < /proc/iomem)" = "$iomem0" ] || { diag "/proc/iomem changed"; fail=1; }
echo scan > /sys/kernel/debug/kmemleak
echo scan > /sys/kernel/debug/kmemleak
leaks=$(grep -c 'unreferenced object' /sys/kernel/debug/kmemleak)
[ "$leaks" = 0 ] || { head -40 /sys/kernel/debug/kmemleak | sed 's/^/# /'; fail=1; }
diag "$i cycles, kmemleak: $leaks"
result "load_unload_50_cycles_with_bound_device_$m" $fail
check_no_splats "domains_$m"
