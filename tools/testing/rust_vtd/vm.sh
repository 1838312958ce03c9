# SPDX-License-Identifier: GPL-2.0
#
# vm.sh: (sourced, inside the sysroot) boot the test guest in QEMU.
#
#   vm_boot NAME FLAVOUR MODE PLAN TIMEOUT [extra kernel args] [-- extra QEMU args]
#
# MODE picks the intel-iommu device: legacy (defaults: aw-bits=48), aw39,
# sm (scalable-mode=on), sm-fsts (scalable-mode=on,fsts=on), cm
# (caching-mode=on), devtlb (device-iotlb=on), none (no VT-d at all).
# The console goes to $LOGDIR/NAME.console.log, the guest's results (second
# serial port) to $LOGDIR/NAME.results.log.  QMP listens on
# $LOGDIR/NAME.qmp.

LOGDIR=${LOGDIR:-$TOP/logs}
mkdir -p "$LOGDIR"

iommu_opts() {
	case $1 in
	legacy) echo "intel-iommu,intremap=on" ;;
	aw39) echo "intel-iommu,intremap=on,aw-bits=39" ;;
	sm) echo "intel-iommu,intremap=on,scalable-mode=on" ;;
	sm-fsts) echo "intel-iommu,intremap=on,scalable-mode=on,fsts=on" ;;
	cm) echo "intel-iommu,intremap=on,caching-mode=on" ;;
	devtlb) echo "intel-iommu,intremap=on,device-iotlb=on" ;;
	none) echo "" ;;
	*) die "unknown intel-iommu mode '$1'" ;;
	esac
}

# The devices behind the IOMMU (design.md section 5).
guest_devices() {
	local ats=disable-legacy=on,iommu_platform=on,ats=on
	echo -device pcie-root-port,id=rp1,chassis=1,slot=1
	echo -device virtio-blk-pci,bus=rp1,drive=disk0,$ats
	# snapshot=on: writes go to a temporary overlay, so no two VMs (a
	# make shell left open included) ever share a writable image.
	echo -drive if=none,id=disk0,format=raw,file="$CACHE/disk0.img",snapshot=on
	echo -device pcie-root-port,id=rp2,chassis=2,slot=2
	echo -netdev user,id=net0
	echo -device virtio-net-pci,bus=rp2,netdev=net0,$ats
	echo -device pcie-root-port,id=rp3,chassis=3,slot=3
	echo -device igb,bus=rp3
	echo -device pcie-root-port,id=rp4,chassis=4,slot=4
	# e1000e gets a user network of its own, on another subnet, so that
	# the guest routes each gateway through its own NIC.
	echo -netdev user,id=net1,net=10.0.3.0/24
	echo -device e1000e,bus=rp4,netdev=net1
	echo -device edu,bus=pcie.0,addr=0x10
	# A second edu behind a PCIe-to-PCI bridge: its DMA carries the
	# bridge's requester ID (secondary bus, 00.0), a DMA alias.
	echo -device pcie-pci-bridge,id=pb1,bus=pcie.0,addr=0x11
	echo -device edu,bus=pb1,addr=0x1
}

# Decide the accelerator: ACCEL forces one; otherwise KVM only if a real
# probe boots our kernel to userspace under it (on some hosts KVM guests
# hang in the decompressor).  The answer is cached per host kernel and QEMU.
pick_accel() {
	if [ -n "${ACCEL:-}" ]; then
		echo "$ACCEL"
		return
	fi
	if [ ! -w /dev/kvm ]; then
		echo tcg
		return
	fi
	local key f
	key=$( (uname -r; qemu-system-x86_64 --version | head -n1; grep -m1 'model name' /proc/cpuinfo) |
		sha256sum | cut -c1-16)
	f=$CACHE/kvm-probe.$key
	if [ ! -f "$f" ]; then
		log "probing KVM: booting the guest under KVM (30 s limit)"
		if ACCEL=kvm vm_boot kvm-probe rust none probe 30 >/dev/null 2>&1 &&
			grep -q 'plan probe finished' "$LOGDIR/kvm-probe.results.log"; then
			echo kvm > "$f"
		else
			echo tcg > "$f"
		fi
		log "KVM probe: using $(cat "$f")"
	fi
	cat "$f"
}

# The kernel arguments of the VFIO selftest VMs: interrupts cannot be
# isolated without interrupt remapping, and the hugetlb variants need
# hugepages reserved at boot (4 GiB of memory for them).
VFIO_KARGS=(iommufd.allow_unsafe_interrupts=1 vfio_iommu_type1.allow_unsafe_interrupts=1
	hugepagesz=1G hugepages=2 hugepagesz=2M hugepages=64)

# RVTD_INITRD, if set, is the initrd to boot instead of the image's;
# RVTD_MEM the guest memory size (2G); RVTD_SMP its vCPUs (2).
vm_boot() {
	local name=$1 flavour=$2 mode=$3 plan=$4 tmo=$5
	shift 5
	local kargs=() qargs=() seen=0
	for a in "$@"; do
		if [ "$a" = -- ]; then seen=1; continue; fi
		if [ $seen = 0 ]; then kargs+=("$a"); else qargs+=("$a"); fi
	done
	local B=$CACHE/build-$flavour accel iommu
	accel=$(pick_accel)
	iommu=$(iommu_opts "$mode")
	truncate -s ">320M" "$CACHE/disk0.img"
	local con=$LOGDIR/$name.console.log res=$LOGDIR/$name.results.log
	rm -f "$con" "$res" "$LOGDIR/$name.qmp"
	local acc=(-accel tcg,thread=multi -cpu max)
	[ "$accel" = kvm ] && acc=(-accel kvm -cpu host)
	# shellcheck disable=SC2046
	timeout -k 10 "$tmo" qemu-system-x86_64 \
		-machine q35,kernel-irqchip=split "${acc[@]}" -smp "${RVTD_SMP:-2}" -m "${RVTD_MEM:-2G}" \
		-display none -monitor none -no-reboot -nodefaults -vga none \
		-kernel "$B/arch/x86/boot/bzImage" \
		-initrd "${RVTD_INITRD:-$CACHE/image-$flavour/initramfs.gz}" \
		-append "console=ttyS0,115200 panic=-1 rvtd.plan=$plan rvtd.mode=$mode ${kargs[*]}" \
		-serial "file:$con" -serial "file:$res" \
		-qmp "unix:$LOGDIR/$name.qmp,server=on,wait=off" \
		${iommu:+-device "$iommu"} $(guest_devices) "${qargs[@]}"
}
