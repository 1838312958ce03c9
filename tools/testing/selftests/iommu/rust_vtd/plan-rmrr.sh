# SPDX-License-Identifier: GPL-2.0
# RMRRs: the firmware table (replaced at boot through the ACPI table
# upgrade) reserves 0x7006000-0x7006fff for edu.  The region must be
# reported as a direct mapping, and edu's translated DMA domain must map
# it 1:1 while nothing else is reachable.
. /tests/lib.sh
plan 10
m=$RVTD_MODE
RMRR=0x7006000

dmesg | grep -q 'Table Upgrade: override \[DMAR-BOCHS'
result "firmware_dmar_replaced_with_rmrr_table_$m" $?
dmesg -c > /dev/null
insmod $KO
result "insmod_succeeds_$m" $?
dmesg | grep -q "pci 0000:00:10.0: reserved memory region 0x7006000-0x7006fff (RMRR)"
result "rmrr_found_for_its_device_$m" $?

g=$(readlink -f /sys/bus/pci/devices/$EDU/iommu_group)
diag "edu group ${g##*/}: type $(cat $g/type); $(tr '\n' ';' < $g/reserved_regions)"
grep -q '^0x0000000007006000 0x0000000007006fff direct$' $g/reserved_regions
result "rmrr_reported_as_direct_region_$m" $?

# edu's default domain is translated and, with no driver, maps nothing
# but the RMRR: DMA within it lands 1:1.
pci_enable_master $EDU
fill $RMRR 16 0x66660000
fill $((RMRR + 0x800)) 16 0
[ "$(cat $g/type)" = DMA-FQ ] && edu_dma $RMRR $EDU_BUF 64 0 && edu_dma $EDU_BUF $((RMRR + 0x800)) 64 1 &&
	same $((RMRR + 0x800)) 16 0x66660000
result "rmrr_direct_mapping_in_dma_domain_$m" $?

# ... and DMA just outside it faults and does not land.
fill $((RMRR + 0x1000)) 16 0x77770000
before=$(fault_lines_reason 00:10.0 0x05)
edu_dma $EDU_BUF $((RMRR + 0x1000)) 64 1
wait_fault_reason 00:10.0 0x05 $before && same $((RMRR + 0x1000)) 16 0x77770000
result "dma_outside_rmrr_faults_$m" $?

# A strict DMA domain, chosen through sysfs, gets the mapping too.
echo DMA > $g/type
pci_enable_master $EDU
fill $((RMRR + 0x800)) 16 0
[ "$(cat $g/type)" = DMA ] && edu_dma $EDU_BUF $((RMRR + 0x800)) 64 1 && same $((RMRR + 0x800)) 16 0x66660000
result "rmrr_direct_mapping_after_domain_change_$m" $?

units_unbind
rmmod rust_vtd
result "unload_$m" $?
check_no_splats "rmrr_$m"
end_plan "rmrr_$m"
