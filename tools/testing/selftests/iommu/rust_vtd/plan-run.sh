# SPDX-License-Identifier: GPL-2.0
# `make run`: load rust_vtd, show what it found, unload.
. /tests/lib.sh
echo "== intel-iommu mode: $RVTD_MODE"
echo "== insmod rust_vtd"
dmesg -c > /dev/null
insmod $KO
rc=$?
dmesg | grep -E 'rust_vtd' | sed 's/^\[ *[0-9.]*\] //'
echo "== insmod exit status: $rc"
echo "== platform devices:"
ls /sys/bus/platform/drivers/rust_vtd/ 2>/dev/null | grep rust_vtd
echo "== /proc/iomem:"
grep rust_vtd /proc/iomem
echo "== units (GSTS.TES: translation enabled):"
for u in $(dmar_units); do echo "unit at $u: GSTS $(reg32 $u 0x1c), RTADDR $(reg64 $u 0x20)"; done
echo "== IOMMU groups:"
for g in /sys/kernel/iommu_groups/*; do
	[ -e $g ] || continue
	echo "group ${g##*/}: type $(cat $g/type), devices: $(ls $g/devices | tr '\n' ' ')"
done
echo "== /sys/class/iommu:"
ls /sys/class/iommu
echo "== take the units down, then rmmod"
units_unbind
rmmod rust_vtd && echo "unloaded"
result run_completed $rc
