# SPDX-License-Identifier: GPL-2.0
# Loading must fail, with a message and an errno, and leave nothing behind.
# The kernel command line says which case: rvtd.expect=<text in dmesg>.
. /tests/lib.sh
plan 3
expect=$(sed -n 's/.*rvtd.expect=\([^ ]*\).*/\1/p' /proc/cmdline | tr '_' ' ')
case_name=$(sed -n 's/.*rvtd.case=\([^ ]*\).*/\1/p' /proc/cmdline)
iomem0=$(md5sum < /proc/iomem)
err=$(insmod $KO 2>&1)
rc=$?
diag "insmod: exit $rc: $err"
dmesg | grep rust_vtd | sed 's/^/# /'
fail=0
[ $rc != 0 ] || { diag "insmod succeeded"; fail=1; rmmod rust_vtd; }
dmesg | grep 'rust_vtd' | grep -qF "$expect" || { diag "no message containing '$expect'"; fail=1; }
grep -q '^rust_vtd ' /proc/modules && { diag "module still loaded"; fail=1; }
[ "$(md5sum < /proc/iomem)" = "$iomem0" ] || { diag "/proc/iomem changed"; fail=1; }
[ -e /sys/bus/platform/devices/rust_vtd.0 ] && { diag "unit device left behind"; fail=1; }
result "load_refused_$case_name" $fail
check_no_splats "$case_name"
end_plan "$case_name"
