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

# plan N: the plan declares, before its first test, that it reports N
# results (the TAP plan line).  check.sh fails a VM whose count differs:
# a plan that dies half way (an oops kills its shell) cannot pass.
plan() { echo "1..$1"; }

# end_plan TAG: the last test of every plan: kmemleak finds no
# unreferenced object left since boot (or since a plan's last "clear").
# kmemleak reports objects older than 5 s, from the second scan that
# finds them unreferenced.
end_plan() {
	local kl=/sys/kernel/debug/kmemleak n
	if [ ! -r $kl ]; then
		diag "kmemleak is not available"
		not_ok "kmemleak_clean_at_plan_end_$1"
		return
	fi
	sleep 6
	echo scan > $kl
	echo scan > $kl
	n=$(grep -c 'unreferenced object' $kl)
	diag "kmemleak at the end of the plan: $n unreferenced objects"
	[ "$n" = 0 ] || head -60 $kl | sed 's/^/# /'
	result "kmemleak_clean_at_plan_end_$1" $([ "$n" = 0 ]; echo $?)
}

# Kernel warnings, oopses and other splats since boot, or since the last
# splats_from_now.
splats() {
	dmesg | awk -v t="${SPLATS_SINCE:-0}" '{ s = $0; sub(/^\[ */, "", s); sub(/\].*/, "", s); if (s + 0 > t) print }' |
		grep -E 'WARNING:|BUG:|Oops|general protection|Call Trace|kernel BUG|UBSAN|refcount_t:|list_(add|del) corruption|kmemleak: [0-9]+ new suspected|DEBUG_LOCKS_WARN_ON|INFO: trying to register non-static key'
}

