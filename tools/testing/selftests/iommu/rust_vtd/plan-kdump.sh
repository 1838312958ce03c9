# SPDX-License-Identifier: GPL-2.0
# kdump: a real crash with translation on and DMA set up, and the capture
# kernel that boots from it.  One VM, two kernels, one plan:
#
#   - the first kernel (booted with crashkernel=) loads rust_vtd, puts the
#     disk behind a translated domain and writes a pattern to it, has a
#     process map a buffer for edu through iommufd and stay alive, prints
#     a marker, loads itself as the capture kernel (kexec_crash_load, with
#     an initramfs repacked from its own root) and crashes (sysrq c);
#   - the capture kernel (this plan again: /proc/vmcore exists) checks
#     that translation is still on from the crashed kernel, loads
#     rust_vtd before any DMA driver, as a crash kernel's initramfs must,
#     and checks that translation stays on (rust_vtd takes over the old
#     tables), that the disk's driver then binds and reads the pattern
#     back, that edu's DMA to the crashed process's IOVA still lands in
#     that process's buffer (read in /proc/vmcore) until a driver binds
#     edu, and lands in the new domain's buffer after, and that
#     makedumpfile extracts the first kernel's log, marker included, from
#     /proc/vmcore.
#
# The capture kernel's results follow the first kernel's on the same
# serial port; check.sh ignores the intentional panic in the console log.
#
# rvtd.kdump=badrt (VM kdump-badrt): the first kernel leaves RTADDR
# pointing at no memory of its own (the unit's registers) just before the
# crash, as a corrupted register or firmware bug would; the unit keeps
# translating through the root table it latched.  The capture kernel must
# refuse the tables, say why, and fall back to what it does outside kdump:
# translation off, its own tables, nothing deferred, and the crashed
# process's DMA blocked, not sent to whatever its IOVA names.
#
# On the baseline kernel (the C driver, built in: make kdump-compare) the
# same plan runs without the tests that read rust_vtd's debugfs or load
# its module (c=1 below); the C driver takes the tables over at boot.
#
# rvtd.kdump=pt (VM kdump-pt): the capture kernel boots with
# iommu.passthrough=1.  A deferred device must still get a translated
# default domain: behind an identity one, its driver's DMA (dma-direct)
# would never end the deferral, and would go to physical addresses
# through the crashed kernel's tables.
. /tests/lib.sh
# The tests carry the cycle's number (check.sh runs several in a row).
cycle=$(sed -n 's/.*rvtd\.cycle=\([0-9]*\).*/\1/p' /proc/cmdline)
# The C driver (baseline kernel): no rust_vtd module in the image.
cdrv=0
[ -z "$KO" ] && cdrv=1
badrt=0 pt=0
grep -q 'rvtd\.kdump=badrt' /proc/cmdline && badrt=1
grep -q 'rvtd\.kdump=pt' /proc/cmdline && pt=1
m=${RVTD_MODE}_${cycle:-1}
[ $badrt = 1 ] && m=${RVTD_MODE}_badrt
[ $pt = 1 ] && m=${RVTD_MODE}_pt
base=$(dmar_units | head -n1)
MARKER=rvtd-kdump-marker-3f9a1c
disk=/sys/bus/virtio/drivers/virtio_blk

