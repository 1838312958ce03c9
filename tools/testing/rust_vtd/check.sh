#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# check.sh: (inside the sysroot, after the kernel and image are built) run
# every test: lint on the host, then the guest plans, one VM boot each.
# Prints one TAP line per test and ends with "N passed, N failed".

. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

SRC=$CACHE/src/linux
B=$CACHE/build-rust
LOGDIR=$TOP/logs
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/*.log
pass=0
fail=0
n=0

tap() { # status name
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		pass=$((pass + 1))
		echo "ok $n $2"
	else
		fail=$((fail + 1))
		echo "not ok $n $2"
	fi
}

echo "TAP version 13"
echo "# accelerator: $(pick_accel); logs in $LOGDIR; FULL=${FULL:-0}"

# Lint: rustfmt on our Rust files; rustc and clippy warnings as collected
# by the CLIPPY=1 kernel build (kernel.sh).
mapfile -t rs < <(cd "$TOP" && git ls-files -co --exclude-standard -- '*.rs' 2>/dev/null ||
	find rust drivers samples -name '*.rs')
if (cd "$TOP" && rustfmt --check --color never --edition 2021 --config-path "$SRC/.rustfmt.toml" "${rs[@]}") \
	> "$LOGDIR/rustfmt.log" 2>&1; then
	tap 0 rustfmt_clean
else
	sed 's/^/# /' "$LOGDIR/rustfmt.log" | head -40
	tap 1 rustfmt_clean
fi
if [ -s "$B/rust-warnings.log" ]; then
	sed 's/^/# /' "$B/rust-warnings.log" | head -40
	tap 1 rustc_clippy_warnings_none
else
	tap 0 rustc_clippy_warnings_none
fi

# generic_pt's own KUnit suites (CONFIG_IOMMU_PT_KUNIT_TEST): the page-table
# library rust_vtd's domains and identity table are built on, vtdss format
# included.  Run as upstream runs them, with its .kunitconfig, in UML on
# the host (tools/testing/kunit): their leak check compares the system's
# page-table page count before and after each case, which only a
# uniprocessor kernel keeps exact (an SMP guest's per-CPU counters fold
# late, and one failed case there leaves the next ones unable to start).
# One test per suite: it ran and every case passed.
if [ -z "${ONLY:-}" ] || [[ generic_pt_kunit =~ ^($ONLY)$ ]]; then
	start=$SECONDS
	(cd "$SRC" && timeout 1800 python3 tools/testing/kunit/kunit.py run \
		--kunitconfig drivers/iommu/generic_pt --build_dir "$CACHE/build-ptkunit" \
		--jobs "$JOBS" --raw_output=kunit) > "$LOGDIR/generic_pt_kunit.log" 2>&1 || true
	sed -n 's/^\[[ 0-9.]*\] //; p' "$LOGDIR/generic_pt_kunit.log" | awk '
		/^    # Subtest: / { s = $3; plan = "-"; ran = 0; failed = 0 }
		s != "" && /^    1\.\.[0-9]+$/ { plan = substr($1, 4) }
		s != "" && /^    ok / { ran++ }
		s != "" && /^    not ok / { ran++; failed++ }
		s != "" && /^(not )?ok [0-9]+ / { print s, plan, ran, failed; s = "" }
	' > "$LOGDIR/generic_pt_kunit.suites"
	sed 's/^/# generic_pt kunit: /' "$LOGDIR/generic_pt_kunit.suites"
	for sname in vtdss_fmt_test vtdss_iommu_test $(cut -d' ' -f1 "$LOGDIR/generic_pt_kunit.suites" |
		grep -v '^vtdss_' | sort -u); do
		line=$(grep "^$sname " "$LOGDIR/generic_pt_kunit.suites" || true)
		if [ "$(echo "$line" | grep -c .)" = 1 ] &&
			echo "$line" | awk '{ exit !($2 != "-" && $2 == $3 && $4 == 0 && $3 > 0) }'; then
			tap 0 "kunit_generic_pt_${sname}_all_cases_pass"
		else
			tail -n 30 "$LOGDIR/generic_pt_kunit.log" | sed 's/^/#   /'
			tap 1 "kunit_generic_pt_${sname}_all_cases_pass"
		fi
	done
	echo "# generic_pt kunit (UML): $((SECONDS - start)) s"
fi

# What a guest's console must never show: an oops, a BUG (KASAN and
# sleeping-in-atomic reports included), a WARNING (lockdep's reports
# included), a kmemleak report.  Scanned on the host over the whole log,
# from boot to power-off, so that nothing printed after a plan's own last
# check, or by a plan that died, escapes.
SPLAT_RE='WARNING:|BUG:|Oops|general protection|Call Trace|kernel BUG|UBSAN|KASAN|refcount_t:|list_(add|del) corruption|kmemleak: [0-9]+ new suspected|DEBUG_LOCKS_WARN_ON|INFO: trying to register non-static key|Kernel panic'

# The part of a console log scanned for splats: all of it, except, in a VM
# that crashes on purpose (EXPECT_CRASH=1: kdump), what the crashed kernel
# printed from its sysrq crash to the capture kernel's banner.
console_scanned() {
	if [ "${EXPECT_CRASH:-}" = 1 ]; then
		awk '/sysrq: Trigger a crash/ { skip = 1 } /Linux version/ { skip = 0 } !skip'
	else
		cat
	fi
}

# [FLAVOUR=lockdep] boot NAME MODE PLAN TIMEOUT [kernel args] [-- qemu args]
# ONLY=REGEX (for development) boots only the VMs whose name matches.
# Besides the plan's own tests, every VM gets two: it reported exactly as
# many results as its plan declared, and its console is clean; with
# QEMU_FAULTS=N a third: QEMU traced exactly N DMA faults.
boot() {
	local name=$1 mode=$2 plan=$3 tmo=$4
	shift 4
	[ -z "${ONLY:-}" ] || [[ $name =~ ^($ONLY)$ ]] || return 0
	local start=$SECONDS
	local rc=0 declared="" got=0
	# An oops panics the guest (and so ends the VM at once): the shell
	# that runs the plan would be dead anyway.
	vm_boot "$name" "${FLAVOUR:-rust}" "$mode" "$plan" "$tmo" oops=panic "$@" \
		> "$LOGDIR/$name.qemu.log" 2>&1 || rc=$?
	local res=$LOGDIR/$name.results.log con=$LOGDIR/$name.console.log
	while IFS= read -r line; do
		case $line in
		"ok "*) got=$((got + 1)); tap 0 "$(echo "$line" | sed -E 's/^ok [0-9]+ (- )?//')" ;;
		"not ok "*) got=$((got + 1)); tap 1 "$(echo "$line" | sed -E 's/^not ok [0-9]+ (- )?//')" ;;
		1..*) declared=${line#1..} ;;
		"#"*) echo "$line" ;;
		esac
	done < <(tr -d '\r' < "$res" 2>/dev/null)
	local finished=0
	grep -q "plan $plan finished" "$res" 2>/dev/null && finished=1
	if [ $finished = 0 ]; then
		echo "# VM '$name' did not finish (qemu exit $rc); console tail:"
		tail -n 30 "$con" 2>/dev/null | sed 's/^/#   /'
	fi
	echo "# VM '$name': plan declared ${declared:-no} tests, $got reported, finished: $finished"
	# (An if, not a list and $?: under set -e a failing last test of a
	# list would end the script.)
	if [ -n "$declared" ] && [ "$got" = "$declared" ] && [ $finished = 1 ]; then
		tap 0 "vm_${name}_ran_all_planned_tests"
	else
		tap 1 "vm_${name}_ran_all_planned_tests"
	fi
	local splats
	splats=$(tr -d '\r' < "$con" 2>/dev/null | console_scanned | grep -aE "$SPLAT_RE" | head -n 20 || true)
	if [ -n "$splats" ] || [ ! -s "$con" ]; then
		echo "# VM '$name': console log $([ -s "$con" ] || echo 'missing or empty')"
		echo "$splats" | sed 's/^/#   /'
		tr -d '\r' < "$con" 2>/dev/null | grep -aE -B5 -A25 "$SPLAT_RE" | head -n 60 | sed 's/^/#   /' || true
		tap 1 "vm_${name}_console_clean"
	else
		tap 0 "vm_${name}_console_clean"
	fi
	# QEMU_FAULTS=N: QEMU itself (its vtd_dmar_fault trace event, which
	# the VM must enable) saw exactly N DMA faults in the whole run.
	if [ -n "${QEMU_FAULTS:-}" ]; then
		local qf qt=qemu_saw_no_dma_fault
		[ "$QEMU_FAULTS" = 0 ] || qt=qemu_saw_only_the_expected_dma_faults
		qf=$(grep -c 'vtd_dmar_fault' "$LOGDIR/$name.qemu.log" || true)
		echo "# VM '$name': QEMU traced $qf DMA fault(s), $QEMU_FAULTS expected"
		grep -m 5 'vtd_dmar_fault' "$LOGDIR/$name.qemu.log" | sed 's/^/#   /' || true
		if [ "$qf" = "$QEMU_FAULTS" ]; then
			tap 0 "vm_${name}_$qt"
		else
			tap 1 "vm_${name}_$qt"
		fi
	fi
	# QEMU_DEVTLB=1: QEMU (its vtd_inv_desc trace event, which the VM
	# must enable) processed as many device-TLB invalidation descriptors
	# (type 3) as the guest says its unit submitted, at least one.
	if [ "${QEMU_DEVTLB:-}" = 1 ]; then
		local qd gd
		qd=$(grep -a 'vtd_inv_desc ' "$LOGDIR/$name.qemu.log" | grep -o 'low 0x[0-9a-f]*' |
			awk '{ if (substr($2, length($2)) == "3") n++ } END { print n + 0 }')
		gd=$(tr -d '\r' < "$res" | sed -n 's/^# device-TLB invalidations submitted: \([0-9]*\)$/\1/p' | tail -n1)
		echo "# VM '$name': QEMU processed $qd device-TLB invalidation(s), the guest submitted ${gd:-an unknown number}"
		if [ -n "$gd" ] && [ "$qd" = "$gd" ] && [ "$qd" -gt 0 ]; then
			tap 0 "vm_${name}_qemu_processed_every_device_tlb_invalidation"
		else
			tap 1 "vm_${name}_qemu_processed_every_device_tlb_invalidation"
		fi
	fi
	echo "# VM '$name': $((SECONDS - start)) s"
}

boot legacy legacy legacy 900
# The domains plan reserves 1 MiB for DMA tests and a 1 GiB hugepage
# (physically contiguous memory for the page-table freeing test).  The
# caching-mode VM runs its DMA-API domains strict, the others lazy.
dom=('memmap=1M$0x7000000' iommufd.allow_unsafe_interrupts=1 vfio_iommu_type1.allow_unsafe_interrupts=1 hugepagesz=1G hugepages=1)
RVTD_MEM=4G boot domains legacy domains 900 "${dom[@]}"
RVTD_MEM=4G boot domains-cm cm domains 900 "${dom[@]}" iommu.strict=1
RVTD_MEM=4G boot domains-sm sm domains 900 "${dom[@]}"
# Once more, in legacy mode, on the kernel with lockdep and
# sleeping-in-atomic checks (configs/lockdep.config): every lock rust_vtd
# takes, through every path the plan drives, the 60 s two-thread stress
# included.  Its tests carry a _lockdep suffix.
FLAVOUR=lockdep RVTD_MEM=4G boot domains-lockdep legacy domains 1500 "${dom[@]}"
# FULL=1: runs too long for the CI budget.  The domains plan once more,
# on the kernel with KASAN and sleeping-in-atomic checks
# (configs/kasan.config); its tests carry a _kasan suffix.
if [ "${FULL:-}" = 1 ]; then
	FLAVOUR=kasan RVTD_MEM=4G boot domains-kasan legacy domains 3600 "${dom[@]}" kasan_multi_shot
fi
for mode in aw39 sm sm-fsts cm devtlb; do
	boot "caps-$mode" "$mode" caps 300
done
# ATS and device-TLB invalidation (device-iotlb=on), and 100 FLRs of the
# virtio disk with I/O; QEMU traces every invalidation descriptor.
QEMU_DEVTLB=1 boot ats devtlb ats 900 -- -trace vtd_inv_desc
boot idtable legacy idtable 600 'memmap=1M$0x7000000'
# Upstream VFIO selftests with igb (make vfio-compare runs them on the C
# driver too).
RVTD_MEM=4G boot vfio legacy vfio 1500 "${VFIO_KARGS[@]}"
# Upstream iommufd selftests (mock domain) with rust_vtd loaded.
boot iommufd legacy iommufd 1200
# Register-based invalidation (rust_vtd's queued_invalidation=0): QEMU's
# unit always has an invalidation queue, so nothing else takes that path.
RVTD_MEM=4G boot regs legacy regs 600 iommufd.allow_unsafe_interrupts=1 hugepagesz=1G hugepages=1
# A flush that was not confirmed: the DMA API must not reuse its IOVAs
# (patch 0016), strict and lazy, shown with the Rust edu sample.
boot iova-reuse legacy iova-reuse 300
# kdump: a crash with translation on and DMA set up, and the capture
# kernel that takes the unit over; KDUMP_CYCLES crash-and-capture cycles
# in a row, one VM boot (about 35 s) each: 3, and 10 with FULL=1 (a
# fresh machine's run must fit CI's 90 minutes).  make kdump runs one.
# QEMU traces every DMA fault its VT-d reports: none in either kernel.
cycles=3
if [ "${FULL:-}" = 1 ]; then cycles=10; fi
for i in $(seq 1 "${KDUMP_CYCLES:-$cycles}"); do
	EXPECT_CRASH=1 QEMU_FAULTS=0 boot "kdump-$i" legacy kdump 900 crashkernel=256M \
		iommufd.allow_unsafe_interrupts=1 rvtd.cycle=$i -- -trace vtd_dmar_fault
done
# Once more with a root table address the capture kernel must refuse
# (plan-kdump.sh, rvtd.kdump=badrt): it falls back to turning translation
# off, and the crashed process's DMA is blocked: one fault in rust_vtd's
# log, 16 in QEMU's trace (it translates edu's 64-byte write 4 bytes at a
# time, and faults each).
EXPECT_CRASH=1 QEMU_FAULTS=16 boot kdump-badrt legacy kdump 900 crashkernel=256M \
	iommufd.allow_unsafe_interrupts=1 rvtd.kdump=badrt -- -trace vtd_dmar_fault
# And with a capture kernel booted with iommu.passthrough=1 (rvtd.kdump=pt):
# its deferred devices still get translated default domains.
EXPECT_CRASH=1 QEMU_FAULTS=0 boot kdump-pt legacy kdump 900 crashkernel=256M \
	iommufd.allow_unsafe_interrupts=1 rvtd.kdump=pt -- -trace vtd_dmar_fault
# RMRRs: QEMU's DMAR has none, so the guest kernel replaces it with one that
# has (ACPI table upgrade from an uncompressed cpio before the initramfs).
mkdir -p "$LOGDIR/acpi-rmrr/kernel/firmware/acpi"
python3 "$TOP/tools/testing/rust_vtd/mkdmar.py" rmrr "$LOGDIR/acpi-rmrr/kernel/firmware/acpi/dmar.aml"
(cd "$LOGDIR/acpi-rmrr" && find kernel | cpio -o -H newc --quiet) > "$LOGDIR/initrd-rmrr"
cat "$CACHE/image-rust/initramfs.gz" >> "$LOGDIR/initrd-rmrr"
RVTD_INITRD=$LOGDIR/initrd-rmrr boot rmrr legacy rmrr 600 'memmap=1M$0x7000000'
boot refuse-no-dmar none refuse 300 rvtd.case=without_dmar_table \
	rvtd.expect=no_ACPI_DMAR_table
declare -A expect=(
	[unreadable]="no_remapping_unit_answers"
	[zero-length]="has_invalid_length_0"
	[bad-scope]="malformed_device_scope"
	[overlap]="have_overlapping_register_sets"
	[past-end]="runs_past_the_table_end"
)
for v in unreadable zero-length bad-scope overlap past-end; do
	python3 "$TOP/tools/testing/rust_vtd/mkdmar.py" "$v" "$LOGDIR/dmar-$v.bin"
	boot "refuse-$v" none refuse 300 "rvtd.case=dmar_${v//-/_}" "rvtd.expect=${expect[$v]}" \
		-- -acpitable "file=$LOGDIR/dmar-$v.bin"
done

echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
