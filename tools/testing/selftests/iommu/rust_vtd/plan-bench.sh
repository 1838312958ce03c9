# SPDX-License-Identifier: GPL-2.0
# make bench: one round of every scenario, on whichever kernel booted:
# rust_vtd (rust kernel, loaded here) or the C driver (baseline kernel,
# built in).  Each figure is printed as "# BENCH <name> <value>"; the host
# (tools/testing/rust_vtd/bench.sh) alternates the kernels and compares.
# Nothing here passes or fails on a figure: the results only say whether
# each scenario ran.
. /tests/lib.sh
m=$RVTD_MODE
bench() { diag "BENCH $1 $2"; }
secs=${RVTD_BENCH_SECONDS:-2}
T=/sys/kernel/tracing
[ -e $T/trace ] || mount -t tracefs nodev $T

if [ -n "$KO" ]; then
	driver=rust_vtd
	insmod $KO
	result "insmod_succeeds_$m" $?
	# The queue counters of every unit: submissions, descriptors.
	cat > /tmp/qi_counters <<-'EOF'
	#!/bin/sh
	cat /sys/kernel/debug/iommu/intel/dmar*/qi_stats |
		awk '/^submissions:/ { s += $2 } /^descriptors:/ { d += $2 } END { print s + 0, d + 0 }'
	EOF
	counting_on() { :; }
	counting_off() { :; }
else
	driver=intel_iommu
	# The C driver: a kprobe event on qi_submit_sync() per submission, its
	# qi_submit tracepoint per descriptor (the wait descriptor that ends
	# each submission is traced by neither, nor counted by rust_vtd).
	# Enabled only for the counting passes, never while a figure is timed.
	echo 32768 > $T/buffer_size_kb
	echo 'p:rvtd/qis qi_submit_sync count=%dx:u32' >> $T/kprobe_events
	result "qi_tracing_available_$m" $?
	counting_on() {
		echo > $T/trace
		echo 1 > $T/events/rvtd/qis/enable && echo 1 > $T/events/intel_iommu/qi_submit/enable
	}
	counting_off() {
		echo 0 > $T/events/rvtd/qis/enable
		echo 0 > $T/events/intel_iommu/qi_submit/enable
	}
	cat > /tmp/qi_counters <<-'EOF'
	#!/bin/sh
	T=/sys/kernel/tracing
	if grep -q 'overrun: [1-9]' $T/per_cpu/cpu*/stats; then echo overrun; exit 1; fi
	awk '/ qis: / { s++ } / qi_submit: / { d++ } END { print s + 0, d + 0 }' $T/trace
	EOF
fi
# The unit's queue tail (IQT, in 128-bit descriptors, modulo the 256 of a
# 4 KiB queue): what the counters report, plus one wait descriptor per
# submission, must have moved it as far, whichever driver counts.
base=$(dmar_units | head -n1)
iqt() { echo $((($(reg64 $base 0x88) >> 4) & 255)); }
# snap: the counters and IQT together, once the unit is quiet: lazy
# domains flush from a timer (about every 10 ms) after the work is done,
# and a flush between the two reads would count on one side only.  IQT is
# read before and after the counters, until both reads agree.  Prints
# "submissions descriptors iqt".
snap() {
	local i q0 c q1
	usleep 200000
	for i in 1 2 3 4 5 6 7 8 9 10; do
		q0=$(iqt) c=$(/tmp/qi_counters) q1=$(iqt)
		[ "$q0" = "$q1" ] && break
		usleep 50000
	done
	echo $c $q1
}
# iqt_check NAME "C0" "C1" Q0 Q1: the counters' growth from C0 to C1
# (submissions, descriptors) and IQT's from Q0 to Q1 must agree.
iqt_check() {
	local ds dd
	ds=$(echo $2 $3 | awk '{ print $3 - $1 }') dd=$(echo $2 $3 | awk '{ print $4 - $2 }')
	if [ $((($5 - $4 - ds - dd) & 255)) = 0 ]; then
		iqt_ok=$((iqt_ok + 1))
	else
		diag "$1: counters say $ds submissions, $dd descriptors; IQT moved $((($5 - $4) & 255)) (mod 256)"
		iqt_bad=$((iqt_bad + 1))
	fi
}
# count_pass NAME CMD...: runs CMD untimed with counting on, and reports
# the counters' growth as BENCH qi_*_per_NAME (divided by $per).
per=1
count_pass() {
	local name=$1 c0 c1 q0 q1 a b
	shift
	counting_on
	a=$(snap)
	"$@" > /dev/null 2>&1
	b=$(snap)
	counting_off
	c0=${a% *} q0=${a##* } c1=${b% *} q1=${b##* }
	bench qi_submissions_per_$name "$(echo $c0 $c1 | awk -v p=$per '{ printf "%.3f", ($3 - $1) / p }')"
	bench qi_descriptors_per_$name "$(echo $c0 $c1 | awk -v p=$per '{ printf "%.3f", ($4 - $2) / p }')"
	iqt_check $name "$c0" "$c1" $q0 $q1
}
iqt_ok=0 iqt_bad=0
# profile NAME CMD...: runs CMD (a dma_map_benchmark) untimed under ftrace's
# function profiler, every function with an ftrace hook on, through the
# function-graph tracer (a function's time includes its callees'; Rust
# functions have no hook, so rust_vtd's time shows in the C function that
# called it), and prints "PROFILE NAME function hits microseconds",
# summed over the CPUs, for every function called at least once per two
# DMA maps, and for dma_map_page_attrs, by which the report divides.
profile() {
	local name=$1 ops
	shift
	[ -w $T/function_profile_enabled ] || { diag "$name: no function profiler"; return 1; }
	# (Enabling resets the counts.)
	echo 1 > $T/function_profile_enabled || return 1
	"$@" > /dev/null 2>&1
	echo 0 > $T/function_profile_enabled
	cat $T/trace_stat/function* |
		awk '$2 ~ /^[0-9]+$/ && $4 == "us" { h[$1] += $2; t[$1] += $3 }
			END { for (f in h) print f, h[f], t[f] }' > /tmp/profile
	ops=$(awk '$1 == "dma_map_page_attrs" { print $2 }' /tmp/profile)
	[ -n "$ops" ] && [ "$ops" -gt 0 ] || { diag "$name: no dma_map_page_attrs in the profile"; return 1; }
	sort -k3 -n -r /tmp/profile | awk -v n=$name -v o=$ops '$2 * 2 >= o {
		printf "PROFILE %s %s %d %.1f\n", n, $1, $2, $3 }' | sed 's/^/# /'
}
chmod +x /tmp/qi_counters
diag "driver: $driver, kernel $(uname -r)"

