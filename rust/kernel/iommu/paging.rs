// SPDX-License-Identifier: GPL-2.0

//! IOMMU paging domains: address spaces translated through generic_pt page tables.
//!
//! A driver implements [`PagingOps`] for its domain type and returns new domains from
//! [`Ops::domain_alloc_paging_flags`]. A [`PagingDomain`] keeps its mappings in a
//! [`pt::Table`] of the driver's format; the driver attaches devices to it and keeps the
//! hardware's caches in step. The core uses them for the DMA API's default domains
//! (`IOMMU_DOMAIN_DMA`, `IOMMU_DOMAIN_DMA_FQ`) and for iommufd and VFIO
//! (`IOMMU_DOMAIN_UNMANAGED`); it maps and unmaps ranges, and asks for the IOTLB to be
//! synchronised at the points the DMA API's strict or lazy mode requires.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use super::{
    domain::DomainRef,
    ops::{
        device_data,
        Ops, //
    },
    pages::init_list_head,
    pt::{
        self,
        Format,
        Table, //
    },
};
use crate::{
    bindings,
    device::Device,
    io::PhysAddr,
    prelude::*, //
};
use core::{marker::PhantomData, ops::Deref, ptr::NonNull};

/// The access a mapping grants (`IOMMU_READ`, `IOMMU_WRITE`, ...).
///
/// # Examples
///
/// ```
/// use kernel::iommu::paging::Prot;
///
/// let rw = Prot::READ.union(Prot::WRITE);
/// assert!(rw.read() && rw.write() && !rw.cache());
/// assert_eq!(Prot::from_raw(rw.bits()), rw);
/// assert!(!Prot::NONE.read());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Prot(u32);

impl Prot {
    /// No access.
    pub const NONE: Prot = Prot(0);
    /// Devices may read the memory.
    pub const READ: Prot = Prot(bindings::IOMMU_READ);
    /// Devices may write the memory.
    pub const WRITE: Prot = Prot(bindings::IOMMU_WRITE);
    /// DMA must snoop the CPU caches.
    pub const CACHE: Prot = Prot(bindings::IOMMU_CACHE);

    /// Whether devices may read.
    pub fn read(self) -> bool {
        self.0 & Self::READ.0 != 0
    }

    /// Whether devices may write.
    pub fn write(self) -> bool {
        self.0 & Self::WRITE.0 != 0
    }

    /// Whether snooping is required.
    pub fn cache(self) -> bool {
        self.0 & Self::CACHE.0 != 0
    }

    /// The `IOMMU_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Both `self`'s and `other`'s access.
    pub const fn union(self, other: Prot) -> Prot {
        Prot(self.0 | other.0)
    }

    /// The protection from its `IOMMU_*` bits.
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
}

/// The range of IOVAs gathered for an IOTLB flush by one or more unmaps
/// (`struct iommu_iotlb_gather`).
///
/// # Invariants
///
/// `self.0` points to a valid, initialised gather for `'a`.
pub struct IotlbGather<'a>(
    NonNull<bindings::iommu_iotlb_gather>,
    PhantomData<&'a mut ()>,
);

