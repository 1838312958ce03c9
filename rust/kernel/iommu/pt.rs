// SPDX-License-Identifier: GPL-2.0

//! IOMMU page tables from the kernel's generic page-table library (generic_pt).
//!
//! generic_pt implements the page-table formats of several IOMMUs once, for C and Rust drivers
//! alike: it walks each table once per operation, installs tables without locks, writes tables
//! back from the CPU caches for IOMMUs whose walks do not snoop them
//! ([`Config::incoherent`]), and puts the tables an unmap empties on the IOTLB gather, to be freed
//! after the flush. A [`Table`] is one such page table together with the core's
//! `struct iommu_domain`, which generic_pt embeds at its start; a paging domain
//! ([`PagingDomain`](super::paging::PagingDomain)) is built around one, and a driver may also keep
//! one of its own (a 1:1 table for identity domains, for example).
//!
//! The library leaves locking to its caller: concurrent operations must not touch overlapping
//! IOVA ranges. The IOMMU core and the DMA API guarantee that for a domain's map and unmap
//! calls; a [`Table`] used directly is changed only through `&mut self`.
//!
//! C header: [`include/linux/generic_pt/iommu.h`](srctree/include/linux/generic_pt/iommu.h)

use super::paging::{
    IotlbGather,
    Prot, //
};
use crate::{
    alloc::Flags,
    bindings,
    device::Device,
    error::to_result,
    io::PhysAddr,
    prelude::*,
    sync::aref::ARef,
    types::Opaque, //
};
use core::marker::PhantomData;

/// A page-table format of generic_pt.
///
/// # Safety
///
/// `Raw` is the format's `struct pt_iommu_<fmt>`, whose first field is a `struct pt_iommu`, whose
/// first field is the `struct iommu_domain`; [`Format::init`] and [`Format::iova_to_phys`] are
/// the format's `pt_iommu_<fmt>_init()` and `pt_iommu_<fmt>_iova_to_phys()`.
pub unsafe trait Format: 'static {
    /// The format's table, `struct pt_iommu_<fmt>`.
    type Raw;
    /// What the format reports for the hardware's table pointer.
    type HwInfo;

    /// Initialises `table` as an empty page table for an IOMMU as `cfg` describes.
    ///
    /// # Safety
    ///
    /// `table` must be valid for writes; its `iommu.iommu_device` is set when `cfg` asks for
    /// incoherent tables.
    unsafe fn init(table: *mut Self::Raw, cfg: &Config, gfp: Flags) -> Result;

    /// The hardware's view of an initialised `table`.
    ///
    /// # Safety
    ///
    /// `table` must be a table initialised by [`Format::init`].
    unsafe fn hw_info(table: *mut Self::Raw) -> Self::HwInfo;

    /// The address `iova` translates to in `domain`, or 0.
    ///
    /// # Safety
    ///
    /// `domain` must be the domain of an initialised table of this format.
    unsafe fn iova_to_phys(domain: *mut bindings::iommu_domain, iova: usize) -> PhysAddr;
}

/// What the IOMMU that walks a table can do, and so how generic_pt builds it.
pub struct Config {
    /// Levels of the table (VT-d: 3, 4 or 5).
    pub levels: u32,
    /// The IOVA width the table maps, in bits: at most what `levels` cover.
    pub va_bits: u8,
    /// The width of output addresses the hardware takes, in bits.
    pub oa_bits: u8,
    /// The IOMMU's table walks do not snoop the CPU caches: tables and entries are written back
    /// to memory through the core's `iommu_pages_*_incoherent()` helpers, with this device (the
    /// IOMMU's own, which the DMA API flushes for on architectures that need it).
    pub incoherent: Option<ARef<Device>>,
}

