// SPDX-License-Identifier: GPL-2.0

//! Memory for tables that IOMMU hardware reads: root, context and page tables.
//!
//! Table pages come from the IOMMU core's page allocator, which accounts them as
//! "iommu-pagetables" (`SecPageTables` in `/proc/meminfo`) and lets a page table give removed
//! tables to the core, to be freed only after the IOTLB flush (see
//! [`IotlbGather::free_after_flush`](super::paging::IotlbGather::free_after_flush)).
//!
//! C header: [`drivers/iommu/iommu-pages.h`](srctree/drivers/iommu/iommu-pages.h)

use crate::{
    alloc::Flags,
    bindings,
    io::PhysAddr,
    page::PAGE_SIZE,
    prelude::*,
    types::Opaque, //
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

    /// Sets `bits` in word `index`, atomically with respect to other writers.
    pub fn set_bits(&self, index: usize, bits: u64) {
        self.0[index].fetch_or(bits, Ordering::AcqRel);
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

    /// Writes the whole table back from the CPU caches to memory: a new table, before it is
    /// linked where hardware that does not snoop them can reach it.
    pub fn flush_all(&self) {
        self.flush(0, TABLE_WORDS)
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
///
/// # Invariants
///
/// The pointer is a page from `iommu_alloc_pages_sz()` that this value owns.
pub struct TablePage(NonNull<Table>);

// SAFETY: A table page is plain memory with atomic words; it can be freed from any thread.
unsafe impl Send for TablePage {}

// SAFETY: All access to the words is atomic.
unsafe impl Sync for TablePage {}

impl TablePage {
    /// Allocates a zeroed table page.
    pub fn new() -> Result<Self> {
        Self::new_with(GFP_KERNEL)
    }

    /// Allocates a zeroed table page with allocation flags `flags` (for example `GFP_ATOMIC`
    /// where the caller cannot sleep).
    pub fn new_with(flags: Flags) -> Result<Self> {
        const _: () = assert!(core::mem::size_of::<Table>() == PAGE_SIZE);
        // SAFETY: Plain page allocation; the page comes back zeroed (`__GFP_ZERO` is added by
        // the allocator) and page-aligned.
        let p = unsafe { bindings::iommu_alloc_pages_sz(flags.as_raw(), PAGE_SIZE) };
        // INVARIANT: A non-null result is a page of ours; all zeroes is a valid
        // `[AtomicU64; _]`.
        Ok(Self(NonNull::new(p.cast()).ok_or(ENOMEM)?))
    }

    /// Gives up ownership and returns the page's physical address, for example to link it into
    /// a table tree that software walks by physical address. [`TablePage::from_phys`] takes it
    /// back; until then the page is leaked.
    pub fn into_phys(self) -> PhysAddr {
        let phys = self.phys();
        core::mem::forget(self);
        phys
    }

    /// Takes back the page at `phys`.
    ///
    /// # Safety
    ///
    /// `phys` must come from [`TablePage::into_phys`], be taken back only once, and no
    /// reference from [`Table::from_phys`] to it may be used afterwards.
    pub unsafe fn from_phys(phys: PhysAddr) -> Self {
        // SAFETY: Per the safety requirements `phys` is a page leaked by `into_phys()`, in the
        // linear map, where `phys_to_virt()` gives its address.
        let p = unsafe { bindings::phys_to_virt(phys) };
        // INVARIANT: Ownership of the leaked page returns to the new value.
        // SAFETY: A linear-map address is not null.
        Self(unsafe { NonNull::new_unchecked(p.cast()) })
    }

    /// Gives up ownership and returns the page's virtual address, for the core's page lists.
    pub(crate) fn into_virt(self) -> *mut crate::ffi::c_void {
        let p = self.0.as_ptr().cast();
        core::mem::forget(self);
        p
    }
}

impl Drop for TablePage {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the page is ours and came from `iommu_alloc_pages_sz()`.
        unsafe { bindings::iommu_free_pages(self.0.as_ptr().cast()) };
    }
}

impl core::ops::Deref for TablePage {
    type Target = Table;

    fn deref(&self) -> &Table {
        // SAFETY: By the type invariant the page is live while `self` is.
        unsafe { self.0.as_ref() }
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

/// Table pages a page table has unlinked and that wait for an IOTLB flush to cover them before
/// they may be freed, linked through their own page descriptors (`struct iommu_pages_list`):
/// adding one never allocates. What is left is freed on drop.
///
/// # Examples
///
/// ```
/// use kernel::iommu::pages::{PendingTables, TablePage};
/// use pin_init::stack_pin_init;
///
/// stack_pin_init!(let pending = PendingTables::new());
/// stack_pin_init!(let flushing = PendingTables::new());
/// pending.as_mut().add(TablePage::new()?);
/// pending.as_mut().add(TablePage::new()?);
/// // A flush starts: it covers what was unlinked before it.
/// pending.as_mut().move_to(flushing.as_mut());
/// assert_eq!((pending.len(), flushing.len()), (0, 2));
/// // ... and is confirmed: the pages are freed.
/// flushing.as_mut().free();
/// assert_eq!(flushing.len(), 0);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `list` is an initialised list of `count` pages from the core's page allocator that this value
/// owns.
#[pin_data(PinnedDrop)]
pub struct PendingTables {
    #[pin]
    list: Opaque<bindings::iommu_pages_list>,
    count: usize,
}

// SAFETY: The pages are plain memory that any thread may free; the list is only reached through
// `&mut self`.
unsafe impl Send for PendingTables {}

impl PendingTables {
    /// An empty list.
    pub fn new() -> impl PinInit<Self> {
        // INVARIANT: The list head is initialised empty in place.
        pin_init!(Self {
            // SAFETY: `p` is valid for writes.
            list <- Opaque::ffi_init(|p: *mut bindings::iommu_pages_list| unsafe {
                init_list_head(&raw mut (*p).pages)
            }),
            count: 0,
        })
    }

    /// The number of pages waiting.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no page is waiting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `page`, unlinked from every table, to the list.
    pub fn add(self: Pin<&mut Self>, page: TablePage) {
        // SAFETY: `list` is not moved out of; only `count` changes.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: By the type invariant the list is initialised; the page came from the core's
        // page allocator and the list owns it from now on.
        unsafe { bindings::iommu_pages_list_add(this.list.get(), page.into_virt()) };
        this.count += 1;
    }

    /// Moves every page to `to`.
    pub fn move_to(self: Pin<&mut Self>, to: Pin<&mut Self>) {
        // SAFETY: Neither list head is moved out of.
        let (this, to) = unsafe { (self.get_unchecked_mut(), to.get_unchecked_mut()) };
        // SAFETY: Both lists are initialised (type invariant); `this` is emptied right after.
        unsafe {
            bindings::iommu_pages_list_splice(this.list.get(), to.list.get());
            init_list_head(&raw mut (*this.list.get()).pages);
        }
        to.count += this.count;
        this.count = 0;
    }

    /// Frees every page: a flush that covers them has been confirmed.
    pub fn free(self: Pin<&mut Self>) {
        // SAFETY: The list head is not moved out of.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: By the type invariant the list holds pages of the core's allocator that we own;
        // it is emptied after.
        unsafe {
            bindings::iommu_put_pages_list(this.list.get());
            init_list_head(&raw mut (*this.list.get()).pages);
        }
        this.count = 0;
    }

    /// Keeps every page for good (a flush that should have covered them was not confirmed: the
    /// hardware may still walk them), and empties the list. Returns how many there were.
    pub fn leak(self: Pin<&mut Self>) -> usize {
        // SAFETY: The list head is not moved out of.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: The pages stay allocated, referenced by no list; the head is reinitialised.
        unsafe { init_list_head(&raw mut (*this.list.get()).pages) };
        core::mem::take(&mut this.count)
    }
}

#[pinned_drop]
impl PinnedDrop for PendingTables {
    fn drop(self: Pin<&mut Self>) {
        self.free();
    }
}