impl IotlbGather<'_> {
    /// Runs `f` with a new, empty gather.
    pub(crate) fn with_new<R>(f: impl FnOnce(&mut IotlbGather<'_>) -> R) -> R {
        // SAFETY: All-zeroes, then the empty range and the empty list below, is an initialised
        // gather (`iommu_iotlb_gather_init()`).
        let mut local: bindings::iommu_iotlb_gather = unsafe { core::mem::zeroed() };
        local.start = usize::MAX;
        // SAFETY: `local` is a live local that does not move from here on.
        unsafe { init_list_head(&raw mut local.freelist.pages) };
        // INVARIANT: `local` is valid and ours until `f` returns.
        let mut g = IotlbGather(NonNull::from(&mut local), PhantomData);
        let r = f(&mut g);
        // Whatever `f` left on the list is freed: a gather nobody flushes covers no table
        // hardware walks.
        g.release_tables();
        r
    }

    /// The core's gather.
    pub(crate) fn as_raw(&mut self) -> *mut bindings::iommu_iotlb_gather {
        self.0.as_ptr()
    }

    /// The gathered range, first and last byte, or `None` if it is empty.
    #[inline]
    pub fn range(&self) -> Option<(usize, usize)> {
        // SAFETY: By the type invariant the gather is valid.
        let g = unsafe { self.0.as_ref() };
        (g.start <= g.end).then_some((g.start, g.end))
    }

    /// Whether the core will flush the whole IOTLB later instead (lazy mode's flush queue):
    /// the unmap need not flush this range.
    #[inline]
    pub fn queued(&self) -> bool {
        // SAFETY: By the type invariant the gather is valid.
        unsafe { self.0.as_ref() }.queued
    }

    /// Whether tables an unmap emptied wait in the gather for its flush: the flush must then
    /// cover the paging-structure caches as well, not only the leaves.
    #[inline]
    pub fn frees_tables(&self) -> bool {
        // SAFETY: By the type invariant the gather is valid.
        let g = unsafe { self.0.as_ref() };
        !core::ptr::eq(g.freelist.pages.next, &g.freelist.pages)
    }

    /// Frees the tables waiting in the gather at once, for a table no hardware walks; returns
    /// how many there were.
    pub(crate) fn free_tables_now(&mut self) -> usize {
        let n = self.count_tables();
        self.release_tables();
        n
    }

    fn count_tables(&self) -> usize {
        // SAFETY: By the type invariant the gather, and so its list, is valid.
        unsafe {
            let list = &raw const (*self.0.as_ptr()).freelist.pages;
            let mut n = 0;
            let mut p = (*list).next.cast_const();
            while p != list {
                n += 1;
                p = (*p).next;
            }
            n
        }
    }

    /// Keeps the tables waiting in the gather for good: their flush was not confirmed, so the
    /// hardware may still walk them. Returns how many there were.
    fn leak_tables(&mut self) -> usize {
        let n = self.count_tables();
        // SAFETY: By the type invariant the gather is valid and ours. The pages stay
        // allocated, referenced by no list; the list is reinitialised empty.
        unsafe { init_list_head(&raw mut (*self.0.as_ptr()).freelist.pages) };
        n
    }

    /// Frees the tables waiting in the gather. Only after the flush!
    fn release_tables(&mut self) {
        // SAFETY: By the type invariant the gather is valid and ours. The pages on the list
        // are tables an unmap emptied, and the caller has flushed; the list is reinitialised
        // empty afterwards.
        unsafe {
            let list = &raw mut (*self.0.as_ptr()).freelist;
            bindings::iommu_put_pages_list(list);
            init_list_head(&raw mut (*list).pages);
        }
    }
}

/// A paging domain's operations, which the core calls on an allocated [`PagingDomain`].
///
/// Mapping and unmapping are the domain's [`pt::Table`]'s; the driver attaches devices and
/// keeps the hardware's caches in step. The IOTLB operations may run concurrently with each
/// other and with maps and unmaps, and in atomic context (the DMA API unmaps from interrupt
/// handlers).
pub trait PagingOps: Sized + Send + Sync + 'static {
    /// The driver these domains belong to.
    type Iommu: Ops;

    /// The page-table format of the domains.
    type Format: Format;

    /// This type's operations table: a `static` of the driver's, made by
    /// [`DomainOps::new`].
    const OPS: &'static DomainOps<Self>;

    /// Attaches `dev`, described by `data`, to `domain`, replacing `old` (`None` on its first
    /// attach).
    fn attach_dev(
        domain: &PagingDomain<Self>,
        dev: &Device,
        data: &<Self::Iommu as Ops>::DeviceData,
        old: Option<DomainRef<'_>>,
    ) -> Result;

    /// Invalidates every translation of the domain cached by the hardware, paging-structure
    /// caches included (lazy mode's flush queue). The tables lazy unmaps emptied wait in the DMA
    /// API's flush queue with their IOVAs; it frees them after a flush that returns `Ok`, and
    /// keeps them, and the IOVAs, until a later flush returns `Ok` when this fails (the failure
    /// is reported to the core through `iommu_flush_unconfirmed()`).
    fn flush_iotlb_all(&self) -> Result;

    /// Invalidates the translations of the range `gather` holds, and the paging-structure
    /// caches as well if [tables wait in it](IotlbGather::frees_tables). Those tables are freed
    /// when this returns `Ok`. On error the invalidation is taken not to have
    /// happened: the tables are kept (leaked, with a warning, and counted through
    /// [`PagingOps::tables_kept`]), since the hardware may still walk them, and the DMA API
    /// never reuses the IOVAs of a strict unmap whose flush failed.
    fn iotlb_sync(&self, gather: &IotlbGather<'_>) -> Result;

    /// Called with the number of tables kept because [`PagingOps::iotlb_sync`] failed.
    fn tables_kept(&self, _count: usize) {}

    /// Whether the driver delivers I/O page faults (page requests) for these domains. Without
    /// it, a domain whose owner asks for them (an iommufd fault-capable HWPT: `iopf_handler`
    /// set) is refused at attach with `ENODEV` before [`PagingOps::attach_dev`] is called, as
    /// the C drivers refuse it on a device without PRI, so the device keeps its old domain.
    const IO_PAGE_FAULTS: bool = false;

    /// Makes a range just mapped visible to hardware that caches non-present entries.
    fn iotlb_sync_map(&self, iova: usize, size: usize) -> Result;

    /// Runs `free`, which frees tables unlinked from the domain's table and flushed from the
    /// hardware's caches. A driver that walks tables by physical address outside the core's
    /// calls (a debugfs dump) excludes its walks from this. After a confirmed
    /// [`PagingOps::flush_iotlb_all`], `free` frees nothing: the flush queue frees the tables once
    /// the callback has returned, so this is the barrier that waits out a walk begun before
    /// they were unlinked.
    fn free_tables(&self, free: impl FnOnce()) {
        free()
    }
}