/// Intel VT-d's second-stage format (`vtdss`), when `CONFIG_IOMMU_PT_VTDSS` is built in.
///
/// # Examples
///
/// A 4-level VT-d second-stage table, filled, read back and emptied:
///
/// ```
/// use kernel::iommu::{
///     paging::Prot,
///     pt::{Config, Table, Vtdss},
/// };
///
/// let cfg = Config { levels: 4, va_bits: 48, oa_bits: 46, incoherent: None };
/// let mut t = KBox::pin_init(Table::<Vtdss>::new(&cfg, GFP_KERNEL), GFP_KERNEL)?;
/// assert_eq!(t.hw_info().aw, 2);
/// assert_eq!(t.hw_info().root % 4096, 0);
/// // 4 KiB, 2 MiB and 1 GiB pages.
/// assert_eq!(t.pgsize_bitmap(), 0x4020_1000);
///
/// let rw = Prot::READ.union(Prot::WRITE);
/// // 2 MiB whose output is not 2 MiB aligned: one table of 4 KiB pages.
/// assert_eq!(t.as_mut().map(0x20_0000, 0x4000_1000, 0x20_0000, rw, GFP_KERNEL)?, 0x20_0000);
/// assert_eq!(t.iova_to_phys(0x20_0000), 0x4000_1000);
/// assert_eq!(t.iova_to_phys(0x3f_fabc), 0x4020_0abc);
/// assert_eq!(t.iova_to_phys(0x40_0000), 0);
/// // 1 GiB, aligned on both sides: one leaf.
/// assert_eq!(t.as_mut().map(0x4000_0000, 0x8000_0000, 0x4000_0000, rw, GFP_KERNEL)?, 0x4000_0000);
/// assert_eq!(t.iova_to_phys(0x7fff_f123), 0xbfff_f123);
/// // Output addresses wider than the hardware takes are refused, and nothing stays mapped.
/// assert!(t.as_mut().map(0x100_0000, 1 << 47, 0x1000, rw, GFP_KERNEL).is_err());
/// assert_eq!(t.iova_to_phys(0x100_0000), 0);
///
/// // Unmapping the 2 MiB empties the table of 4 KiB pages, which comes back to be freed.
/// let mut tables = 0;
/// assert_eq!(t.as_mut().unmap(0x20_0000, 0x20_0000, &mut |n| tables += n), 0x20_0000);
/// assert_eq!(t.iova_to_phys(0x20_0000), 0);
/// assert_eq!(tables, 1);
/// assert_eq!(t.iova_to_phys(0x4000_0000), 0x8000_0000);
/// # Ok::<(), Error>(())
/// ```
#[cfg(CONFIG_IOMMU_PT_VTDSS)]
pub struct Vtdss;

/// Where a VT-d second-stage table starts, for a context or PASID entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdssInfo {
    /// Physical address of the top table (SSPTPTR).
    pub root: PhysAddr,
    /// The adjusted guest address width encoding (AW): levels minus 2.
    pub aw: u8,
}

#[cfg(CONFIG_IOMMU_PT_VTDSS)]
// SAFETY: `pt_iommu_vtdss` starts with `struct pt_iommu iommu`, which starts with the domain; the
// functions are the vtdss format's.
unsafe impl Format for Vtdss {
    type Raw = bindings::pt_iommu_vtdss;
    type HwInfo = VtdssInfo;

    unsafe fn init(table: *mut Self::Raw, cfg: &Config, gfp: Flags) -> Result {
        let mut features = 1u32 << bindings::pt_features_PT_FEAT_FLUSH_RANGE;
        if cfg.incoherent.is_some() {
            features |= 1u32 << bindings::pt_features_PT_FEAT_DMA_INCOHERENT;
        }
        let c = bindings::pt_iommu_vtdss_cfg {
            common: bindings::pt_iommu_cfg {
                features,
                hw_max_vasz_lg2: cfg.va_bits,
                hw_max_oasz_lg2: cfg.oa_bits,
            },
            // generic_pt counts levels from 0: a 4-level table's top is level 3.
            top_level: cfg.levels.checked_sub(1).ok_or(EINVAL)?,
        };
        // SAFETY: Per the safety requirements `table` is valid for writes, with the device set
        // where needed; `c` is a valid configuration.
        to_result(unsafe { bindings::pt_iommu_vtdss_init(table, &c, gfp.as_raw()) })
    }

