# SPDX-License-Identifier: GPL-2.0
# The main legacy-mode plan: KUnit, unit identification, a unit left
# translating, and repeated load/unload.
. /tests/lib.sh
base=$(dmar_units | head -n1)

# KUnit: the kernel crate's suites ran at boot; rust_vtd's run when the
# module goes live.  Every suite must have run, with exactly the number of
# cases it has here (a case that stops being built, or a suite that does
# not run, fails), and every case must pass.  One test per suite.
RVTD_SUITES="rust_vtd_context:9 rust_vtd_dmar:9 rust_vtd_domain_id:3
	rust_vtd_invalidation:12 rust_vtd_pagetable:6 rust_vtd_scope:1"
# The kernel crate's that this configuration builds (doctests and
# #[kunit_tests] of rust/kernel): their counts are whatever the kernel
# source has, so only their own plan lines are checked.
KERNEL_SUITES="rust_kernel_fmt rust_netlink rust_spinlock_irq_condvar rust_doctests_kernel"
plan $((1 + $(echo $RVTD_SUITES | wc -w) + $(echo $KERNEL_SUITES | wc -w) + 1 + 4 + 5))
insmod $KO
result "insmod_succeeds_$RVTD_MODE" $?
sleep 1
# One line per suite: name, its plan (1..N), cases reported, cases failed,
# the failed cases' names.
dmesg | sed -n 's/^\[ *[0-9.]*\] //p' | awk '
	/^    # Subtest: / { s = $3; plan = "-"; ran = 0; failed = 0; names = "" }
	s != "" && /^    1\.\.[0-9]+$/ { plan = substr($1, 4) }
	s != "" && /^    ok / { ran++ }
	s != "" && /^    not ok / { ran++; failed++; names = names " " $4 }
	s != "" && /^(not )?ok [0-9]+ / { print s, plan, ran, failed, names; s = "" }
' > /tmp/kunit
sed 's/^/# kunit: /' /tmp/kunit
# kunit_suite NAME WANT: the suite ran once, reported WANT cases (its own
# plan if WANT is -), and all passed.
kunit_suite() {
	local name=$1 line plan ran failed want=$2
	line=$(grep "^$1 " /tmp/kunit)
	if [ "$(echo "$line" | grep -c .)" != 1 ]; then
		diag "suite $1 ran $(echo "$line" | grep -c .) times"
		return 1
	fi
	set -- $line
	plan=$2 ran=$3 failed=$4
	shift 4
	[ "$want" = - ] && want=$plan
	[ "$failed" = 0 ] || diag "suite $name: failed: $*"
	[ "$plan" = "$want" ] && [ "$ran" = "$want" ] && [ "$failed" = 0 ] ||
		diag "kunit suite: plan $plan, ran $ran, failed $failed, want $want cases"
	[ "$plan" = "$want" ] && [ "$ran" = "$want" ] && [ "$failed" = 0 ]
}
for sw in $RVTD_SUITES; do
	kunit_suite ${sw%:*} ${sw#*:}
	result "kunit_${sw%:*}_${sw#*:}_cases_pass" $?
done
for s in $KERNEL_SUITES; do
	kunit_suite $s -
	result "kunit_${s}_all_cases_pass" $?
done
# No suite ran that is not listed here.
extra=$(cut -d' ' -f1 /tmp/kunit | while read -r s; do
	echo " $RVTD_SUITES $KERNEL_SUITES " | tr '\t\n' '  ' | grep -q " $s[: ]" || echo $s
done)
[ -z "$extra" ] || diag "suites not in this plan's lists: $extra"
result "kunit_no_unlisted_suites" $([ -z "$extra" ]; echo $?)

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
end_plan "legacy_$RVTD_MODE"