# 1. dma_map_benchmark on the spare e1000e (no driver of its own here):
# lazy (DMA-FQ) and strict (DMA) domains, 1 to 3 threads (as many as the
# guest has vCPUs; make bench gives it 3), granules of 1, 16 and 256 pages.
# Then, untimed, one round of each granule with the counters on.  Latencies in microseconds, as the tool prints them
# (it measures in units of 100 ns).
nic=$(pci_devices 0x8086:0x10d3 | head -n1)
fail=0
for type in DMA-FQ DMA; do
	s=lazy
	[ $type = DMA ] && s=strict
	[ -e /sys/bus/pci/devices/$nic/driver ] && echo $nic > /sys/bus/pci/devices/$nic/driver/unbind
	echo $type > /sys/bus/pci/devices/$nic/iommu_group/type || { diag "$nic: cannot set $type"; fail=1; }
	echo dma_map_benchmark > /sys/bus/pci/devices/$nic/driver_override
	echo $nic > /sys/bus/pci/drivers_probe || { diag "$nic: probe failed"; fail=1; }
	[ "$(group_type $nic)" = $type ] || { diag "$nic: group type $(group_type $nic), not $type"; fail=1; }
	for t in $(seq 1 $(($(nproc) < 3 ? $(nproc) : 3))); do
		for g in 1 16 256; do
			out=$(dma_map_benchmark -t $t -s $secs -g $g 2>&1) || { echo "$out" | sed 's/^/# /'; fail=1; }
			map=$(echo "$out" | sed -n 's/.*average map latency(us):\([0-9.]*\).*/\1/p')
			unmap=$(echo "$out" | sed -n 's/.*average unmap latency(us):\([0-9.]*\).*/\1/p')
			[ -n "$map" ] && [ -n "$unmap" ] || fail=1
			bench dmamap_${s}_t${t}_g${g}_map_us "$map"
			bench dmamap_${s}_t${t}_g${g}_unmap_us "$unmap"
		done
	done
	# (dma_map_benchmark maps and unmaps for a fixed time, so the counts
	# are per second of one thread, not per operation.)
	per=1
	count_pass dmamap_${s}_t1_g1_second dma_map_benchmark -t 1 -s 1 -g 1
	# Where the time goes: the strict rows are where rust_vtd loses most,
	# single-threaded and with as many threads as vCPUs.
	if [ $s = strict ]; then
		profile dmamap_strict_t1_g1 dma_map_benchmark -t 1 -s 1 -g 1 || fail=1
		profile dmamap_strict_t3_g16 dma_map_benchmark -t 3 -s 1 -g 16 || fail=1
	fi
	echo $nic > /sys/bus/pci/drivers/dma_map_benchmark/unbind
	echo > /sys/bus/pci/devices/$nic/driver_override
