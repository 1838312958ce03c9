// SPDX-License-Identifier: GPL-2.0

//! Memory for tables that IOMMU hardware reads: root, context and page tables.
//!
//! C header: [`include/linux/io.h`](srctree/include/linux/io.h)

use crate::{
    alloc::{flags::__GFP_ZERO, Flags},
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

/// A 4 KiB table of 64-bit words that hardware reads, as it lies in memory.
///
/// Words are read and written atomically, so that the hardware, which walks the table while
/// software updates it, never sees a torn word. Entries wider than 64 bits are written one word
/// at a time, in the order the hardware's format requires.
#[repr(C, align(4096))]
pub struct Table([AtomicU64; TABLE_WORDS]);

impl Table {
    /// The table's physical address.
    pub fn phys(&self) -> PhysAddr {
        let p: *const Self = self;
        // SAFETY: Tables only exist in `kmalloc()` memory (see [`TablePage`]), which is in the
        // kernel's linear map, where `virt_to_phys()` is valid.
        unsafe { bindings::virt_to_phys(p.cast_mut().cast()) }
    }

    /// Reads word `index`.
    pub fn read(&self, index: usize) -> u64 {
        self.0[index].load(Ordering::Acquire)
    }

    /// Writes word `index`. Writes are ordered: hardware that sees this one sees earlier ones.
    pub fn write(&self, index: usize, value: u64) {
        self.0[index].store(value, Ordering::Release)
    }

    /// Replaces word `index` with `new` if it still holds `current`; returns the value it held
    /// otherwise. Lets concurrent writers install entries without a lock.
    pub fn compare_exchange(&self, index: usize, current: u64, new: u64) -> Result<(), u64> {
        self.0[index]
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    /// Writes back `count` words from `index` from the CPU caches to memory, for hardware that
    /// does not snoop them (VT-d: ECAP.C clear).
    pub fn flush(&self, index: usize, count: usize) {
        let words = &self.0[index..index + count];
        // SAFETY: The range lies within the table, which is mapped; `clflush_cache_range()`
        // only writes cache lines back.
        unsafe {
            bindings::clflush_cache_range(
                words.as_ptr().cast_mut().cast(),
                (count * core::mem::size_of::<u64>()) as u32,
            )
        };
    }

    /// The table at physical address `phys`.
    ///
    /// # Safety
    ///
    /// `phys` must be the address of a [`TablePage`] leaked with [`TablePage::into_phys`] that
    /// is not reclaimed (with [`TablePage::from_phys`]) while the returned reference lives.
    pub unsafe fn from_phys<'a>(phys: PhysAddr) -> &'a Self {
        // SAFETY: Per the safety requirements `phys` is a live table in the linear map.
        unsafe { &*bindings::phys_to_virt(phys).cast::<Self>() }
    }
}

/// A zeroed, 4 KiB-aligned page of 64-bit words whose physical address can be handed to
/// hardware: a [`Table`] that is freed when dropped.
///
/// # Examples
///
/// ```
/// use kernel::iommu::pages::{Table, TablePage};
///
/// let page = TablePage::new()?;
/// assert_eq!(page.phys() % 4096, 0);
/// assert_eq!(page.read(7), 0);
/// page.write(7, 0x1234_5001);
/// assert_eq!(page.read(7), 0x1234_5001);
/// assert_eq!(page.compare_exchange(7, 0, 1), Err(0x1234_5001));
/// page.flush(7, 1);
///
/// // Handed over to a table walker that only knows physical addresses...
/// let phys = page.into_phys();
/// // SAFETY: `phys` was just leaked and is not reclaimed before the reference's last use.
/// assert_eq!(unsafe { Table::from_phys(phys) }.read(7), 0x1234_5001);
/// // ... and taken back.
/// // SAFETY: `phys` came from `into_phys()` and nothing refers to it any more.
/// drop(unsafe { TablePage::from_phys(phys) });
/// # Ok::<(), Error>(())
/// ```
pub struct TablePage(KBox<Table>);

impl TablePage {
    /// Allocates a zeroed table page.
    pub fn new() -> Result<Self> {
        Self::new_with(GFP_KERNEL)
    }

    /// Allocates a zeroed table page with allocation flags `flags` (for example `GFP_ATOMIC`
    /// where the caller cannot sleep).
    pub fn new_with(flags: Flags) -> Result<Self> {
        // `kmalloc()` of a power-of-two size is aligned to that size, which the allocator is
        // asked for through `Table`'s alignment.
        let page = KBox::<Table>::new_uninit(flags | __GFP_ZERO)?;
        // SAFETY: The memory is zeroed, and all zeroes is a valid `[AtomicU64; _]`.
        Ok(Self(unsafe { page.assume_init() }))
    }

    /// Gives up ownership and returns the page's physical address, for example to link it into
    /// a table tree that software walks by physical address. [`TablePage::from_phys`] takes it
    /// back; until then the page is leaked.
    pub fn into_phys(self) -> PhysAddr {
        let phys = self.0.phys();
        let _ = KBox::into_raw(self.0);
        phys
    }

    /// Takes back the page at `phys`.
    ///
    /// # Safety
    ///
    /// `phys` must come from [`TablePage::into_phys`], be taken back only once, and no
    /// reference from [`Table::from_phys`] to it may be used afterwards.
    pub unsafe fn from_phys(phys: PhysAddr) -> Self {
        // SAFETY: Per the safety requirements `phys` is the address of a leaked
        // `KBox<Table>`, whose linear-map address `phys_to_virt()` returns.
        Self(unsafe { KBox::from_raw(bindings::phys_to_virt(phys).cast::<Table>()) })
    }
}

impl core::ops::Deref for TablePage {
    type Target = Table;

    fn deref(&self) -> &Table {
        &self.0
    }
}