    unsafe fn hw_info(table: *mut Self::Raw) -> VtdssInfo {
        let mut info = bindings::pt_iommu_vtdss_hw_info::default();
        // SAFETY: Per the safety requirements `table` is initialised; `info` is writable.
        unsafe { bindings::pt_iommu_vtdss_hw_info(table, &mut info) };
        VtdssInfo {
            root: info.ssptptr,
            aw: info.aw,
        }
    }

    unsafe fn iova_to_phys(domain: *mut bindings::iommu_domain, iova: usize) -> PhysAddr {
        // SAFETY: Per the safety requirements `domain` belongs to an initialised vtdss table.
        unsafe { bindings::pt_iommu_vtdss_iova_to_phys(domain, iova as bindings::dma_addr_t) }
    }
}

/// A generic_pt page table of format `F`, with the core's `struct iommu_domain` at its start.
///
/// # Invariants
///
/// `raw` was initialised by [`Format::init`] and is released by `deinit` on drop.
#[repr(transparent)]
#[pin_data(PinnedDrop)]
pub struct Table<F: Format> {
    #[pin]
    raw: Opaque<F::Raw>,
    _format: PhantomData<F>,
}

// SAFETY: The table is plain memory that generic_pt changes with atomic operations; callers keep
// concurrent operations off overlapping ranges (module documentation).
unsafe impl<F: Format> Send for Table<F> {}
// SAFETY: As above.
unsafe impl<F: Format> Sync for Table<F> {}

