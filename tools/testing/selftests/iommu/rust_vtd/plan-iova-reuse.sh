# SPDX-License-Identifier: GPL-2.0
# An IOTLB flush that was not confirmed: the DMA API must not hand out
# again the IOVAs it covered, since the unit may still cache their old
# translations (patch 0016; rust_vtd reports the failure through
# kernel::iommu::paging).  QEMU never fails a flush on its own: rust_vtd's
# test hook (debugfs inject_queue_error) puts an invalid descriptor in
# front of the next queue batches for edu's domain, and QEMU rejects each
# (IQE); a batch rejected twice fails its flush.
#
# The DMA-API user is the Rust edu sample, whose probe copies a pattern to
# edu and back through two coherent buffers (allocated, used, freed), then
# through two streaming mappings, and logs each buffer's IOVA.  Probes run
# on CPU 0, with timer migration off, so that the IOVA allocator's per-CPU
# cache hands out first the IOVA freed last: a freed IOVA comes back at
# once, which is what the tests must see not happen.
. /tests/lib.sh
m=$RVTD_MODE
plan 9

dmesg -c > /dev/null
insmod $KO
result "insmod_succeeds_$m" $?
echo 0 > /proc/sys/kernel/timer_migration
sample=$(ls /lib/modules/*/kernel/samples/rust/rust_edu.ko 2>/dev/null)
drv=/sys/bus/pci/drivers/rust_edu
rid=$(pci_rid $EDU)
cpu0() { taskset -c 0 sh -c "$1"; }
# values KEY: the hex numbers after "KEY 0x" in stdin, normalised.
values() { grep -o "$1 0x[0-9a-f]*" | while read -r _ v; do printf '0x%x\n' $((v)); done; }
# among X LIST: X is one of the lines of LIST.
among() { echo "$2" | grep -qx "$1"; }
# probe MARK [BATCHES]: rebinds rust_edu to $EDU on CPU 0, after arming
# BATCHES rejections; sets coh and str to the IOVAs of the probe's
# verified coherent and streaming copies (none if it failed), and log to
# what was printed since.
probe() {
	[ -e $drv/$EDU ] && cpu0 "echo $EDU > $drv/unbind"
	echo "rvtd-test: $1" > /dev/kmsg
	[ -z "$2" ] || echo "$rid $2" > /sys/kernel/debug/iommu/intel/dmar0/inject_queue_error
	cpu0 "echo $EDU > $drv/bind"
	log=$(dmesg | sed -n "/rvtd-test: $1\$/,\$p")
	coh=$(echo "$log" | grep "rust_edu $EDU: coherent DMA: 4096 bytes to device and back, verified" | values iova)
	str=$(echo "$log" | grep "rust_edu $EDU: streaming DMA: 4096 bytes to device and back in .*, verified" | values iova)
	diag "$1: coherent IOVAs $(echo $coh), streaming IOVAs $(echo $str)"
}

# Strict (DMA) domain: every unmap is flushed at once.
echo DMA > /sys/bus/pci/devices/$EDU/iommu_group/type
insmod $sample
[ "$(group_type $EDU)" = DMA ] && [ -e $drv/$EDU ]
result "rust_edu_bound_on_a_strict_domain_$m" $?

# Two rejections: the flush of the first coherent buffer freed fails; the
# second one's is confirmed.
e0=$(qs queue_errors) u0=$(qs unconfirmed)
probe strict-rejected 2
de=$(($(qs queue_errors) - e0)) du=$(($(qs unconfirmed) - u0))
kept=$(echo "$log" | grep "rust_edu $EDU: IOTLB flush not confirmed: IOVA range" | values range)
freed=$(echo "$coh" | grep -vx "${kept:-none}")
diag "queue errors +$de, unconfirmed +$du; IOVA kept: ${kept:-none}, IOVA freed: $(echo $freed)"
echo "$log" | grep -E 'rust_vtd|IOTLB' | head -n 4 | sed 's/^/# /'
# The allocator hands out the IOVA of the confirmed flush again at once
# (to the first streaming mapping): what the next test would see if the
# IOVA of the unconfirmed flush were freed.
[ $(echo "$coh" | wc -w) = 2 ] && [ $(echo "$freed" | wc -w) = 1 ] && among "$freed" "$str"
result "strict_confirmed_flush_iova_is_reused_$m" $?
# The IOVA of the unconfirmed flush never comes back: not in this probe's
# streaming mappings, nor in the next probe's.
[ $de = 2 ] && [ $du = 1 ] && [ $(echo "$kept" | wc -w) = 1 ] && among "$kept" "$coh" &&
	[ $(echo "$str" | wc -w) = 2 ] && ! among "$kept" "$str"
st=$?
probe strict-after
[ $st = 0 ] && [ $(echo "$coh $str" | wc -w) = 4 ] && ! among "$kept" "$coh" && ! among "$kept" "$str"
result "strict_unconfirmed_flush_iova_never_reused_$m" $?

# Lazy (DMA-FQ) domain: unmaps wait in the flush queue, which a timer
# flushes 10 ms after the first one.  A first probe's IOVAs return to the
# allocator after a confirmed flush.  Four rejections: the queue's flush
# after the second probe's coherent frees fails, and so does the one after
# its streaming unmaps (edu's DMA takes 100 ms).  Nothing has been
# confirmed since, so none of its IOVAs may be handed out to the third
# probe's coherent buffers (allocated before its own first unmap).
cpu0 "echo $EDU > $drv/unbind"
echo DMA-FQ > /sys/bus/pci/devices/$EDU/iommu_group/type
probe lazy-first
p1="$coh $str"
sleep 1
e0=$(qs queue_errors) u0=$(qs unconfirmed)
probe lazy-rejected 4
p2=$(echo $coh $str | tr ' ' '\n')
sleep 1
de=$(($(qs queue_errors) - e0)) du=$(($(qs unconfirmed) - u0))
w=$(echo "$log" | grep -c 'iommu: IOTLB flush not confirmed; queued IOVAs and page tables wait for the next flush')
diag "queue errors +$de, unconfirmed +$du, flush queue warnings $w"
reused=0
for v in $p1; do among $v "$p2" && reused=$((reused + 1)); done
diag "the second probe reused $reused of the first probe's IOVAs (after a confirmed flush)"
[ "$(group_type $EDU)" = DMA-FQ ] && [ $(echo "$p2" | wc -w) = 4 ] && [ $de = 4 ] && [ $du = 2 ] && [ $w -ge 1 ]
st=$?
probe lazy-after
[ $st = 0 ] && [ $(echo "$coh" | wc -w) = 2 ] && ! among "$(echo "$coh" | head -n1)" "$p2" &&
	! among "$(echo "$coh" | tail -n1)" "$p2"
result "lazy_unconfirmed_flush_iovas_wait_for_a_confirmed_flush_$m" $?
# After the third probe's flushes, confirmed, edu's DMA still works.
sleep 1
probe lazy-confirmed
[ $(echo "$coh $str" | wc -w) = 4 ] && [ $(($(qs unconfirmed) - u0)) = 2 ]
result "lazy_dma_works_after_confirmed_flush_$m" $?

rmmod rust_edu
units_unbind
rmmod rust_vtd
result "units_unbind_then_rmmod_$m" $?
check_no_splats "iova_reuse_$m"
end_plan "iova_reuse_$m"
