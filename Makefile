# SPDX-License-Identifier: GPL-2.0
#
# rust_vtd: an Intel VT-d DMA-remapping driver in Rust.  Everything runs
# through tools/testing/rust_vtd/rvtd, which builds a toolchain sysroot,
# the patched kernel and a guest image under ~/.cache/rust-vtd and boots
# the guest in QEMU.  See README.md.
#
# (The Kbuild file beside this one is for out-of-tree module builds; a
# kernel `make M=...` reads it, not this file.)

RVTD := tools/testing/rust_vtd/rvtd

.PHONY: run check shell kernel baseline kdump kdump-compare vfio-compare bench profile image clean distclean help

run:		## build everything, boot, load rust_vtd, show what it found
	@$(RVTD) run

check:		## build everything and run all tests (TAP, "N passed, N failed")
	@$(RVTD) check

shell:		## boot the guest with a shell (IOMMU=<mode>, KARGS=<kernel args>)
	@$(RVTD) shell rust $(KARGS)

kernel:		## build the rust kernel and modules only
	@$(RVTD) kernel rust

baseline:	## build the baseline kernel (the C VT-d driver) and its image
	@$(RVTD) kernel baseline && $(RVTD) image baseline

kdump:		## a crash with translation on, and the capture kernel taking over
	@ONLY='kdump-[0-9]+' KDUMP_CYCLES=1 $(RVTD) check

kdump-compare:	## the kdump plan on rust_vtd and on the C driver, side by side
	@$(RVTD) kdump-compare

vfio-compare:	## upstream VFIO and iommufd selftests on rust_vtd and on the C driver
	@$(RVTD) vfio-compare

bench:		## rust_vtd against the C driver, same VM, alternating (BENCH_REPS=5)
	@$(RVTD) bench

profile:	## guest instructions per DMA map/unmap pair by function, both drivers
	@$(RVTD) profile

clean:		## remove test logs
	rm -rf logs

distclean: clean	## also remove the cache (sysroot, kernel source and builds)
	rm -rf $${RUST_VTD_CACHE:-$$HOME/.cache/rust-vtd}

help:
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## */\t/'