done
result "bench_dma_map_benchmark_$m" $fail

# 2. Block I/O: sequential O_DIRECT read of 256 MiB from the bench disk
# (virtio-blk, iommu_platform=on, serial "bench"; a sparse file on the
# host, so QEMU's side is cheap and the DMA path dominates) through a lazy,
# a strict and an identity domain.  MB/s, and queue submissions per MiB.
disk=$(for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = bench ] && echo ${b##*/}; done)
modprobe virtio_blk 2>/dev/null
i=0
while [ -z "$disk" ] && [ $i -lt 50 ]; do
	usleep 100000
	i=$((i + 1))
	disk=$(for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = bench ] && echo ${b##*/}; done)
done
fail=0
if [ -z "$disk" ]; then
	diag "no disk with serial 'bench'"
	fail=1
else
	pdev=$(readlink -f /sys/block/$disk/device/..)
	pdev=${pdev##*/}
	# virtio-pci bound before rust_vtd registered: its group keeps
	# identity, and refuses another type, until the next driver binds
	# (patch 0006).  So rebind once first.
	echo $pdev > /sys/bus/pci/drivers/virtio-pci/unbind
	echo $pdev > /sys/bus/pci/drivers/virtio-pci/bind
	for type in DMA-FQ DMA identity; do
		s=$(echo $type | sed 's/DMA-FQ/lazy/; s/^DMA$/strict/')
		echo $pdev > /sys/bus/pci/drivers/virtio-pci/unbind || { diag "$pdev: unbind failed"; fail=1; }
		echo $type > /sys/bus/pci/devices/$pdev/iommu_group/type || {
			diag "$pdev: cannot set $type; group: $(ls $(readlink -f /sys/bus/pci/devices/$pdev/iommu_group)/devices)"
			fail=1
		}
		echo $pdev > /sys/bus/pci/drivers/virtio-pci/bind || { diag "$pdev: bind failed"; fail=1; }
		i=0
		while [ ! -b /dev/$disk ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
		[ "$(group_type $pdev)" = $type ] || { diag "$pdev: group type $(group_type $pdev)"; fail=1; }
		dd if=/dev/$disk of=/dev/null bs=1M count=16 iflag=direct 2>/dev/null # warm up
		t0=$(cut -d' ' -f1 /proc/uptime)
		dd if=/dev/$disk of=/dev/null bs=1M count=256 iflag=direct 2>/dev/null || fail=1
		t1=$(cut -d' ' -f1 /proc/uptime)
		bench block_read_${s}_mbps "$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.1f", 256 / (b - a) }')"
		per=256
		count_pass mib_read_${s} dd if=/dev/$disk of=/dev/null bs=1M count=256 iflag=direct
	done
fi
result "bench_block_read_$m" $fail

# 3. iommufd: IOMMU_IOAS_MAP / IOMMU_IOAS_UNMAP of 1 GiB in 4 KiB pages
# and in 2 MiB hugepages, through a VFIO cdev (igb), 3 times each; the
# page tables the first mapping took; 4 KiB single maps and unmaps; queue
# submissions and descriptors for each.
igb=$(pci_devices 0x8086:0x10c9 | head -n1)
echo vfio-pci > /sys/bus/pci/devices/$igb/driver_override
echo $igb > /sys/bus/pci/drivers_probe
ulimit -l unlimited
# Timed with no counting; then once more, untimed, with the counters on,
# for the qi_ and pagetable_ rows only.
iommufd_bench $igb 1024 3 > /tmp/iommufd_bench 2>&1
st=$?
grep -v '^BENCH' /tmp/iommufd_bench | sed 's/^\([^#]\)/# \1/'
sed -n 's/^BENCH \(iommufd_\)/# BENCH \1/p' /tmp/iommufd_bench
counting_on
a=$(snap)
BENCH_COUNTERS=/tmp/qi_counters iommufd_bench $igb 1024 1 > /tmp/iommufd_count 2>&1 || st=1
b=$(snap)
counting_off
c0=${a% *} q0=${a##* } c1=${b% *} q1=${b##* }
sed -n 's/^BENCH \(qi_\|pagetable_\)/# BENCH \1/p' /tmp/iommufd_count
iqt_check iommufd "$c0" "$c1" $q0 $q1
result "bench_iommufd_$m" $st

# Every counting pass's counts agree with the unit's queue tail.
[ $iqt_bad = 0 ] && [ $iqt_ok -gt 0 ]
result "qi_counts_match_iqt_$m" $?

check_no_splats "bench_$m"
