# SPDX-License-Identifier: GPL-2.0
# make profile: the strict dma_map_benchmark row under QEMU's insnprof
# plugin (tools/testing/rust_vtd/profile.sh counts the instructions), on
# whichever kernel booted: rust_vtd (rust kernel, loaded here) or the C
# driver (baseline kernel).  Prints the benchmark's output and, for
# rust_vtd, the module's symbols ("# KSYM"), which the host needs to name
# the module's code.  Nothing here passes or fails on a figure.
. /tests/lib.sh
m=$RVTD_MODE
secs=10
plan 2
if [ -n "$KO" ]; then
	insmod $KO
	result "insmod_succeeds_$m" $?
else
	result "intel_iommu_on_$m" "$([ -d /sys/class/iommu/dmar0 ] && echo 0 || echo 1)"
fi
nic=$(pci_devices 0x8086:0x10d3 | head -n1)
[ -e /sys/bus/pci/devices/$nic/driver ] && echo $nic > /sys/bus/pci/devices/$nic/driver/unbind
echo DMA > /sys/bus/pci/devices/$nic/iommu_group/type
echo dma_map_benchmark > /sys/bus/pci/devices/$nic/driver_override
echo $nic > /sys/bus/pci/drivers_probe
out=$(dma_map_benchmark -t 1 -s $secs -g 1 2>&1)
echo "$out" | sed 's/^/# /'
[ "$(group_type $nic)" = DMA ] && echo "$out" | grep -q 'average unmap latency'
result "dmamap_strict_t1_g1_ran_$m" $?
grep '\[rust_vtd\]' /proc/kallsyms | sed 's/^/# KSYM /'