impl<F: Format> Table<F> {
    /// An empty table for an IOMMU as `cfg` describes, its tables allocated with `gfp`.
    pub fn new(cfg: &Config, gfp: Flags) -> impl PinInit<Self, Error> + '_ {
        // SAFETY: On success the table is initialised; on failure generic_pt has freed what it
        // allocated (the top table is allocated last).
        unsafe {
            pin_init::pin_init_from_closure(move |slot: *mut Self| {
                let raw: *mut F::Raw = Opaque::cast_into(&raw const (*slot).raw);
                // Zeroed first: `pt_iommu` keeps the device, node and driver ops given to it.
                core::ptr::write_bytes(raw, 0, 1);
                let pt = raw.cast::<bindings::pt_iommu>();
                (*pt).nid = bindings::NUMA_NO_NODE;
                if let Some(dev) = &cfg.incoherent {
                    // The table keeps no reference: its owner outlives it (see `Config`).
                    (*pt).iommu_device = dev.as_raw();
                }
                // INVARIANT: initialised here.
                F::init(raw, cfg, gfp)
            })
        }
    }

    fn pt(&self) -> *mut bindings::pt_iommu {
        self.raw.get().cast()
    }

    /// The core's domain embedded in the table.
    pub fn domain(&self) -> *mut bindings::iommu_domain {
        // SAFETY: The domain is the first field of `pt_iommu`, the first field of `F::Raw`.
        unsafe { &raw mut (*self.pt()).domain }
    }

    /// The page sizes the table holds (generic_pt sets them in the domain).
    pub fn pgsize_bitmap(&self) -> usize {
        // SAFETY: The domain is initialised by the type invariant.
        unsafe { (*self.domain()).pgsize_bitmap }
    }

    /// Keeps only the page sizes in `mask` (those the hardware supports, where the format has
    /// more); `EINVAL` if none is left.
    pub fn restrict_page_sizes(self: Pin<&mut Self>, mask: usize) -> Result {
        let d = self.domain();
        // SAFETY: The domain is initialised by the type invariant; `&mut self` excludes every
        // concurrent use of the table.
        unsafe {
            (*d).pgsize_bitmap &= mask;
            if (*d).pgsize_bitmap == 0 {
                return Err(EINVAL);
            }
        }
        Ok(())
    }

    /// Where the hardware finds the table.
    pub fn hw_info(&self) -> F::HwInfo {
        // SAFETY: Initialised by the type invariant.
        unsafe { F::hw_info(self.raw.get()) }
    }

    /// The physical address `iova` translates to, or 0 if it is not mapped. A lookup that
    /// races with an unmap of `iova` may see either result.
    pub fn iova_to_phys(&self, iova: usize) -> PhysAddr {
        // SAFETY: Initialised by the type invariant; generic_pt's lookup is lockless and reads
        // tables that are freed only after an IOTLB flush, which the core orders after any
        // lookup of the range by its own callers.
        unsafe { F::iova_to_phys(self.domain(), iova) }
    }

    /// Maps `len` bytes at `iova` to `paddr`, with the largest pages that fit. Returns how many
    /// bytes were mapped from `iova`, which on error may be fewer than `len`.
    ///
    /// # Safety
    ///
    /// No other operation of this table may run at the same time on an overlapping range.
    pub unsafe fn map_raw(
        &self,
        iova: usize,
        paddr: PhysAddr,
        len: usize,
        prot: Prot,
        gfp: Flags,
    ) -> (usize, Result) {
        let pt = self.pt();
        let mut mapped = 0usize;
        // SAFETY: Initialised by the type invariant, so `ops` is set; the caller keeps others off
        // the range.
        let ret = unsafe {
            match (*(*pt).ops).map_range {
                Some(map) => map(
                    pt,
                    iova as bindings::dma_addr_t,
                    paddr,
                    len as bindings::dma_addr_t,
                    prot.bits(),
                    gfp.as_raw(),
                    &mut mapped,
                ),
                None => EOPNOTSUPP.to_errno(),
            }
        };
        (mapped, to_result(ret))
    }

    /// Unmaps `len` bytes at `iova` and adds the range, and the tables it emptied, to `gather`.
    /// Returns the number of bytes unmapped; it stops early at an IOVA that is not mapped.
    /// The emptied tables must not be freed before the IOTLB flush that covers the range.
    ///
    /// # Safety
    ///
    /// No other operation of this table may run at the same time on an overlapping range.
    pub unsafe fn unmap_raw(&self, iova: usize, len: usize, gather: &mut IotlbGather<'_>) -> usize {
        let pt = self.pt();
        // SAFETY: Initialised by the type invariant; the gather is valid; the caller keeps others
        // off the range.
        unsafe {
            match (*(*pt).ops).unmap_range {
                Some(unmap) => unmap(
                    pt,
                    iova as bindings::dma_addr_t,
                    len as bindings::dma_addr_t,
                    gather.as_raw(),
                ),
                None => 0,
            }
        }
    }

    /// Maps `len` bytes at `iova` to `paddr` with the largest pages that fit; on error, nothing
    /// stays mapped. Returns `len`.
    pub fn map(
        self: Pin<&mut Self>,
        iova: usize,
        paddr: PhysAddr,
        len: usize,
        prot: Prot,
        gfp: Flags,
    ) -> Result<usize> {
        // SAFETY: `&mut self` excludes every other operation.
        let (mapped, res) = unsafe { self.map_raw(iova, paddr, len, prot, gfp) };
        if let Err(e) = res {
            let mut none = |_: usize| {};
            self.unmap(iova, mapped, &mut none);
            return Err(e);
        }
        Ok(mapped)
    }

    /// Unmaps `len` bytes at `iova` of a table no hardware walks, freeing the tables it empties
    /// at once; `freed` is told how many. Returns the number of bytes unmapped.
    pub fn unmap(
        self: Pin<&mut Self>,
        iova: usize,
        len: usize,
        freed: &mut dyn FnMut(usize),
    ) -> usize {
        IotlbGather::with_new(|g| {
            // SAFETY: `&mut self` excludes every other operation.
            let n = unsafe { self.unmap_raw(iova, len, g) };
            // No hardware walks this table through `&mut self`'s owner: nothing to flush.
            freed(g.free_tables_now());
            n
        })
    }
}

#[pinned_drop]
impl<F: Format> PinnedDrop for Table<F> {
    fn drop(self: Pin<&mut Self>) {
        let pt = self.pt();
        // SAFETY: Initialised by the type invariant, and no hardware walks the table any more
        // (its owner detached it before dropping it); `deinit` frees every table.
        unsafe {
            if let Some(deinit) = (*(*pt).ops).deinit {
                deinit(pt)
            }
        }
    }
}