# Leave what the kernel printed so far out of later splats (once a plan
# has accounted for it, as for leaks of upstream code it reports itself).
splats_from_now() { SPLATS_SINCE=$(dmesg | tail -n1 | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'); }

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

# The value of KEY in the driver's "dmarN: WHAT: key=value ..." line.
drv_field() { # unit what key
	dmesg | sed -n "s/.*rust_vtd: dmar$1: $2: .*\b$3=\([^ ]*\).*/\1/p" | tail -n1
}

# Check the driver's view of every unit against the firmware table, the
# registers read here through /dev/mem, and what QEMU was started with
# ($RVTD_MODE).  Emits four tests suffixed with the mode.
check_units() {
	m=$RVTD_MODE
	bases=$(dmar_units)
	n_tab=$(echo "$bases" | grep -c .)
	n_drv=$(dmesg | grep -c 'rust_vtd: dmar[0-9]*: reg_base_addr')
	n_dev=$(ls -d /sys/bus/platform/drivers/rust_vtd/rust_vtd.* 2>/dev/null | wc -l)
	diag "units: DMAR table $n_tab, driver $n_drv, bound devices $n_dev"
	[ "$n_tab" -ge 1 ] && [ "$n_tab" = "$n_drv" ] && [ "$n_tab" = "$n_dev" ]
	result "units_match_dmar_table_$m" $?

	i=0 bad=0 badf=0 badm=0
	for base in $bases; do
		line=$(dmesg | grep "rust_vtd: dmar$i: reg_base_addr")
		cap=$(reg64 $base 0x8)
		ecap=$(reg64 $base 0x10)
		ver=$(reg32 $base 0x0)
		want=$(printf 'dmar%d: reg_base_addr %x ver %d:%d cap %x ecap %x' $i $base \
			$(((ver >> 4) & 0xf)) $((ver & 0xf)) $cap $ecap)
		case $line in
		*"$want") ;;
		*) diag "dmar$i: driver says '$line', hardware '$want'"; bad=1 ;;
		esac
		# Every decoded field, decoded again here from the raw registers.
		for spec in nd:0:7 afl:3:1 rwbf:4:1 plmr:5:1 phmr:6:1 cm:7:1 sagaw:8:31 \
			zlr:22:1 sllps:34:15 psi:39:1 mamv:48:63 dwd:54:1 drd:55:1 \
			fs1gp:56:1 pi:59:1 fl5lp:60:1 esirtps:62:1 esrtps:63:1; do
			k=${spec%%:*} r=${spec#*:}
			v=$(((cap >> ${r%:*}) & ${r#*:}))
			d=$(drv_field $i cap $k)
			[ -n "$d" ] && [ "$(printf %d "$d")" = "$v" ] ||
				{ diag "dmar$i cap.$k: driver '$d', registers $v"; badf=1; }
		done
		[ "$(drv_field $i cap mgaw)" = $((((cap >> 16) & 63) + 1)) ] || { diag "dmar$i cap.mgaw wrong or missing"; badf=1; }
		[ "$(drv_field $i cap nfr)" = $((((cap >> 40) & 255) + 1)) ] || { diag "dmar$i cap.nfr wrong or missing"; badf=1; }
		d=$(drv_field $i cap fro)
		[ -n "$d" ] && [ "$(printf %d "$d")" = $((((cap >> 24) & 1023) * 16)) ] || badf=1
		for spec in c:0:1 qi:1:1 dt:2:1 ir:3:1 eim:4:1 pt:6:1 sc:7:1 mhmv:20:15 \
			mts:25:1 nest:26:1 prs:29:1 ers:30:1 srs:31:1 nwfs:33:1 eafs:34:1 \
			pss:35:31 pasid:40:1 dit:41:1 pds:42:1 smts:43:1 slads:45:1 \
			slts:46:1 flts:47:1 smpwc:48:1 rps:49:1 pms:51:1; do
			k=${spec%%:*} r=${spec#*:}
			v=$(((ecap >> ${r%:*}) & ${r#*:}))
			d=$(drv_field $i ecap $k)
			[ -n "$d" ] && [ "$(printf %d "$d")" = "$v" ] ||
				{ diag "dmar$i ecap.$k: driver '$d', registers $v"; badf=1; }
		done
		d=$(drv_field $i ecap iro)
		[ -n "$d" ] && [ "$(printf %d "$d")" = $((((ecap >> 8) & 1023) * 16)) ] || badf=1

		# What the intel-iommu options promise.
		cm=$(drv_field $i cap cm) dt=$(drv_field $i ecap dt)
		smts=$(drv_field $i ecap smts) flts=$(drv_field $i ecap flts)
		mgaw=$(drv_field $i cap mgaw) sagaw=$(drv_field $i cap sagaw)
		exp_cm=0 exp_dt=0 exp_smts=0 exp_flts=0 exp_mgaw=48 exp_sagaw=0x6
		case $m in
		aw39) exp_mgaw=39 exp_sagaw=0x2 ;;
		sm) exp_smts=1 ;;
		sm-fsts) exp_smts=1 exp_flts=1 ;;
		cm) exp_cm=1 ;;
		devtlb) exp_dt=1 ;;
		esac
		got="cm=$cm dt=$dt smts=$smts flts=$flts mgaw=$mgaw sagaw=$sagaw"
		exp="cm=$exp_cm dt=$exp_dt smts=$exp_smts flts=$exp_flts mgaw=$exp_mgaw sagaw=$exp_sagaw"
		[ "$got" = "$exp" ] || { diag "dmar$i: mode $m wants '$exp', driver decoded '$got'"; badm=1; }
		i=$((i + 1))
	done
	result "cap_ecap_match_hardware_$m" $bad
	result "decoded_fields_match_registers_$m" $badf
	result "decoded_features_match_qemu_options_$m" $badm
}

# pci_devices VENDOR:DEVICE: the PCI devices with that ID (0x8086:0x10d3).
pci_devices() {
	local d
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat $d/vendor):$(cat $d/device)" = $1 ] && echo ${d##*/}
	done
}

# pci_rid BDF: the requester (source) ID of DDDD:BB:DD.F, as 0xBBDF.
pci_rid() {
	local b=${1#*:}
	printf '0x%04x' $(((0x${b%%:*} << 8) | (0x$(echo $b | cut -d: -f2 | cut -d. -f1) << 3) | ${b##*.}))
}

# qs KEY: a counter of dmar0's invalidation statistics (debugfs qi_stats).
qs() { awk -v k="$1:" '$1 == k { print $2 }' /sys/kernel/debug/iommu/intel/dmar0/qi_stats; }

# rebind BDF: unbinds the driver of BDF and of every other device of its
# group, then probes them again.  A device bound before rust_vtd
# registered gets the kernel's default domain type this way (the core
# changes a group's default domain only while no driver is bound in it).
rebind() {
	local g d drv others
	g=$(readlink -f /sys/bus/pci/devices/$1/iommu_group)
	others=$(for d in $(ls $g/devices); do [ $d != $1 ] && [ -e $g/devices/$d/driver ] && echo $d; done)
	drv=$(readlink -f /sys/bus/pci/devices/$1/driver)
	for d in $others; do echo $d > /sys/bus/pci/devices/$d/driver/unbind; done
	echo $1 > $drv/unbind
	echo $1 > $drv/bind
	for d in $others; do echo $d > /sys/bus/pci/drivers_probe; done
}

# group_type BDF: the type of the default domain of BDF's group.
group_type() { cat /sys/bus/pci/devices/$1/iommu_group/type 2>/dev/null; }

# ping_gateway IFC NET COUNT: bring IFC up as NET.15/24 and send COUNT
# pings of 1400 bytes to the QEMU user network's gateway NET.2; succeeds
# when every reply comes back.  The summary is left in /tmp/ping.
ping_gateway() {
	local st
	ip link set $1 up && ip addr add $2.15/24 dev $1
	# (link-up takes a moment; the first replies may be lost)
	ping -c 3 -W 3 $2.2 > /dev/null 2>&1
	ping -c $3 -i 0.1 -s 1400 -W 3 $2.2 > /tmp/ping 2>&1
	st=$?
	diag "$(grep -E 'packets transmitted' /tmp/ping)"
	grep -q ' 0% packet loss' /tmp/ping || st=1
	return $st
}

# e1000e_ping TYPE: probe e1000e's driver on the guest's e1000e, which has
# a user network of its own (10.0.3.0/24), bring its interface up and send
# 50 pings of 1400 bytes to that gateway.  Succeeds when the device's group
# has a default domain of TYPE, every reply comes back intact and no DMA
# fault is recorded meanwhile.  Leaves the device in $nic, the interface
# (up) in $ifc.
e1000e_ping() {
	local f0 i=0 t st=1
	nic=$(pci_devices 0x8086:0x10d3 | head -n1)
	f0=$(fault_seq)
	modprobe e1000e 2>/dev/null
	while ! ls /sys/bus/pci/devices/$nic/net 2>/dev/null | grep -q . && [ $i -lt 100 ]; do
		usleep 100000
		i=$((i + 1))
	done
	ifc=$(ls /sys/bus/pci/devices/$nic/net 2>/dev/null | head -n1)
	t=$(group_type $nic)
	diag "e1000e $nic: interface '$ifc', group type $t"
	if [ -n "$ifc" ] && [ "$t" = "$1" ]; then
		ping_gateway $ifc 10.0.3 50
		st=$?
	fi
	[ "$(fault_seq)" = "$f0" ] || { diag "faults during e1000e traffic: $f0 -> $(fault_seq)"; st=1; }
	return $st
}

# Fails (and prints them) if the kernel has warned, oopsed or leaked.
check_no_splats() {
	s=$(splats)
	[ -z "$s" ] || diag "$s"
	result "no_kernel_warnings_$1" $([ -z "$s" ]; echo $?)
}

# --- DMA with QEMU's edu device (BAR0: 0x80 src, 0x88 dst, 0x90 count,
# 0x98 command; its 4 KiB buffer is at device address 0x40000) ---
EDU=0000:00:10.0
EDU_BUF=0x40000
# RAM the guest kernel reserved for these tests (memmap=1M$0x7000000 on the
# command line), below edu's 28-bit DMA mask.
SCRATCH=0x7000000

edu_bar() { printf '0x%x' $(($(head -n1 /sys/bus/pci/devices/$EDU/resource | cut -d' ' -f1))); }

# Enable memory decoding and bus mastering in the command register.
pci_enable_master() {
	printf '\006\000' | dd of=/sys/bus/pci/devices/$1/config bs=1 seek=4 count=2 conv=notrunc 2>/dev/null
}

# edu_dma SRC DST LEN TO_RAM: one DMA; returns when the device is done.
edu_dma() {
	local bar n
	bar=$(edu_bar)
	devmem $((bar + 0x80)) 64 $1
	devmem $((bar + 0x88)) 64 $2
	devmem $((bar + 0x90)) 64 $3
	if [ "$4" = 1 ]; then devmem $((bar + 0x98)) 64 3; else devmem $((bar + 0x98)) 64 1; fi
	n=0
	while [ $(($(devmem $((bar + 0x98)) 64) & 1)) = 1 ]; do
		n=$((n + 1))
		[ $n -gt 2000 ] && { diag "edu DMA did not finish"; return 1; }
		usleep 1000
	done
}

# fill ADDR WORDS VALUE: write 32-bit words (VALUE + index) to RAM.
fill() {
	local i=0
	while [ $i -lt $2 ]; do devmem $(($1 + 4 * i)) 32 $(($3 + i)); i=$((i + 1)); done
}

# same ADDR WORDS VALUE: whether RAM holds what fill wrote.
same() {
	local i=0
	while [ $i -lt $2 ]; do
		[ $(($(devmem $(($1 + 4 * i)) 32))) = $((($3 + i) & 0xffffffff)) ] || return 1
		i=$((i + 1))
	done
}

# Faults rust_vtd has reported for requester $1 (bus:dev.fn, e.g. 00:10.0).
fault_lines() { dmesg | grep -c "rust_vtd: dmar[0-9]*: DMA write fault: source $1 .*reason 0x02: context entry not present"; }

# fault_lines_reason SOURCE REASON: faults of SOURCE logged with REASON.
fault_lines_reason() { dmesg | grep -c "rust_vtd: dmar[0-9]*: DMA [a-z]* fault: source $1 .*reason $2:"; }

# fault_overflows: how often rust_vtd has found its fault records overflowed.
fault_overflows() { dmesg | grep -c 'fault recording overflowed'; }

# rust_vtd's fault record log of dmar0 (debugfs): one fault a line,
# "SEQ SOURCE ADDRESS REASON TYPE", the last 2048, not rate-limited like
# the kernel log's fault messages.  (QEMU has one unit.)
FAULT_LOG=/sys/kernel/debug/iommu/intel/dmar0/fault_log

# fault_seq: the sequence number of the last fault recorded (0 if none).
fault_seq() { awk '{ n = $1 } END { print n + 0 }' $FAULT_LOG 2>/dev/null || echo 0; }

# faults_at SOURCE ADDRESS SINCE: the faults of SOURCE (bus:dev.fn) at
# page ADDRESS recorded after sequence number SINCE.
faults_at() {
	awk -v s=$1 -v a=$(printf '%#x' $(($2))) -v n=$3 '$1 > n && $2 == s && $3 == a { c++ }
		END { print c + 0 }' $FAULT_LOG
}

# wait_faults_at SOURCE ADDRESS SINCE COUNT: wait (up to 3 s) until there
# are COUNT such faults; prints how many there are.
wait_faults_at() {
	local i=0
	while [ $(faults_at $1 $2 $3) -lt $4 ] && [ $i -lt 30 ]; do
		usleep 100000
		i=$((i + 1))
	done
	faults_at $1 $2 $3
}

# The IOMMU page-table memory in use (SecPageTables), in KiB.
sec_pagetables_kb() { awk '/^SecPageTables:/ { print $2 }' /proc/meminfo; }

# wait_fault_reason SOURCE REASON COUNT: wait (up to 3 s) for more than COUNT.
wait_fault_reason() {
	local n=0
	while [ "$(fault_lines_reason $1 $2)" -le "$3" ]; do
		n=$((n + 1))
		[ $n -gt 30 ] && return 1
		usleep 100000
	done
}

# wait_fault SOURCE COUNT: wait (up to 3 s) until more than COUNT are reported.
wait_fault() {
	local n=0
	while [ "$(fault_lines $1)" -le "$2" ]; do
		n=$((n + 1))
		[ $n -gt 30 ] && return 1
		usleep 100000
	done
}

units_unbind() {
	for u in /sys/bus/platform/drivers/rust_vtd/rust_vtd.*; do
		[ -e "$u" ] && echo "${u##*/}" > /sys/bus/platform/drivers/rust_vtd/unbind
	done
}
