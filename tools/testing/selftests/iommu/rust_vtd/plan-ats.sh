# SPDX-License-Identifier: GPL-2.0
# ATS and device-TLB invalidation, and function-level reset through the
# core's pci_dev_reset_iommu_prepare()/done(), on a unit with
# device-iotlb=on (ECAP.DT, and an ATSR that covers every root port).
# QEMU gives the virtio disk and NIC (ats=on, on root ports) both ATS and
# FLR; igb and e1000e have no ATS.  QEMU keeps no device-side cache for
# virtio, so the device-TLB invalidations are counted twice: by rust_vtd
# (qi_stats) and by QEMU, whose vtd_inv_desc trace check.sh reads
# (QEMU_DEVTLB=1).
. /tests/lib.sh
base=$(dmar_units | head -n1)
m=$RVTD_MODE
cycles=100
plan 17

vda=$(pci_devices 0x1af4:0x1042 | head -n1)
vnet=$(pci_devices 0x1af4:0x1041 | head -n1)

# ats_ctrl BDF: the control register of BDF's ATS capability (PCIe
# extended capability 0x000f), read from its configuration space, or
# nothing if it has none.
ats_ctrl() {
	local cfg=/sys/bus/pci/devices/$1/config off=256 hdr n=0
	while [ $off -ge 256 ] && [ $n -lt 64 ]; do
		hdr=$(od -An -tu4 -j $off -N4 $cfg | tr -d ' ')
		[ -n "$hdr" ] && [ "$hdr" != 0 ] || return
		if [ $((hdr & 0xffff)) = 15 ]; then
			od -An -tu2 -j $((off + 6)) -N2 $cfg | tr -d ' '
			return
		fi
		off=$(((hdr >> 20) & 0xffc))
		n=$((n + 1))
	done
}
# ats_on BDF: succeeds if BDF's ATS Enable bit is set.
ats_on() { local c; c=$(ats_ctrl $1); [ -n "$c" ] && [ $((c >> 15 & 1)) = 1 ]; }
# ctx BDF: BDF's legacy context entry on the unit, "LOW HIGH", read from
# memory through the root table (RTADDR), independently of the driver.
ctx() {
	local b=${1#*:} bus devfn rt ctp
	bus=$((0x${b%%:*}))
	devfn=$(((0x$(echo $b | cut -d: -f2 | cut -d. -f1) << 3) | ${b##*.}))
	rt=$(($(reg64 $base 0x20) & ~0xfff))
	ctp=$(($(devmem $((rt + bus * 16)) 64) & ~0xfff))
	[ $ctp = 0 ] && { echo "0 0"; return; }
	echo "$(($(devmem $((ctp + devfn * 16)) 64))) $(($(devmem $((ctp + devfn * 16 + 8)) 64)))"
}
ctx_tt() { set -- $(ctx $1); [ $(($1 & 1)) = 1 ] && echo $((($1 >> 2) & 3)) || echo none; }
ctx_did() { set -- $(ctx $1); echo $((($2 >> 8) & 0xffff)); }
# wait_disk: until the disk's block device is back (5 s at most), after
# its driver bound.
wait_disk() {
	local i=0
	while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
}
# The unit's device-TLB invalidations, submissions and descriptors so far.
counters() { echo "$(qs devtlb_descriptors) $(qs submissions) $(qs descriptors)"; }
# flushes_carry_devtlb NAME BEFORE AFTER: while only BDF's domain was
# flushed, every submission held one IOTLB and one device-TLB invalidation.
flushes_carry_devtlb() {
	set -- "$1" $2 $3
	local name=$1 d0=$2 s0=$3 n0=$4 d1=$5 s1=$6 n1=$7
	local dd=$((d1 - d0)) ds=$((s1 - s0)) dn=$((n1 - n0))
	diag "$name: submissions +$ds, descriptors +$dn, device-TLB +$dd"
	[ $ds -gt 0 ] && [ $dd = $ds ] && [ $dn = $((2 * ds)) ]
}

dmesg -c > /dev/null
insmod $KO
result "insmod_succeeds_$m" $?
diag "disk $vda, NIC $vnet; ATS capability control: disk '$(ats_ctrl $vda)', NIC '$(ats_ctrl $vnet)'"

# Probe: the two virtio functions may use ATS, nothing else may (igb,
# e1000e and edu have no ATS capability).
allowed=$(dmesg | grep 'ATS allowed' | sed -n 's/.* \([0-9a-f]*:[0-9a-f]*:[0-9a-f]*\.[0-7]\): ATS allowed.*/\1/p' | sort | tr '\n' ' ')
diag "ATS allowed for: $allowed"
[ "$allowed" = "$(printf '%s\n' $vda $vnet | sort | tr '\n' ' ')" ]
result "ats_allowed_for_the_virtio_functions_only_$m" $?

# virtio-pci (built in) was bound before rust_vtd registered, so the disk
# has an identity domain, and no ATS, until it is bound again: then a
# translated (lazy) DMA-API domain, with a context entry that lets it ask
# for translations, and ATS on.
diag "disk before its rebind: group $(group_type $vda), ATS control '$(ats_ctrl $vda)'"
rebind $vda
modprobe virtio_blk 2>/dev/null || insmod /lib/modules/*/kernel/drivers/block/virtio_blk.ko
wait_disk
diag "disk: group $(group_type $vda), context TT $(ctx_tt $vda), domain ID $(ctx_did $vda)"
[ "$(ctx_tt $vda)" = 1 ]
result "disk_context_entry_allows_device_tlb_$m" $?
ats_on $vda && [ "$(group_type $vda)" = DMA-FQ ]
result "disk_ats_enabled_in_translated_domain_$m" $?

# Lazy: the flush queue's flush of the domain carries the disk's ATC.
c0=$(counters)
dd if=/dev/vda of=/dev/null bs=1M count=32 iflag=direct 2>/dev/null
sleep 1
flushes_carry_devtlb lazy "$c0" "$(counters)"
result "lazy_flushes_invalidate_the_atc_in_the_same_submission_$m" $?

# Strict: every unmap's flush carries it.
echo $vda > /sys/bus/pci/drivers/virtio-pci/unbind
echo DMA > /sys/bus/pci/devices/$vda/iommu_group/type
echo $vda > /sys/bus/pci/drivers/virtio-pci/bind
wait_disk
c0=$(counters)
dd if=/dev/vda of=/dev/null bs=64k count=64 iflag=direct 2>/dev/null
c1=$(counters)
ats_on $vda && [ "$(group_type $vda)" = DMA ] && flushes_carry_devtlb strict "$c0" "$c1"
result "strict_unmaps_invalidate_the_atc_in_the_same_submission_$m" $?

# Identity: no ATS, and the ATC was flushed when it went off.
echo $vda > /sys/bus/pci/drivers/virtio-pci/unbind
d0=$(qs devtlb_descriptors)
echo identity > /sys/bus/pci/devices/$vda/iommu_group/type
echo $vda > /sys/bus/pci/drivers/virtio-pci/bind
wait_disk
diag "identity: ATS control '$(ats_ctrl $vda)', context TT $(ctx_tt $vda), device-TLB +$(($(qs devtlb_descriptors) - d0))"
! ats_on $vda && [ "$(ctx_tt $vda)" = 2 ] && [ $(($(qs devtlb_descriptors) - d0)) -ge 1 ] &&
	dd if=/dev/vda of=/dev/null bs=1M count=4 iflag=direct 2>/dev/null
result "identity_domain_turns_ats_off_$m" $?
echo $vda > /sys/bus/pci/drivers/virtio-pci/unbind
echo DMA > /sys/bus/pci/devices/$vda/iommu_group/type
echo $vda > /sys/bus/pci/drivers/virtio-pci/bind
wait_disk

# FLR through sysfs, with the disk's driver bound (virtio_blk stops and
# restarts its queues around it): the core moves the disk to the
# blocking domain for the reset (rust_vtd turns ATS off and flushes the
# ATC before the entry goes) and back afterwards.  Every round writes
# 256 KiB, resets, and reads them back.
echo flr > /sys/bus/pci/devices/$vda/reset_method
did0=$(ctx_did $vda) grp0=$(readlink /sys/bus/pci/devices/$vda/iommu_group)
used0=$(cat /sys/class/iommu/dmar0/intel-iommu/domains_used)
kept0=$(qs kept_domain_ids) f0=$(fault_seq)
sleep 2
pt0=$(sec_pagetables_kb)
bad=0 lost=0 r=0
while [ $r -lt $cycles ]; do
	dd if=/dev/urandom of=/tmp/flr.pattern bs=64k count=4 2>/dev/null
	dd if=/tmp/flr.pattern of=/dev/vda bs=64k seek=$((64 + r % 64 * 4)) count=4 oflag=direct 2>/dev/null
	if ! echo 1 > /sys/bus/pci/devices/$vda/reset; then
		diag "round $r: reset failed"
		bad=$((bad + 1))
	fi
	dd if=/dev/vda bs=64k skip=$((64 + r % 64 * 4)) count=4 iflag=direct 2>/dev/null |
		cmp -s - /tmp/flr.pattern || bad=$((bad + 1))
	ats_on $vda && [ "$(ctx_did $vda)" = "$did0" ] && [ "$(ctx_tt $vda)" = 1 ] || lost=$((lost + 1))
	r=$((r + 1))
done
sleep 2
diag "FLR: $r rounds, $bad failed or read back wrong, $lost without ATS or with another domain ID"
diag "FLR: domain ID $did0 -> $(ctx_did $vda), domains used $used0 -> $(cat /sys/class/iommu/dmar0/intel-iommu/domains_used), kept domain IDs $kept0 -> $(qs kept_domain_ids), page tables $pt0 -> $(sec_pagetables_kb) KiB, faults $f0 -> $(fault_seq)"
[ $bad = 0 ] && [ $r = $cycles ]
result "flr_${cycles}_rounds_with_io_verified_$m" $?
[ $lost = 0 ] && [ "$(readlink /sys/bus/pci/devices/$vda/iommu_group)" = "$grp0" ] &&
	[ "$(group_type $vda)" = DMA ]
result "flr_keeps_domain_domain_id_and_ats_$m" $?
[ "$(cat /sys/class/iommu/dmar0/intel-iommu/domains_used)" = "$used0" ] &&
	[ "$(qs kept_domain_ids)" = "$kept0" ] && [ "$(sec_pagetables_kb)" -le "$pt0" ]
result "flr_leaks_no_domain_id_or_table_$m" $?
[ "$(fault_seq)" = "$f0" ]
result "flr_no_dma_fault_$m" $?

# The reset window itself: while an FLR runs (pcie_flr() waits 100 ms
# after it), the disk's context entry is not present (blocking domain;
# configuration space cannot be read meanwhile, so ATS is checked after),
# and it comes back with the same domain ID and ATS on.  Five resets; the
# entry's low word is read from memory as fast as busybox can, and every
# reset must be seen blocked.
b=${vda#*:}
rt=$(($(reg64 $base 0x20) & ~0xfff))
ctp=$(($(devmem $((rt + 0x${b%%:*} * 16)) 64) & ~0xfff))
ce=$((ctp + ((0x$(echo $b | cut -d: -f2 | cut -d. -f1) << 3) | ${b##*.}) * 16))
fail=0 seen=""
for k in 1 2 3 4 5; do
	(echo 1 > /sys/bus/pci/devices/$vda/reset) &
	rp=$!
	polls=0 blocked=0
	while kill -0 $rp 2>/dev/null; do
		[ $(($(devmem $ce 64) & 1)) = 0 ] && blocked=$((blocked + 1))
		polls=$((polls + 1))
	done
	wait $rp || fail=1
	seen="$seen $blocked/$polls"
	[ $blocked -ge 1 ] && [ "$(ctx_did $vda)" = "$did0" ] && ats_on $vda || fail=1
done
diag "reset window: reads that found the entry not present, per reset:$seen; after: TT $(ctx_tt $vda), domain ID $(ctx_did $vda), ATS control '$(ats_ctrl $vda)'"
[ $fail = 0 ] && dd if=/dev/vda of=/dev/null bs=1M count=4 iflag=direct 2>/dev/null
result "flr_window_blocks_the_disk_$m" $?

# The NIC: ATS on, and its traffic's flushes reach its ATC.
rebind $vnet
modprobe virtio_net 2>/dev/null
i=0
while ! ls /sys/bus/pci/devices/$vnet/virtio*/net 2>/dev/null | grep -q . && [ $i -lt 50 ]; do
	usleep 100000
	i=$((i + 1))
done
ifc=$(ls /sys/bus/pci/devices/$vnet/virtio*/net 2>/dev/null | head -n1)
d0=$(qs devtlb_descriptors)
st=1
if [ -n "$ifc" ]; then
	ping_gateway $ifc 10.0.2 30
	st=$?
	diag "NIC $ifc: device-TLB +$(($(qs devtlb_descriptors) - d0))"
	ip link set $ifc down
fi
[ $st = 0 ] && ats_on $vnet && [ $(($(qs devtlb_descriptors) - d0)) -ge 1 ]
result "nic_traffic_with_ats_on_$m" $?

# The units go: every device is released onto the blocking domain first,
# which turns ATS off.
units_unbind
! ats_on $vda && ! ats_on $vnet
result "ats_off_after_the_units_go_$m" $?
rmmod rust_vtd
result "rmmod_succeeds_$m" $?
# For check.sh (QEMU_DEVTLB=1), which counts what QEMU processed: the
# unit's own count, which it logs when it goes.
n=$(dmesg | sed -n 's/.*rust_vtd: dmar0: released;.*(\([0-9]*\) device-TLB invalidations).*/\1/p' | tail -n1)
diag "device-TLB invalidations submitted: ${n:-unknown}"
check_no_splats "$m"
end_plan "ats_$m"
