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
echo "== rmmod rust_vtd"
rmmod rust_vtd && echo "unloaded"
result run_completed $rc