/// The operations table of the paging domains of type `T`, which the core calls.
///
/// A driver declares one `static` per domain type and names it in [`PagingOps::OPS`]: the
/// static's address identifies the type's domains ([`PagingDomain::from_ref`]); the address of a
/// `const` would not, as each use of a constant may have an address of its own.
pub struct DomainOps<T: PagingOps>(bindings::iommu_domain_ops, PhantomData<T>);

// SAFETY: The table only holds function pointers and is never written.
unsafe impl<T: PagingOps> Sync for DomainOps<T> {}

impl<T: PagingOps> DomainOps<T> {
    /// The table that calls into `T`.
    #[expect(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PagingDomain::<T>::OPS, PhantomData)
    }

    fn as_raw(&'static self) -> *const bindings::iommu_domain_ops {
        &self.0
    }
}

/// A paging domain: a generic_pt page table, with the core's `struct iommu_domain` at its start,
/// and the driver's `T`.
///
/// The core maps and unmaps through the table, calling generic_pt's `map_range` and
/// `unmap_range` directly (`is_iommupt`). Tables a strict unmap empties are freed after the
/// [`PagingOps::iotlb_sync`] that covers them, and kept for good if the driver reports that flush
/// failed. In lazy mode they wait in the DMA API's flush queue, which frees them only after a
/// [`PagingOps::flush_iotlb_all`] that the driver confirmed.
///
/// # Examples
///
/// ```ignore
/// #[pin_data]
/// struct MyDomain {
///     #[pin]
///     attached: SpinLockIrq<KVec<Attachment>>,
/// }
///
/// impl PagingOps for MyDomain {
///     type Iommu = MyIommu;
///     type Format = pt::Vtdss;
///     // attach_dev, flush_iotlb_all, iotlb_sync and iotlb_sync_map ...
/// }
///
/// #[vtable]
/// impl Ops for MyIommu {
///     // ...
///     fn domain_alloc_paging_flags(_dev: &Device, data: &MyDevice, flags: u32) -> Result<NewDomain> {
///         if flags != 0 {
///             return Err(EOPNOTSUPP);
///         }
///         let cfg = pt::Config { levels: 4, va_bits: 48, oa_bits: 46, incoherent: None };
///         PagingDomain::alloc(
///             try_pin_init!(MyDomain { attached <- new_spinlock_irq!(KVec::new()) }),
///             &cfg,
///             SZ_4K | SZ_2M,
///         )
///     }
/// }
/// ```
///
/// # Invariants
///
/// `table`'s domain has `ops` pointing to this type's operations table, so the core calls back
/// into `T`; the domain lives in a [`KBox`] from [`PagingDomain::alloc`] until the core frees
/// it.
#[repr(C)]
#[pin_data]
pub struct PagingDomain<T: PagingOps> {
    #[pin]
    table: Table<T::Format>,
    #[pin]
    inner: T,
}

// SAFETY: The core's fields are only written before the domain is published and by the core
// under its own locks; `T` is `Send + Sync`.
unsafe impl<T: PagingOps> Send for PagingDomain<T> {}
// SAFETY: As above.
unsafe impl<T: PagingOps> Sync for PagingDomain<T> {}

/// A newly allocated domain, owned until it is handed to the core.
///
/// # Invariants
///
/// `self.0` is a domain made by [`PagingDomain::alloc`] that nothing else owns.
pub struct NewDomain(NonNull<bindings::iommu_domain>);