if [ ! -e /proc/vmcore ]; then
	plan $((22 - 5 * cdrv))
	# --- the first kernel ---
	dmesg -c > /dev/null
	if [ $cdrv = 0 ]; then
		insmod $KO
		result "insmod_succeeds_$m" $?
	fi
	[ $(($(reg32 $base 0x1c) >> 31 & 1)) = 1 ]
	result "translation_enabled_before_crash_$m" $?
	modprobe virtio_blk 2>/dev/null || insmod /lib/modules/*/kernel/drivers/block/virtio_blk.ko
	vda=$(basename $(readlink -f /sys/block/vda/device/..) 2>/dev/null)
	# (virtio-pci is built in, bound before rust_vtd registered: rebound,
	# the disk gets a translated domain.)
	rebind $vda
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
	dd if=/dev/urandom of=/tmp/pattern bs=4096 count=256 2>/dev/null
	dd if=/tmp/pattern of=/dev/vda bs=4096 count=256 conv=fsync 2>/dev/null
	sum=$(md5sum < /tmp/pattern | cut -d' ' -f1)
	t=$(group_type $vda)
	diag "disk $vda: group type $t, pattern md5 $sum"
	case $t in DMA | DMA-FQ) ;; *) false ;; esac
	result "disk_written_through_translated_domain_$m" $?
	# DMA set up by a process that stays alive until the crash: edu on
	# vfio-pci, a buffer mapped at an IOVA through iommufd, edu's own
	# buffer loaded with a pattern by DMA (see edu_iommufd.c).
	echo vfio-pci > /sys/bus/pci/devices/$EDU/driver_override
	echo $EDU > /sys/bus/pci/drivers_probe
	edu_iommufd $EDU kdump-hold > /tmp/hold.out 2>&1 &
	i=0
	while ! grep -q '^phys_b ' /tmp/hold.out && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
	edu_b=$(sed -n 's/^phys_b //p' /tmp/hold.out)
	grep -v '^ok \|^phys_b ' /tmp/hold.out | sed 's/^#* */# edu_iommufd: /'
	diag "edu's target buffer at physical $edu_b"
	grep -q '^ok kdump_dma_set_up$' /tmp/hold.out && [ -n "$edu_b" ] && [ $((edu_b)) != 0 ]
	result "edu_dma_set_up_by_a_live_process_$m" $?
	if [ $badrt = 1 ]; then
		# (Without SRTP the unit keeps the root table it latched.)
		devmem $((base + 0x20)) 64 $base
	fi
	rt=$(reg64 $base 0x20)
	diag "RTADDR before the crash: $(printf %#x $rt)"
	# The capture kernel's root: this one's, without /boot (the kernel is
	# loaded on its own).
	(cd / && find . -xdev -path ./boot -prune -o -print | cpio -o -H newc 2>/dev/null | gzip -1 > /tmp/capture.gz)
	args="console=ttyS0,115200 panic=-1 oops=panic rvtd.plan=kdump rvtd.mode=$RVTD_MODE rvtd.cycle=${cycle:-1} $([ $badrt = 1 ] && echo rvtd.kdump=badrt) $([ $pt = 1 ] && echo rvtd.kdump=pt iommu.passthrough=1) nr_cpus=1 irqpoll reset_devices iommufd.allow_unsafe_interrupts=1 rvtd.sum=$sum rvtd.rtaddr=$rt rvtd.edu_b=${edu_b:-0}"
	kexec_crash_load /boot/bzImage /tmp/capture.gz "$args"
	[ $? = 0 ] && [ "$(cat /sys/kernel/kexec_crash_loaded)" = 1 ]
	result "capture_kernel_loaded_$m" $?
	check_no_splats "before_crash_$m"
	echo "$MARKER: crashing with translation on" > /dev/kmsg
	sync
	echo c > /proc/sysrq-trigger
	# Not reached: the capture kernel runs this plan again.
	diag "the crash did not happen"
	exit 1
fi

