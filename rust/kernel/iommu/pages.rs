// SPDX-License-Identifier: GPL-2.0

//! Memory for tables that IOMMU hardware reads: root, context and page tables.
//!
//! C header: [`include/linux/io.h`](srctree/include/linux/io.h)

use crate::{
    alloc::flags::__GFP_ZERO,
    bindings,
    io::PhysAddr,
    prelude::*, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};

/// Number of 64-bit words in a table page.
pub const TABLE_WORDS: usize = 512;

#[repr(C, align(4096))]
struct Words([AtomicU64; TABLE_WORDS]);

/// A zeroed, 4 KiB-aligned page of 64-bit words whose physical address can be handed to
/// hardware.
///
/// Words are read and written atomically, so that the hardware, which walks the table while
/// software updates it, never sees a torn word. Entries wider than 64 bits are written one word
/// at a time, in the order the hardware's format requires.
///
/// # Examples
///
/// ```
/// use kernel::iommu::pages::TablePage;
///
/// let page = TablePage::new()?;
/// assert_eq!(page.phys() % 4096, 0);
/// assert_eq!(page.read(7), 0);
/// page.write(7, 0x1234_5001);
/// assert_eq!(page.read(7), 0x1234_5001);
/// page.flush(7, 1);
/// # Ok::<(), Error>(())
/// ```
pub struct TablePage(KBox<Words>);

impl TablePage {
    /// Allocates a zeroed table page.
    pub fn new() -> Result<Self> {
        // `kmalloc()` of a power-of-two size is aligned to that size, which the allocator is
        // asked for through `Words`' alignment.
        let page = KBox::<Words>::new_uninit(GFP_KERNEL | __GFP_ZERO)?;
        // SAFETY: The memory is zeroed, and all zeroes is a valid `[AtomicU64; _]`.
        Ok(Self(unsafe { page.assume_init() }))
    }

    /// The page's physical address.
    pub fn phys(&self) -> PhysAddr {
        let p: *const Words = &*self.0;
        // SAFETY: `p` is a valid kernel (linear map) address: `kmalloc()` memory.
        unsafe { bindings::virt_to_phys(p.cast_mut().cast()) }
    }

    /// Reads word `index`.
    pub fn read(&self, index: usize) -> u64 {
        self.0 .0[index].load(Ordering::Acquire)
    }

    /// Writes word `index`. Writes are ordered: hardware that sees this one sees earlier ones.
    pub fn write(&self, index: usize, value: u64) {
        self.0 .0[index].store(value, Ordering::Release)
    }

    /// Writes back `count` words from `index` from the CPU caches to memory, for hardware that
    /// does not snoop them (VT-d: ECAP.C clear).
    pub fn flush(&self, index: usize, count: usize) {
        let words = &self.0 .0[index..index + count];
        // SAFETY: The range lies within the page, which is mapped; `clflush_cache_range()` only
        // writes cache lines back.
        unsafe {
            bindings::clflush_cache_range(
                words.as_ptr().cast_mut().cast(),
                (count * core::mem::size_of::<u64>()) as u32,
            )
        };
    }
}
