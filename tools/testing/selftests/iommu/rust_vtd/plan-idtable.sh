# SPDX-License-Identifier: GPL-2.0
# Identity domains on a 1:1 page table, as on units without pass-through
# (ECAP.PT clear; QEMU always sets it, so the module parameter
# identity_page_tables=1 asks for the table instead).
. /tests/lib.sh
base=$(dmar_units | head -n1)
m=$RVTD_MODE
plan 8

modprobe virtio_blk 2>/dev/null || insmod /lib/modules/*/kernel/drivers/block/virtio_blk.ko
dd if=/dev/urandom of=/tmp/pattern bs=4096 count=64 2>/dev/null
dmesg -c > /dev/null
insmod $KO identity_page_tables=1
result "insmod_with_identity_page_tables_$m" $?
line=$(dmesg | grep 'rust_vtd: dmar0: identity domain: 1:1 page table of')
diag "${line#*rust_vtd: }"

# sl_walk ROOT LEVELS IOVA: what IOVA translates to through the
# second-stage table at ROOT, walked here through /dev/mem (VT-d 9.8), or
# "none".
sl_walk() {
	local t=$1 l=$2 iova=$3 pte sh
	while :; do
		sh=$((12 + 9 * (l - 1)))
		pte=$(($(devmem $((t + ((iova >> sh) & 511) * 8)) 64)))
		if [ $((pte & 3)) = 0 ]; then echo none; return; fi
		if [ $l = 1 ] || [ $((pte & 0x80)) != 0 ]; then
			echo $(((pte & 0xffffffffff000 & ~((1 << sh) - 1)) | (iova & ((1 << sh) - 1))))
			return
		fi
		t=$((pte & 0xffffffffff000))
		l=$((l - 1))
	done
}

# The boot disk was bound before the unit registered: its group is
# identity, and its context entry is a translating one (TT 0) that points
# to the 1:1 table, not a pass-through one (TT 2).
vda=$(readlink -f /sys/block/vda/device/..)
vda=${vda##*/}
bus=$((0x$(echo $vda | cut -d: -f2)))
devfn=$(((0x$(echo $vda | cut -d: -f3 | cut -d. -f1) << 3) | $(echo $vda | cut -d. -f2)))
rt=$(($(reg64 $base 0x20) & ~0xfff))
ctp=$(($(devmem $((rt + bus * 16)) 64) & ~0xfff))
lo=$(($(devmem $((ctp + devfn * 16)) 64)))
hi=$(($(devmem $((ctp + devfn * 16 + 8)) 64)))
root=$((lo & ~0xfff)) levels=$(((hi & 7) + 2))
diag "$vda: group $(cat /sys/bus/pci/devices/$vda/iommu_group/type), context entry lo $(printf %#x $lo) hi $(printf %#x $hi)"

# The table that entry points to maps every range of system RAM 1:1: its
# first, middle and last page, walked here.
fail=0 n=0
for r in $(sed -n 's/^\([0-9a-f]*\)-\([0-9a-f]*\) : System RAM$/\1-\2/p' /proc/iomem); do
	first=$((0x${r%-*} & ~0xfff)) last=$((0x${r#*-} & ~0xfff))
	for a in $first $(((first + last) / 2 & ~0xfff)) $last; do
		got=$(sl_walk $root $levels $a)
		n=$((n + 1))
		[ "$got" = "$a" ] || { diag "RAM page $(printf %#x $a) translates to $got"; fail=1; }
	done
done
diag "$n RAM pages walked in the table at $(printf %#x $root), $levels levels"
[ $n -ge 3 ] && [ $fail = 0 ]
result "identity_page_table_covers_system_ram_$m" $?
# ... and is no pass-through entry; the scratch area, not system RAM, is
# not in it.
got=$(sl_walk $root $levels $SCRATCH)
diag "scratch $(printf %#x $SCRATCH) (not system RAM) translates to $got"
[ "$(cat /sys/bus/pci/devices/$vda/iommu_group/type)" = identity ] && [ $((lo & 0xd)) = 1 ] &&
	[ $root != 0 ] && [ "$got" = none ]
result "identity_domain_uses_1to1_page_table_$m" $?

# DMA to kernel memory goes through the table and lands.
dd if=/tmp/pattern of=/dev/vda bs=4096 count=64 conv=fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/readback bs=4096 count=64 iflag=direct 2>/dev/null
cmp -s /tmp/pattern /tmp/readback
result "disk_dma_through_identity_page_table_$m" $?

# Memory that is not system RAM (the reserved scratch area) is not in the
# table: edu's identity DMA there faults and does not land.
echo identity > $(readlink -f /sys/bus/pci/devices/$EDU/iommu_group)/type
pci_enable_master $EDU
fill $SCRATCH 16 0x88880000
before=$(fault_lines_reason 00:10.0 0x05)
edu_dma $EDU_BUF $SCRATCH 64 1
wait_fault_reason 00:10.0 0x05 $before && same $SCRATCH 16 0x88880000
result "identity_page_table_maps_only_ram_$m" $?

units_unbind
rmmod rust_vtd
result "unload_$m" $?
check_no_splats "idtable_$m"
end_plan "idtable_$m"