# --- the capture kernel ---
T_NUM=5
for w in $(cat /proc/cmdline); do
	case $w in
	rvtd.sum=*) sum=${w#rvtd.sum=} ;;
	rvtd.rtaddr=*) old_rt=${w#rvtd.rtaddr=} ;;
	rvtd.edu_b=*) edu_b=${w#rvtd.edu_b=} ;;
	esac
done
size=$(stat -c %s /proc/vmcore)
magic=$(dd if=/proc/vmcore bs=4 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')
diag "capture kernel: /proc/vmcore $size bytes, magic '$magic'"
[ "$magic" = 7f454c46 ] && [ $size -gt $((1 << 30)) ]
result "vmcore_is_an_elf_core_$m" $?
gsts=$(reg32 $base 0x1c)
rt0=$(reg64 $base 0x20)
diag "before rust_vtd: GSTS $(printf %#x $gsts), RTADDR $(printf %#x $rt0) (crashed kernel's $(printf %#x $old_rt))"
# (The C driver, built in, has taken the tables over by now.)
[ $((gsts >> 31 & 1)) = 1 ] && { [ $cdrv = 1 ] || [ $((rt0)) = $((old_rt)) ]; }
result "translation_still_on_from_crashed_kernel_$m" $?
# What a crash kernel's initramfs must do: load rust_vtd before any
# driver that does DMA binds.  virtio-pci is built in and has bound
# already (it sets up no DMA of its own until a virtio driver binds):
# unbound, and bound again after rust_vtd has loaded.
virtio=$(ls -d /sys/bus/pci/drivers/virtio-pci/0000:* 2>/dev/null | sed 's|.*/||')
for d in $virtio; do echo $d > /sys/bus/pci/drivers/virtio-pci/unbind; done
diag "unbound from virtio-pci until rust_vtd loads: $(echo $virtio)"
f0=$(fault_seq)
[ $cdrv = 0 ] || dmesg | grep -E 'DMAR.*([Tt]ranslation|Copied|previous kernel)' | sed 's/^/# /'
dmesg -c > /dev/null
if [ $cdrv = 0 ]; then
	insmod $KO
	result "insmod_succeeds_in_capture_kernel_$m" $?
fi
took=$(dmesg | grep "rust_vtd: dmar0: kdump: took over the crashed kernel's tables")
dmesg | grep -E 'kdump|Firmware Bug' | sed 's/^/# /'
old_dids=$(qs old_domain_ids)
diag "old domain IDs reserved: ${old_dids:-none}"
if [ $cdrv = 1 ]; then
	:
elif [ $badrt = 0 ]; then
	# Every domain ID of the copied entries is reserved.
	[ -n "$took" ] && [ "${old_dids:-0}" -ge 1 ]
	result "crashed_kernels_domain_ids_reserved_$m" $?
else
	# The root table address is refused, with the reason, and rust_vtd
	# turns translation off as outside kdump.
	[ -z "$took" ] && [ "${old_dids:-0}" = 0 ] &&
		dmesg | grep -q "rust_vtd: dmar0: kdump: cannot take over the crashed kernel's tables: the root table address is not memory of the crashed kernel" &&
		dmesg | grep -q 'translation was left enabled by a previous kernel; disabling it'
	result "bad_root_table_address_falls_back_to_translation_off_$m" $?
fi
copied=yes
[ $badrt = 1 ] && copied=no
# Until its driver binds and maps, the disk keeps the crashed kernel's
# entry (deferred attach): its debugfs translation says so.  (badrt:
# nothing was copied, nothing is deferred.)
vda_bdf=$(echo $virtio | tr ' ' '\n' | head -n1)
# (The C driver's debugfs would walk the crashed kernel's page tables,
# which the capture kernel does not map: not read there.)
[ $cdrv = 1 ] || tr=$(cat /sys/kernel/debug/iommu/intel/$vda_bdf/domain_translation_struct 2>&1 | head -n1)
diag "$vda_bdf before its driver binds: $tr"
if echo "$tr" | grep -q 'copied from the crashed kernel'; then c=yes; else c=no; fi
[ $c = $copied ]
r=$?
[ $cdrv = 1 ] || result "attach_deferred_until_driver_binds_$m" $r
# A deferred device released before any attach (removed): the core skips
# the release domain, and rust_vtd touches no hardware, so the copied entry
# stays, and the device, found again, is deferred again.  (Not on the C
# driver, whose debugfs would walk the crashed kernel's tables.)
[ $cdrv = 1 ] || echo 1 > /sys/bus/pci/devices/$EDU/remove
gone=no
[ -e /sys/bus/pci/devices/$EDU ] || [ -e /sys/kernel/debug/iommu/intel/$EDU ] || gone=yes
echo 1 > /sys/bus/pci/rescan
[ $cdrv = 1 ] || tr=$(cat /sys/kernel/debug/iommu/intel/$EDU/domain_translation_struct 2>&1 | head -n1)
[ $cdrv = 1 ] || diag "$EDU removed before any attach (state gone: $gone), found again: $tr"
if echo "$tr" | grep -q 'copied from the crashed kernel'; then c=yes; else c=no; fi
[ $gone = yes ] && [ $c = $copied ]
r=$?
if [ $cdrv = 1 ]; then
	c=yes
elif [ $badrt = 0 ]; then
	result "release_before_attach_keeps_crashed_kernels_entry_$m" $r
else
	result "removed_device_found_again_without_copied_entry_$m" $r
fi
# edu has no driver here either: DMA that the crashed kernel's process set
# up (edu's buffer to its IOVA, started now) must still land in that
# process's buffer, in the crashed kernel's memory, without a fault.
# (badrt: edu is on a new, empty domain; the DMA must be blocked.)
f1=$(fault_seq)
pci_enable_master $EDU
if [ $badrt = 0 ]; then
	edu_iommufd $EDU kdump-old-dma ${edu_b:-0} > /tmp/old.out 2>&1
else
	edu_iommufd $EDU kdump-old-dma ${edu_b:-0} blocked > /tmp/old.out 2>&1
fi
sed 's/^#* */# edu_iommufd: /' /tmp/old.out | grep -v '^# edu_iommufd: ok '
if [ $badrt = 0 ]; then
	[ $c = yes ] && grep -q '^ok crashed_kernels_dma_lands_in_its_buffer$' /tmp/old.out
	result "crashed_kernels_edu_dma_lands_in_its_buffer_$m" $?
else
	[ "$(wait_faults_at 00:10.0 0x101000 $f1 1)" -ge 1 ] &&
		grep -q '^ok crashed_kernels_dma_blocked$' /tmp/old.out
	result "crashed_kernels_edu_dma_blocked_and_faults_$m" $?
fi
for d in $virtio; do echo $d > /sys/bus/pci/drivers/virtio-pci/bind; done
dmesg | grep rust_vtd | head -n 8 | sed 's/^/# /'
gsts=$(reg32 $base 0x1c)
rt1=$(reg64 $base 0x20)
diag "after rust_vtd: GSTS $(printf %#x $gsts), RTADDR $(printf %#x $rt1)"
if [ $badrt = 0 ]; then
	# Translation never went off: on now, and no "disabling it" on the way.
	[ $((gsts >> 31 & 1)) = 1 ] && ! dmesg | grep -q 'translation was left enabled by a previous kernel; disabling it'
	result "translation_stays_on_across_takeover_$m" $?
	[ $((rt1)) != $((old_rt)) ] && [ $((rt1)) != 0 ]
	result "root_table_moved_to_a_copy_$m" $?
else
	[ $((gsts >> 31 & 1)) = 1 ]
	result "translation_back_on_with_own_tables_$m" $?
	[ $((rt1)) != $((old_rt)) ] && [ $((rt1)) != 0 ]
	result "root_table_replaced_$m" $?
fi
# The disk's driver binds after rust_vtd, and reads what the crashed
# kernel wrote.
modprobe virtio_blk 2>/dev/null || insmod /lib/modules/*/kernel/drivers/block/virtio_blk.ko
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
# (Bounded: DMA sent astray never completes.)
got=$(timeout 60 dd if=/dev/vda bs=4096 count=256 2>/dev/null | md5sum | cut -d' ' -f1)
vda=$(basename $(readlink -f /sys/block/vda/device/..) 2>/dev/null)
gt=$(group_type $vda)
diag "disk ${vda:-missing}: group type $gt, md5 $got (written $sum)"
tr=$(cat /sys/kernel/debug/iommu/intel/$vda/domain_translation_struct 2>&1 | head -n1)
diag "$vda after its driver bound: $tr"
[ -n "$vda" ] && [ "$got" = "$sum" ] && ! echo "$tr" | grep -q 'copied from the crashed kernel'
r=$?
if [ $pt = 0 ]; then
	result "disk_reads_crashed_kernels_data_after_attach_$m" $r
else
	[ $r = 0 ] && case $gt in DMA | DMA-FQ) true ;; *) false ;; esac
	result "deferred_disk_gets_translated_domain_despite_passthrough_$m" $?
fi
# edu's driver binds: the same IOVA now translates through the new domain,
# and the crashed process's buffer is left alone (no stale IOTLB entry of
# the old domain ID survives the attach).
echo vfio-pci > /sys/bus/pci/devices/$EDU/driver_override
echo $EDU > /sys/bus/pci/drivers_probe
edu_iommufd $EDU kdump-new ${edu_b:-0} $([ $badrt = 1 ] && echo blocked) > /tmp/new.out 2>&1
sed 's/^#* */# edu_iommufd: /' /tmp/new.out | grep -v '^# edu_iommufd: ok '
grep -q '^ok new_domain_replaces_crashed_kernels_translation$' /tmp/new.out
result "new_domain_replaces_crashed_kernels_translation_$m" $?
[ "$(fault_seq)" = "$f0" ] || diag "faults: $f0 -> $(fault_seq)"
if [ $badrt = 0 ]; then
	# (rust_vtd's fault messages, and the C driver's.)
	[ "$(fault_seq)" = "$f0" ] && ! dmesg | grep -qE 'DMA [a-z]* fault|DMAR: \[DMA (Read|Write)'
	result "no_dma_faults_in_capture_kernel_$m" $?
else
	# The blocked DMA's fault, at the crashed process's IOVA, is the only one.
	n=$(dmesg | grep -c 'DMA [a-z]* fault')
	dmesg | grep 'DMA [a-z]* fault' | head -n 3 | sed 's/^/# /'
	[ "$n" = 1 ] && dmesg | grep -q 'DMA write fault: source 00:10.0 address 0x101000'
	result "only_the_blocked_dma_faults_$m" $?
fi
makedumpfile --dump-dmesg /proc/vmcore /tmp/dmesg.txt > /tmp/mdf.out 2>&1
st=$?
[ $st = 0 ] || sed 's/^/# /' /tmp/mdf.out | tail -n 5
diag "first kernel's log: $(wc -l < /tmp/dmesg.txt 2>/dev/null) lines; $(grep -a "$MARKER" /tmp/dmesg.txt 2>/dev/null | tail -n1)"
[ $st = 0 ] && grep -aq "$MARKER: crashing with translation on" /tmp/dmesg.txt
result "makedumpfile_extracts_first_kernel_log_$m" $?
makedumpfile -l -d 31 /proc/vmcore /tmp/dump > /tmp/mdf.out 2>&1
st=$?
diag "makedumpfile -l -d 31: exit $st, $(stat -c %s /tmp/dump 2>/dev/null) bytes"
[ $st = 0 ] || sed 's/^/# /' /tmp/mdf.out | tail -n 5
[ $st = 0 ] && [ -s /tmp/dump ]
result "makedumpfile_writes_a_dump_$m" $?
rm -f /tmp/dump
check_no_splats "capture_kernel_$m"
end_plan "kdump_$m"
