# SPDX-License-Identifier: GPL-2.0
# The main legacy-mode plan: KUnit, unit identification, a unit left
# translating, and repeated load/unload.
. /tests/lib.sh
base=$(dmar_units | head -n1)

# KUnit: the kernel crate's doctests ran at boot; rust_vtd's suites run when
# the module goes live.  Report every rust_vtd case and every other suite.
insmod $KO
result "insmod_succeeds_$RVTD_MODE" $?
sleep 1
dmesg | sed -n 's/^\[ *[0-9.]*\] //p' > /tmp/ktap
grep -E '^ok |^not ok ' /tmp/ktap | grep -v rust_vtd | while read -r st n name rest; do
	[ "$st" = ok ] && echo "ok - kunit_$name" || echo "not ok - kunit_$name"
done > /tmp/suites
awk '/# Subtest: rust_vtd/{s=$3} s && /^    (not )?ok /{print s, $0} /^(not )?ok [0-9]+ rust_vtd/{s=""}' /tmp/ktap > /tmp/cases
if [ -s /tmp/suites ]; then
	while read -r line; do
		case $line in
		ok*) ok "${line#ok - }" ;;
		*) not_ok "${line#not ok - }" ;;
		esac
	done < /tmp/suites
else
	not_ok "kunit_kernel_suites_ran"
fi
if [ -s /tmp/cases ]; then
	while read -r suite a b c d; do
		if [ "$a" = ok ]; then ok "kunit_${suite}_$c"; else not_ok "kunit_${suite}_$d"; fi
	done < /tmp/cases
else
	not_ok "kunit_rust_vtd_suites_ran"
fi
grep -E 'doctests_kernel|rust_vtd_dmar' /tmp/ktap | grep -E '^# .*pass:' | while read -r l; do diag "$l"; done

check_units
units_unbind
rmmod rust_vtd
result "rmmod_after_unbinding_units_$RVTD_MODE" $?

# A unit that a previous kernel left translating: point it at a root table
# and enable translation behind the driver's back, then load.
dmesg -c > /dev/null
rtaddr=0x3000000
devmem $((base + 0x20)) 64 $rtaddr
devmem $((base + 0x18)) 32 $((1 << 30))         # SRTP
devmem $((base + 0x18)) 32 $((1 << 31))         # TE
pre=$(($(reg32 $base 0x1c) >> 31 & 1))
insmod $KO
rc=$?
post=$(($(reg32 $base 0x1c) >> 31 & 1))
rt=$(reg64 $base 0x20)
diag "GSTS.TES before load $pre, after $post; RTADDR $rt; insmod $rc"
dmesg | grep -q 'translation was left enabled by a previous kernel; disabling it'
msg=$?
# Like the C driver outside kdump: off first, then on with its own tables.
[ $pre = 1 ] && [ $rc = 0 ] && [ $msg = 0 ] && [ $post = 1 ] && [ $(($rt)) != $(($rtaddr)) ]
result "translation_left_enabled_is_taken_over" $?
units_unbind
rmmod rust_vtd

# 50 load/unload cycles: no splat, no leaked memory, mapping or resource.
echo clear > /sys/kernel/debug/kmemleak 2>/dev/null
iomem0=$(md5sum < /proc/iomem)
vmap0=$(grep -c ioremap /proc/vmallocinfo)
fail=0
i=0
while [ $i -lt 50 ]; do
	insmod $KO || { diag "insmod failed in cycle $i"; fail=1; break; }
	units_unbind
	rmmod rust_vtd || { diag "rmmod failed in cycle $i"; fail=1; break; }
	i=$((i + 1))
done
diag "$i cycles done"
[ "$(md5sum < /proc/iomem)" = "$iomem0" ] || { diag "/proc/iomem changed"; fail=1; }
vmap1=$(grep -c ioremap /proc/vmallocinfo)
[ "$vmap1" = "$vmap0" ] || { diag "ioremap mappings: $vmap0 before, $vmap1 after"; fail=1; }
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan > /sys/kernel/debug/kmemleak
	echo scan > /sys/kernel/debug/kmemleak
	leaks=$(grep -c 'unreferenced object' /sys/kernel/debug/kmemleak)
	diag "kmemleak: $leaks unreferenced objects after the cycles"
	[ "$leaks" = 0 ] || { head -40 /sys/kernel/debug/kmemleak | sed 's/^/# /'; fail=1; }
else
	diag "kmemleak not available"; fail=1
fi
result "insmod_rmmod_50_cycles_clean" $fail
check_no_splats "$RVTD_MODE"