impl NewDomain {
    fn into_raw(self) -> *mut bindings::iommu_domain {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
}

impl Drop for NewDomain {
    fn drop(&mut self) {
        let d = self.0.as_ptr();
        // SAFETY: By the type invariant `d` is a valid domain we own, whose `ops->free` frees it.
        unsafe {
            if let Some(free) = (*(*d).ops).free {
                free(d)
            }
        }
    }
}

impl<T: PagingOps> PagingDomain<T> {
    const OPS: bindings::iommu_domain_ops = bindings::iommu_domain_ops {
        attach_dev: Some(Self::attach_dev_cb),
        flush_iotlb_all: Some(Self::flush_iotlb_all_cb),
        iotlb_sync_map: Some(Self::iotlb_sync_map_cb),
        iotlb_sync: Some(Self::iotlb_sync_cb),
        iova_to_phys: Some(Self::iova_to_phys_cb),
        free: Some(Self::free_cb),
        // SAFETY: All-zeroes is a valid `iommu_domain_ops`: every other entry is NULL.
        ..unsafe { core::mem::zeroed() }
    };

    /// Makes a domain around `inner` whose table is built as `cfg` says, mapping the page sizes
    /// of the format that are also in `pgsize_mask`, within the IOVA width `cfg` gives (DMA
    /// outside it is blocked).
    pub fn alloc(
        inner: impl PinInit<T, Error>,
        cfg: &pt::Config,
        pgsize_mask: usize,
    ) -> Result<NewDomain> {
        let b = KBox::try_pin_init(
            try_pin_init!(Self {
                table <- Table::new(cfg, GFP_KERNEL),
                inner <- inner,
            }? Error),
            GFP_KERNEL,
        )?;
        let d = b.table.domain();
        // SAFETY: `d` is the table's domain, initialised by generic_pt and not yet shared.
        let sizes = unsafe {
            (*d).ops = T::OPS.as_raw();
            (*d).pgsize_bitmap &= pgsize_mask;
            (*d).pgsize_bitmap
        };
        if sizes == 0 {
            return Err(EINVAL);
        }
        // SAFETY: The domain is never moved: the box is leaked to the core and only taken
        // back, in place, to be dropped by `free_cb`.
        let p = KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) });
        // INVARIANT: `ops` is this type's table and the domain is a leaked `KBox`.
        // SAFETY: `p` is valid and non-null; its domain is at its start (`repr(C)`, `table`
        // first, the domain first in `Table`).
        Ok(NewDomain(unsafe { NonNull::new_unchecked(p.cast()) }))
    }

    /// The domain's `struct iommu_domain`.
    pub fn as_raw(&self) -> *mut bindings::iommu_domain {
        self.table.domain()
    }

    /// The domain's page table.
    pub fn table(&self) -> &Table<T::Format> {
        &self.table
    }

    /// Whether the domain's owner asked for I/O page faults (an iommufd fault-capable HWPT).
    pub fn wants_page_faults(&self) -> bool {
        // SAFETY: The domain is valid; its owner sets `iopf_handler`, if at all, before it
        // attaches the domain to any device.
        unsafe { (*self.as_raw()).iopf_handler.is_some() }
    }

    /// The `IOMMU_DOMAIN_*` type the core gave the domain.
    pub fn domain_type(&self) -> u32 {
        // SAFETY: The domain is valid; the core sets the type before any callback.
        unsafe { (*self.as_raw()).type_ }
    }

    /// The paging domain behind `domain`, if it is one of this type.
    pub fn from_ref<'a>(domain: DomainRef<'a>) -> Option<&'a Self> {
        let raw = domain.as_raw();
        // SAFETY: `raw` is a valid domain for `'a`.
        let ops = unsafe { (*raw).ops };
        // SAFETY: A domain whose ops are this type's table, a static with an address of its own,
        // is at the start of a `PagingDomain<T>` (type invariant), valid for as long as the
        // domain is.
        core::ptr::eq(ops, T::OPS.as_raw()).then(|| unsafe { Self::from_raw(raw) })
    }

    /// # Safety
    ///
    /// `domain` must be the `struct iommu_domain` of a live `PagingDomain<T>`, valid for `'a`.
    unsafe fn from_raw<'a>(domain: *mut bindings::iommu_domain) -> &'a Self {
        // SAFETY: The domain is at the start of a `repr(C)` `Self`.
        unsafe { &*domain.cast::<Self>() }
    }

    /// # Safety
    ///
    /// Called by the core as `attach_dev` with valid arguments and a device probed by
    /// `T::Iommu`.
    unsafe extern "C" fn attach_dev_cb(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: The core holds a reference to `dev` for the duration of the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by this driver.
        let Some(data) = (unsafe { device_data::<T::Iommu>(dev) }) else {
            return ENODEV.to_errno();
        };
        // SAFETY: `old` is NULL or the device's current domain, valid during the call.
        let old = unsafe { DomainRef::from_raw(old) };
        // SAFETY: The core only calls this table's entries for domains of this type.
        let this = unsafe { Self::from_raw(domain) };
        if this.wants_page_faults() && !T::IO_PAGE_FAULTS {
            return ENODEV.to_errno();
        }
        match T::attach_dev(this, dev, data, old) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the core as `iova_to_phys`.
    unsafe extern "C" fn iova_to_phys_cb(
        domain: *mut bindings::iommu_domain,
        iova: bindings::dma_addr_t,
    ) -> PhysAddr {
        // SAFETY: The core only calls this table's entries for domains of this type.
        let this = unsafe { Self::from_raw(domain) };
        this.table.iova_to_phys(iova as usize)
    }

    /// # Safety
    ///
    /// Called by the core as `flush_iotlb_all`.
    unsafe extern "C" fn flush_iotlb_all_cb(domain: *mut bindings::iommu_domain) {
        // SAFETY: The core only calls this table's entries for domains of this type.
        let this = unsafe { Self::from_raw(domain) };
        match this.inner.flush_iotlb_all() {
            // The flush queue frees the tables lazy unmaps emptied before this flush began once
            // this returns: wait out any walk that may still reach them.
            Ok(()) => this.inner.free_tables(|| ()),
            // The flush queue keeps its tables and IOVAs for a later, confirmed flush.
            Err(_) => this.flush_unconfirmed(),
        }
    }

    /// # Safety
    ///
    /// Called by the core as `iotlb_sync` with a valid, initialised gather.
    unsafe extern "C" fn iotlb_sync_cb(
        domain: *mut bindings::iommu_domain,
        gather: *mut bindings::iommu_iotlb_gather,
    ) {
        // SAFETY: The core only calls this table's entries for domains of this type.
        let this = unsafe { Self::from_raw(domain) };
        if let Some(g) = NonNull::new(gather) {
            // INVARIANT: The core's gather is valid and ours during the call.
            let mut g = IotlbGather(g, PhantomData);
            this.sync_and_release(&mut g);
        }
    }

    /// Tells the IOMMU core that a flush of this domain was not confirmed, so that its users
    /// neither reuse the IOVAs the flush was to retire (the DMA API) nor unpin the pages they
    /// mapped (iommufd).
    fn flush_unconfirmed(&self) {
        // SAFETY: The domain is valid for the duration of the core's callback that got here.
        unsafe { bindings::iommu_flush_unconfirmed(self.as_raw()) };
    }

    /// Flushes what `g` gathered, then frees its tables, or keeps them if the flush failed.
    fn sync_and_release(&self, g: &mut IotlbGather<'_>) {
        match self.inner.iotlb_sync(g) {
            Ok(()) => {
                if g.frees_tables() {
                    self.inner.free_tables(|| g.release_tables());
                }
            }
            Err(e) => {
                self.flush_unconfirmed();
                let n = g.leak_tables();
                if n > 0 {
                    pr_warn!(
                        "IOTLB flush not confirmed ({:?}): {} page-table page(s) kept, never freed\n",
                        e,
                        n
                    );
                    self.inner.tables_kept(n);
                }
            }
        }
    }

    /// # Safety
    ///
    /// Called by the core as `iotlb_sync_map`.
    unsafe extern "C" fn iotlb_sync_map_cb(
        domain: *mut bindings::iommu_domain,
        iova: usize,
        size: usize,
    ) -> c_int {
        // SAFETY: The core only calls this table's entries for domains of this type.
        let this = unsafe { Self::from_raw(domain) };
        match this.inner.iotlb_sync_map(iova, size) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the core as `free`, once, when no device is attached any more.
    unsafe extern "C" fn free_cb(domain: *mut bindings::iommu_domain) {
        // SAFETY: By the type invariant the domain is at the start of a leaked `KBox<Self>`; the
        // core makes no further calls for it, and no hardware walks its table any more.
        drop(unsafe { KBox::from_raw(domain.cast::<Self>()) });
    }
}

impl<T: PagingOps> Deref for PagingDomain<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner
    }
}

/// Returns a new domain to the core, for [`Ops::domain_alloc_paging_flags`]'s caller.
pub(crate) fn new_domain_into_raw(d: Result<NewDomain>) -> *mut bindings::iommu_domain {
    match d {
        Ok(d) => d.into_raw(),
        Err(e) => e.to_ptr(),
    }
}
