// SPDX-License-Identifier: GPL-2.0

//! Memory for tables that IOMMU hardware reads: root, context and page tables.
//!
//! Table pages come from the IOMMU core's page allocator, which accounts them as
//! "iommu-pagetables" (`SecPageTables` in `/proc/meminfo`) and lets a page table give removed
//! tables to the core, to be freed only after the IOTLB flush (see
//! [`IotlbGather::frees_tables`](super::paging::IotlbGather::frees_tables)).
//!
//! C header: [`drivers/iommu/iommu-pages.h`](srctree/drivers/iommu/iommu-pages.h)

use crate::{
    alloc::Flags,
    bindings,
    device::Device,
    error::to_result,
    io::PhysAddr,
    page::PAGE_SIZE,
    prelude::*,
    sync::aref::ARef, //
};
use core::{
    ptr::NonNull,
    sync::atomic::{
        AtomicU64,
        Ordering, //
    },
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
        // SAFETY: Tables only exist in pages of the page allocator (see [`TablePage`]), which
        // are in the kernel's linear map, where `virt_to_phys()` is valid.
        unsafe { bindings::virt_to_phys(p.cast_mut().cast()) }
    }

    /// Reads word `index`.
    #[inline]
    pub fn read(&self, index: usize) -> u64 {
        self.0[index].load(Ordering::Acquire)
    }

    /// Writes word `index`. Writes are ordered: hardware that sees this one sees earlier ones.
    #[inline]
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

    /// Sets `bits` in word `index`, atomically with respect to other writers.
    pub fn set_bits(&self, index: usize, bits: u64) {
        self.0[index].fetch_or(bits, Ordering::AcqRel);
    }

    /// The table at physical address `phys`.
    ///
    /// # Safety
    ///
    /// `phys` must be the address of a table page (a [`TablePage`], or a table of a
    /// [`pt::Table`](super::pt::Table)) that is not freed while the returned reference lives.
    pub unsafe fn from_phys<'a>(phys: PhysAddr) -> &'a Self {
        // SAFETY: Per the safety requirements `phys` is a live table in the linear map.
        unsafe { &*bindings::phys_to_virt(phys).cast::<Self>() }
    }
}

/// How an IOMMU reads the tables it walks.
#[derive(Clone)]
pub enum Walker {
    /// Through the CPU caches (its walks snoop them): what the CPU wrote is what it reads.
    Coherent,
    /// From memory: tables are written back from the CPU caches when they are made and after
    /// each change, through the core's `iommu_pages_*_incoherent()` helpers, for this device
    /// (the IOMMU's own; the DMA API flushes for it on architectures that need the DMA API for
    /// that).
    Incoherent(ARef<Device>),
}

/// A zeroed, 4 KiB-aligned page of 64-bit words whose physical address can be handed to
/// hardware: a [`Table`] that is freed when dropped.
///
/// # Examples
///
/// ```
/// use kernel::iommu::pages::{Table, TablePage, Walker};
///
/// let page = TablePage::new(&Walker::Coherent)?;
/// assert_eq!(page.phys() % 4096, 0);
/// assert_eq!(page.read(7), 0);
/// page.write(7, 0x1234_5001);
/// assert_eq!(page.read(7), 0x1234_5001);
/// assert_eq!(page.compare_exchange(7, 0, 1), Err(0x1234_5001));
/// // Nothing to write back for a coherent walker.
/// page.flush(7, 1);
/// // SAFETY: `page` lives while the reference does.
/// assert_eq!(unsafe { Table::from_phys(page.phys()) }.read(7), 0x1234_5001);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `page` is a page from `iommu_alloc_pages_sz()` that this value owns; it was made incoherent
/// (`iommu_pages_start_incoherent()`) for the device of `walker` if `walker` is
/// [`Walker::Incoherent`].
pub struct TablePage {
    page: NonNull<Table>,
    walker: Walker,
}

// SAFETY: A table page is plain memory with atomic words; it can be freed from any thread.
unsafe impl Send for TablePage {}

// SAFETY: All access to the words is atomic.
unsafe impl Sync for TablePage {}

impl TablePage {
    /// Allocates a zeroed table page that `walker` can read.
    pub fn new(walker: &Walker) -> Result<Self> {
        Self::new_with(walker, GFP_KERNEL)
    }

    /// Allocates a zeroed table page that `walker` can read, with allocation flags `flags`
    /// (for example `GFP_ATOMIC` where the caller cannot sleep).
    pub fn new_with(walker: &Walker, flags: Flags) -> Result<Self> {
        const _: () = assert!(core::mem::size_of::<Table>() == PAGE_SIZE);
        // SAFETY: Plain page allocation; the page comes back zeroed (`__GFP_ZERO` is added by
        // the allocator) and page-aligned.
        let p = unsafe { bindings::iommu_alloc_pages_sz(flags.as_raw(), PAGE_SIZE) };
        // INVARIANT: A non-null result is a page of ours; all zeroes is a valid
        // `[AtomicU64; _]`. It is coherent until started below.
        let mut page = Self {
            page: NonNull::new(p.cast()).ok_or(ENOMEM)?,
            walker: Walker::Coherent,
        };
        if let Walker::Incoherent(dev) = walker {
            // SAFETY: The page is ours, from the core's allocator, and not yet incoherent;
            // `dev` is a live device.
            to_result(unsafe { bindings::iommu_pages_start_incoherent(p, dev.as_raw()) })?;
            // INVARIANT: Started incoherent for `dev` (written back whole).
            page.walker = walker.clone();
        }
        Ok(page)
    }

    /// Writes `count` words from `index` back from the CPU caches to memory where the walker
    /// reads from memory; nothing for a coherent one.
    pub fn flush(&self, index: usize, count: usize) {
        assert!(index + count <= TABLE_WORDS);
        if let Walker::Incoherent(dev) = &self.walker {
            // SAFETY: The range lies within the page, which is ours and incoherent for `dev`
            // (type invariant).
            unsafe {
                bindings::iommu_pages_flush_incoherent(
                    dev.as_raw(),
                    self.page.as_ptr().cast(),
                    index * core::mem::size_of::<u64>(),
                    count * core::mem::size_of::<u64>(),
                )
            };
        }
    }
}

impl Drop for TablePage {
    fn drop(&mut self) {
        let p = self.page.as_ptr().cast();
        // SAFETY: By the type invariant the page is ours, from `iommu_alloc_pages_sz()`, and
        // incoherent for the walker's device exactly if the walker is incoherent.
        unsafe {
            match &self.walker {
                Walker::Coherent => bindings::iommu_free_pages(p),
                Walker::Incoherent(dev) => bindings::iommu_pages_free_incoherent(p, dev.as_raw()),
            }
        }
    }
}

impl core::ops::Deref for TablePage {
    type Target = Table;

    #[inline]
    fn deref(&self) -> &Table {
        // SAFETY: By the type invariant the page is live while `self` is.
        unsafe { self.page.as_ref() }
    }
}

/// Makes `head` an empty list (`INIT_LIST_HEAD()`).
///
/// # Safety
///
/// `head` must be valid for writes.
pub(crate) unsafe fn init_list_head(head: *mut bindings::list_head) {
    // SAFETY: Per the safety requirements `head` is valid for writes.
    unsafe {
        (*head).next = head;
        (*head).prev = head;
    }
}
