# SPDX-License-Identifier: GPL-2.0
# Identity domains on a 1:1 page table, as on units without pass-through
# (ECAP.PT clear; QEMU always sets it, so the module parameter
# identity_page_tables=1 asks for the table instead).
. /tests/lib.sh
base=$(dmar_units | head -n1)
m=$RVTD_MODE

modprobe virtio_blk 2>/dev/null || insmod /lib/modules/*/kernel/drivers/block/virtio_blk.ko
dd if=/dev/urandom of=/tmp/pattern bs=4096 count=64 2>/dev/null
dmesg -c > /dev/null
insmod $KO identity_page_tables=1
result "insmod_with_identity_page_tables_$m" $?
line=$(dmesg | grep 'rust_vtd: dmar0: identity domain: 1:1 page table of')
diag "${line#*rust_vtd: }"
ram=$(echo "$line" | sed -n 's/.* of \([0-9]*\) MiB of RAM.*/\1/p')
memtotal=$(($(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) >> 10))
# The table covers all of RAM (MemTotal excludes what the kernel keeps).
[ -n "$ram" ] && [ "$ram" -ge "$memtotal" ]
result "identity_page_table_covers_system_ram_$m" $?

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
diag "$vda: group $(cat /sys/bus/pci/devices/$vda/iommu_group/type), context entry lo $(printf %#x $lo) hi $(printf %#x $hi)"
[ "$(cat /sys/bus/pci/devices/$vda/iommu_group/type)" = identity ] && [ $((lo & 0xd)) = 1 ] && [ $((lo >> 12)) != 0 ]
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
