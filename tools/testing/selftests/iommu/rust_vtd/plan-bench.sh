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
else
	driver=intel_iommu
	# The C driver: a kprobe event on qi_submit_sync() per submission, its
	# qi_submit tracepoint per descriptor (the wait descriptor that ends
	# each submission is traced by neither, nor counted by rust_vtd).
	T=/sys/kernel/tracing
	[ -e $T/trace ] || mount -t tracefs nodev $T
	echo 32768 > $T/buffer_size_kb
	echo 'p:rvtd/qis qi_submit_sync count=%dx:u32' >> $T/kprobe_events &&
		echo 1 > $T/events/rvtd/qis/enable &&
		echo 1 > $T/events/intel_iommu/qi_submit/enable
	result "qi_tracing_enabled_$m" $?
	cat > /tmp/qi_counters <<-'EOF'
	#!/bin/sh
	T=/sys/kernel/tracing
	if grep -q 'overrun: [1-9]' $T/per_cpu/cpu*/stats; then echo overrun; exit 1; fi
	awk '/ qis: / { s++ } / qi_submit: / { d++ } END { print s + 0, d + 0 }' $T/trace
	EOF
fi
chmod +x /tmp/qi_counters
diag "driver: $driver, kernel $(uname -r)"

# 1. dma_map_benchmark on the spare e1000e (no driver of its own here):
# lazy (DMA-FQ) and strict (DMA) domains, 1 and 2 threads, granules of 1,
# 16 and 256 pages.  Latencies in microseconds, as the tool prints them
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
	for t in 1 2; do
		for g in 1 16 256; do
			out=$(dma_map_benchmark -t $t -s $secs -g $g 2>&1) || { echo "$out" | sed 's/^/# /'; fail=1; }
			map=$(echo "$out" | sed -n 's/.*average map latency(us):\([0-9.]*\).*/\1/p')
			unmap=$(echo "$out" | sed -n 's/.*average unmap latency(us):\([0-9.]*\).*/\1/p')
			[ -n "$map" ] && [ -n "$unmap" ] || fail=1
			bench dmamap_${s}_t${t}_g${g}_map_us "$map"
			bench dmamap_${s}_t${t}_g${g}_unmap_us "$unmap"
		done
	done
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
		[ $driver = intel_iommu ] && echo > /sys/kernel/tracing/trace
		c0=$(/tmp/qi_counters)
		t0=$(cut -d' ' -f1 /proc/uptime)
		dd if=/dev/$disk of=/dev/null bs=1M count=256 iflag=direct 2>/dev/null || fail=1
		t1=$(cut -d' ' -f1 /proc/uptime)
		c1=$(/tmp/qi_counters)
		bench block_read_${s}_mbps "$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.1f", 256 / (b - a) }')"
		bench qi_submissions_per_mib_read_${s} "$(echo $c0 $c1 | awk '{ printf "%.3f", ($3 - $1) / 256 }')"
		bench qi_descriptors_per_mib_read_${s} "$(echo $c0 $c1 | awk '{ printf "%.3f", ($4 - $2) / 256 }')"
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
[ $driver = intel_iommu ] && echo > /sys/kernel/tracing/trace
BENCH_COUNTERS=/tmp/qi_counters iommufd_bench $igb 1024 3 > /tmp/iommufd_bench 2>&1
st=$?
grep -v '^BENCH' /tmp/iommufd_bench | sed 's/^\([^#]\)/# \1/'
sed -n 's/^BENCH /# BENCH /p' /tmp/iommufd_bench
result "bench_iommufd_$m" $st

check_no_splats "bench_$m"
