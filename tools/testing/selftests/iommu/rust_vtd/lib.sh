# SPDX-License-Identifier: GPL-2.0
# Helpers for the rust_vtd guest tests: TAP output and common checks.

T_NUM=0
T_FAIL=0
KO=$(ls /lib/modules/*/kernel/drivers/iommu/rust_vtd/rust_vtd.ko 2>/dev/null)

ok() {
	T_NUM=$((T_NUM + 1))
	echo "ok $T_NUM $*"
}

not_ok() {
	T_NUM=$((T_NUM + 1))
	T_FAIL=$((T_FAIL + 1))
	echo "not ok $T_NUM $*"
}

diag() {
	echo "# $*"
}

# result NAME STATUS: report NAME as passed when STATUS is 0.
result() {
	if [ "$2" = 0 ]; then ok "$1"; else not_ok "$1"; fi
}

# Kernel warnings, oopses and other splats since the ring buffer was cleared.
splats() {
	dmesg | grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace|kernel BUG|UBSAN|refcount_t:|list_(add|del) corruption|kmemleak: [0-9]+ new suspected'
}

# Read a 32- or 64-bit register of the unit at $1.
reg32() { devmem $(($1 + $2)) 32; }
reg64() { devmem $(($1 + $2)) 64; }

# Register bases of the DRHDs in the firmware's DMAR table, parsed here,
# independently of the driver.
dmar_units() {
	t=/sys/firmware/acpi/tables/DMAR
	[ -r $t ] || return 0
	len=$(od -An -tu4 -j4 -N4 $t | tr -d ' ')
	off=48
	while [ $off -lt $len ]; do
		type=$(od -An -tu2 -j$off -N2 $t | tr -d ' ')
		slen=$(od -An -tu2 -j$((off + 2)) -N2 $t | tr -d ' ')
		[ "$slen" -gt 0 ] || break
		if [ "$type" = 0 ]; then
			printf '0x%x\n' $(od -An -tu8 -j$((off + 8)) -N8 $t | tr -d ' ')
		fi
		off=$((off + slen))
	done
}
