// SPDX-License-Identifier: GPL-2.0

//! Crash dumps (kdump): what a capture kernel knows of the kernel that crashed.
//!
//! A kdump capture kernel boots, after another kernel panicked, in memory that kernel reserved
//! for it (`crashkernel=`). The rest of the machine's memory is still the crashed kernel's, and
//! devices may still be set up by it: an IOMMU, for example, may still translate DMA through
//! tables in that memory. A driver that takes such state over reads the old memory through
//! [`read_oldmem`], which refuses anything outside it.
//!
//! C header: [`include/linux/crash_dump.h`](srctree/include/linux/crash_dump.h)

use crate::{bindings, error::code::*, io::PhysAddr, prelude::*};

/// Whether this kernel is a kdump capture kernel, booted after another kernel crashed.
#[inline]
pub fn is_kdump_kernel() -> bool {
    // SAFETY: `is_kdump_kernel()` only reads a variable that is set once, at early boot.
    unsafe { bindings::is_kdump_kernel() }
}

/// Whether the `len` bytes at `phys` are memory of the crashed kernel: within one of the ranges
/// `/proc/vmcore` dumps (the `PT_LOAD` segments of its ELF core header). Always `false` outside
/// a kdump kernel, and for an empty or wrapping range.
pub fn is_oldmem(phys: PhysAddr, len: usize) -> bool {
    // SAFETY: The function only reads the vmcore list, under its lock; any arguments are valid.
    unsafe { bindings::vmcore_range_is_oldmem(phys as _, len as _) }
}

/// Copies `buf.len()` bytes of the crashed kernel's memory at `phys` into `buf`.
///
/// Fails with [`EINVAL`] unless the whole range is memory of the crashed kernel
/// ([`is_oldmem`]), and with [`ENOMEM`] if it cannot be mapped. The memory is mapped write-back
/// cacheable, as the crashed kernel used it.
///
/// # Examples
///
/// ```
/// use kernel::crash_dump::{is_kdump_kernel, read_oldmem};
///
/// let mut word = [0u8; 8];
/// // Outside a kdump kernel there is no old memory to read.
/// if !is_kdump_kernel() {
///     assert_eq!(read_oldmem(0x10_0000, &mut word), Err(EINVAL));
/// }
/// ```
pub fn read_oldmem(phys: PhysAddr, buf: &mut [u8]) -> Result {
    if buf.is_empty() || !is_oldmem(phys, buf.len()) {
        return Err(EINVAL);
    }
    // SAFETY: Mapping a range of physical memory has no other precondition; the range is memory
    // of the crashed kernel, which nothing in this kernel allocates or maps otherwise.
    let p = unsafe {
        bindings::memremap(
            phys as bindings::resource_size_t,
            buf.len(),
            bindings::MEMREMAP_WB as _,
        )
    };
    if p.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `p` maps `buf.len()` readable bytes, and `buf` is as long; the two do not overlap,
    // as `buf` is this kernel's memory and the mapping is of the crashed kernel's.
    unsafe { core::ptr::copy_nonoverlapping(p.cast::<u8>(), buf.as_mut_ptr(), buf.len()) };
    // SAFETY: `p` came from `memremap()` above and is unmapped once.
    unsafe { bindings::memunmap(p) };
    Ok(())
}
