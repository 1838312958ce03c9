#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# run.sh: (inside the sysroot) boot the guest, load rust_vtd, show what it
# found, unload, power off.  IOMMU=<mode> picks the intel-iommu mode.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
mode=${IOMMU:-legacy}
log "booting linux $(cat "$CACHE/build-rust/kernelrelease") under $(pick_accel), intel-iommu mode '$mode'"
vm_boot run rust "$mode" run 300 > "$LOGDIR/run.qemu.log" 2>&1 || true
grep -v '^ok \|^# rvtd' "$LOGDIR/run.results.log" || die "the guest printed nothing; see $LOGDIR/run.console.log"
log "serial console log: $LOGDIR/run.console.log"
grep -q '^ok 1 run_completed' "$LOGDIR/run.results.log"
