# SPDX-License-Identifier: GPL-2.0
# Load rust_vtd and compare what it decodes with the hardware and with the
# intel-iommu options QEMU was started with.
. /tests/lib.sh
plan 9
insmod $KO
result "insmod_succeeds_$RVTD_MODE" $?
check_units
# Scalable-mode tables (PASID tables, first- and second-stage tables
# through them) are not implemented yet: every unit runs on legacy root
# and context tables, also where it offers scalable mode (ECAP.SMTS).
st=0
for u in $(dmar_units); do
	ttm=$(($(reg32 $u 0x20) >> 10 & 3))
	smts=$(($(reg32 $u 0x14) >> 11 & 1))
	diag "unit $u: RTADDR.TTM $ttm ($([ $ttm = 0 ] && echo legacy || echo 'not legacy') tables), ECAP.SMTS $smts; scalable-mode tables are not implemented yet"
	[ $ttm = 0 ] || st=1
done
result "root_tables_in_legacy_mode_$RVTD_MODE" $st
units_unbind
rmmod rust_vtd
result "rmmod_succeeds_$RVTD_MODE" $?
check_no_splats "$RVTD_MODE"
end_plan "caps_$RVTD_MODE"
