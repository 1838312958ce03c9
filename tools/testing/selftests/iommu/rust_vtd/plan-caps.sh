# SPDX-License-Identifier: GPL-2.0
# Load rust_vtd and compare what it decodes with the hardware and with the
# intel-iommu options QEMU was started with.
. /tests/lib.sh
insmod $KO
result "insmod_succeeds_$RVTD_MODE" $?
check_units
units_unbind
rmmod rust_vtd
result "rmmod_succeeds_$RVTD_MODE" $?
check_no_splats "$RVTD_MODE"
