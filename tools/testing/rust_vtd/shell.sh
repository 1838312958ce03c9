#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# shell.sh: (inside the sysroot) boot the guest with a shell on this
# terminal.  IOMMU=<mode> picks the intel-iommu mode; arguments after the
# flavour go on the kernel command line; 'poweroff -f' leaves.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
mode=${IOMMU:-legacy}
flavour=${1:-rust}
accel=$(pick_accel)
acc=(-accel tcg,thread=multi -cpu max)
[ "$accel" = kvm ] && acc=(-accel kvm -cpu host)
iommu=$(iommu_opts "$mode")
truncate -s ">320M" "$CACHE/disk0.img"
exec qemu-system-x86_64 -machine q35,kernel-irqchip=split "${acc[@]}" -smp 2 -m 4G \
	-nographic -no-reboot -nodefaults -vga none -serial mon:stdio \
	-kernel "$CACHE/build-$flavour/arch/x86/boot/bzImage" \
	-initrd "$CACHE/image-$flavour/initramfs.gz" \
	-append "console=ttyS0,115200 panic=-1 rvtd.plan=shell rvtd.mode=$mode ${*:2}" \
	-qmp "unix:$LOGDIR/shell.qmp,server=on,wait=off" \
	${iommu:+-device "$iommu"} $(guest_devices)
