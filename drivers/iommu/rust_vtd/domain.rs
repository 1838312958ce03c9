// SPDX-License-Identifier: GPL-2.0

//! Paging domains: a second-stage page table, the units it is attached
//! on, and the domain ID it has on each.

use crate::{
    context::{
        ContextEntry,
        TranslationType, //
    },
    device::{
        DeviceData,
        RustVtdIommu, //
    },
    invalidation::IotlbInvalidation,
    pagetable::{
        pgsize_bitmap,
        PageTable, //
    },
    unit::UnitState,
};
use kernel::{
    alloc::Flags,
    device::Device,
    io::PhysAddr,
    iommu::{
        domain::DomainRef,
        pages::PendingTables,
        paging::{
            DomainOps,
            Geometry,
            IotlbGather,
            NewDomain,
            PagingDomain,
            PagingOps,
            Prot, //
        },
    },
    new_spinlock_irq,
    prelude::*,
    sync::{
        Arc,
        SpinLockIrq, //
    },
};

/// A domain's presence on one unit.
struct Attachment {
    unit: Arc<UnitState>,
    /// The domain's ID on `unit`.
    did: u16,
    /// Devices of `unit` attached to the domain.
    devices: u32,
}

/// What a unit can do with second-stage tables, as far as sharing a
/// domain's tables goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct UnitFeatures {
    /// Supported adjusted guest address widths (CAP.SAGAW).
    pub(crate) sagaw: u64,
    /// Maximum guest address width in bits (CAP.MGAW + 1).
    pub(crate) mgaw: u32,
    /// Second-stage large pages (CAP.SLLPS): bit 0 2 MiB, bit 1 1 GiB.
    pub(crate) sllps: u64,
    /// Table walks snoop the CPU caches (ECAP.C).
    pub(crate) coherent: bool,
    /// Snoop control: leaves may force snooping (ECAP.SC).
    pub(crate) snoop_control: bool,
}

impl UnitFeatures {
    /// The features of `unit`.
    pub(crate) fn of(unit: &UnitState) -> Self {
        Self {
            sagaw: unit.cap.sagaw().get(),
            mgaw: unit.cap.mgaw_bits(),
            sllps: unit.cap.sllps().get(),
            coherent: unit.ecap.c(),
            snoop_control: unit.ecap.sc(),
        }
    }
}

/// How a domain's tables are made: what a unit must support to walk them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TableFormat {
    /// The AW encoding of the level count, for context entries.
    pub(crate) aw: u8,
    /// IOVA width the domain maps (its aperture).
    pub(crate) width: u32,
    /// Page sizes it maps.
    pub(crate) pgsizes: usize,
    /// Whether tables are written without writing them back from the CPU
    /// caches (for units that snoop).
    pub(crate) coherent: bool,
    /// Whether leaves may set SNP.
    pub(crate) snoop: bool,
}

impl TableFormat {
    /// The format of domains allocated for `unit`: as many levels as its
    /// widest supported address width, limited to what it can address.
    pub(crate) fn for_unit(u: &UnitFeatures) -> Result<Self> {
        let aw = crate::context::widest_aw(u.sagaw).ok_or(ENODEV)?;
        let levels = u32::from(aw) + 2;
        Ok(Self {
            aw,
            width: (crate::pagetable::level_shift(levels) + 9).min(u.mgaw),
            pgsizes: pgsize_bitmap(u.sllps),
            coherent: u.coherent,
            snoop: u.snoop_control,
        })
    }

    /// Whether unit `u` can use tables of this format, as the C driver's
    /// `paging_domain_compatible_second_stage()` decides: `EINVAL` if not,
    /// and the core then gives the device a domain of its own.
    pub(crate) fn check(&self, u: &UnitFeatures) -> Result {
        let fits = u.sagaw & (1 << self.aw) != 0
            && self.width <= u.mgaw
            && (u.sllps & 1 != 0 || self.pgsizes & 0x20_0000 == 0)
            && (u.sllps & 2 != 0 || self.pgsizes & 0x4000_0000 == 0)
            && (u.coherent || !self.coherent)
            && (u.snoop_control || !self.snoop);
        if fits {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }
}

/// A paging domain.
///
/// # Invariants
///
/// Every context entry that points to `pt` belongs to a device counted
/// in `attached`, and carries the domain ID recorded there. `pt` is made
/// as `format` says.
#[pin_data]
pub(crate) struct VtdDomain {
    pt: PageTable,
    format: TableFormat,
    #[pin]
    attached: SpinLockIrq<KVec<Attachment>>,
    /// Tables lazy (flush-queue) unmaps have unlinked: freed by the next
    /// `flush_iotlb_all` that all units confirm, kept for good if one does
    /// not. (The core would free them after that flush whatever happened.)
    #[pin]
    pending: SpinLockIrq<PendingTables>,
    /// Serialises `flush_iotlb_all`, and holds what one has taken from
    /// `pending` while it flushes.
    #[pin]
    flushing: SpinLockIrq<PendingTables>,
}

/// The domain type the IOMMU core sees.
pub(crate) type Domain = PagingDomain<VtdDomain>;

impl VtdDomain {
    /// A new, empty domain for devices of `unit`: as many levels as the
    /// unit's widest supported address width, limited to what it can
    /// address (CAP.MGAW).
    pub(crate) fn alloc(unit: &UnitState) -> Result<NewDomain> {
        let format = TableFormat::for_unit(&UnitFeatures::of(unit))?;
        let pt = PageTable::new(u32::from(format.aw) + 2, format.coherent, format.snoop)?;
        let geometry = Geometry {
            aperture_start: 0,
            aperture_end: (1u64 << format.width) - 1,
        };
        // INVARIANT: `pt` is made as `format` says.
        PagingDomain::alloc(
            try_pin_init!(VtdDomain {
                pt,
                format,
                attached <- new_spinlock_irq!(KVec::new()),
                pending <- new_spinlock_irq!(PendingTables::new()),
                flushing <- new_spinlock_irq!(PendingTables::new()),
            }),
            format.pgsizes,
            geometry,
        )
    }

    /// The domain's ID on `unit`, allocating one and counting one more
    /// device there.
    fn get_did(&self, unit: &Arc<UnitState>) -> Result<u16> {
        {
            let mut att = self.attached.lock();
            if let Some(a) = att.iter_mut().find(|a| Arc::ptr_eq(&a.unit, unit)) {
                a.devices += 1;
                return Ok(a.did);
            }
        }
        let did = unit.alloc_did()?;
        let mut att = self.attached.lock();
        if let Some(a) = att.iter_mut().find(|a| Arc::ptr_eq(&a.unit, unit)) {
            // Another group attached on the same unit meanwhile.
            a.devices += 1;
            let d = a.did;
            drop(att);
            unit.free_did(did);
            return Ok(d);
        }
        let pushed = att.push(
            Attachment {
                unit: unit.clone(),
                did,
                devices: 1,
            },
            GFP_ATOMIC,
        );
        drop(att);
        if let Err(e) = pushed {
            unit.free_did(did);
            return Err(e.into());
        }
        Ok(did)
    }

    /// Counts one device of `unit` less; the last one gives the domain ID
    /// back. The device's context entries no longer use it.
    pub(crate) fn put_did(&self, unit: &Arc<UnitState>) {
        let mut att = self.attached.lock();
        let Some(pos) = att.iter().position(|a| Arc::ptr_eq(&a.unit, unit)) else {
            return;
        };
        att[pos].devices -= 1;
        if att[pos].devices > 0 {
            return;
        }
        let a = att.remove(pos);
        drop(att);
        if let Ok(a) = a {
            a.unit.free_did(a.did);
        }
    }

    /// Runs `f` for every unit the domain is attached on, with its ID
    /// there. Callable in atomic context.
    fn for_each_unit(&self, mut f: impl FnMut(&UnitState, u16)) {
        let att = self.attached.lock();
        for a in att.iter() {
            f(&a.unit, a.did);
        }
    }

    /// Invalidates the IOTLB entries of `first..=last` on every unit; fails
    /// if one unit did not confirm it.
    fn flush_range(&self, first: u64, last: u64) -> Result {
        let mut res = Ok(());
        self.for_each_unit(|unit, did| {
            if let Err(e) = unit.flush_iotlb_range(did, first, last) {
                res = Err(e);
            }
        });
        res
    }
}

/// Moves a device off `old`, if that is a paging domain: its unit counts
/// one device less there. Called once the device's new context entries
/// are in place.
pub(crate) fn leave_old(data: &DeviceData, old: Option<DomainRef<'_>>) {
    if let Some(old) = old.and_then(Domain::from_ref) {
        old.put_did(data.unit());
    }
}

/// The operations table of rust_vtd's paging domains.
static DOMAIN_OPS: DomainOps<VtdDomain> = DomainOps::new();

impl PagingOps for VtdDomain {
    type Iommu = RustVtdIommu;
    const OPS: &'static DomainOps<Self> = &DOMAIN_OPS;

    fn attach_dev(
        domain: &Domain,
        _dev: &Device,
        data: &DeviceData,
        old: Option<DomainRef<'_>>,
    ) -> Result {
        let unit = data.unit();
        if old.is_some_and(|o| o.as_raw() == domain.as_raw()) {
            return Ok(());
        }
        // A unit that cannot walk these tables (depth, width, page sizes,
        // snooping) gets the device a domain of its own.
        domain.format.check(&UnitFeatures::of(unit))?;
        let did = domain.get_did(unit)?;
        let entry = ContextEntry {
            did,
            aw: domain.format.aw,
            tt: TranslationType::MultiLevel,
            slptptr: domain.pt.root_phys(),
        };
        if let Err(e) = data.set_context(entry) {
            domain.put_did(unit);
            return Err(e);
        }
        leave_old(data, old);
        Ok(())
    }

    fn map_pages(
        &self,
        iova: usize,
        paddr: PhysAddr,
        pgsize: usize,
        pgcount: usize,
        prot: Prot,
        gfp: Flags,
    ) -> (usize, Result) {
        self.pt.map(iova as u64, paddr, pgsize, pgcount, prot, gfp)
    }

    fn unmap_pages(
        &self,
        iova: usize,
        pgsize: usize,
        pgcount: usize,
        gather: &mut IotlbGather<'_>,
    ) -> usize {
        let Some(size) = pgsize.checked_mul(pgcount) else {
            return 0;
        };
        let size = size as u64;
        // Emptied tables are freed once `iotlb_sync` (or, in lazy mode,
        // the core's flush queue) has flushed them from the caches. The
        // invalidations never set IH, so that flush covers the
        // paging-structure caches too.
        // In lazy mode the tables wait in `pending` for the domain's next
        // `flush_iotlb_all`, so that a flush that fails keeps them.
        let queued = gather.queued();
        let n = self.pt.unmap(iova as u64, size, &mut |t| {
            if queued {
                self.pending.lock().as_mut().add(t)
            } else {
                gather.free_after_flush(t)
            }
        });
        gather.add_range(iova, n as usize);
        n as usize
    }

    fn iova_to_phys(&self, iova: usize) -> PhysAddr {
        self.pt.translate(iova as u64).map_or(0, |(pa, _)| pa)
    }

    fn flush_iotlb_all(&self) {
        // The tables unlinked before this flush starts are covered by it.
        let mut flushing = self.flushing.lock();
        self.pending.lock().as_mut().move_to(flushing.as_mut());
        let mut confirmed = true;
        self.for_each_unit(|unit, did| {
            // (A unit that does not confirm logs and counts it, and keeps
            // the domain ID.)
            if unit.flush_iotlb(IotlbInvalidation::Domain { did }).is_err() {
                confirmed = false;
            }
        });
        if confirmed {
            flushing.as_mut().free();
        } else {
            let n = flushing.as_mut().leak();
            if n > 0 {
                pr_warn!(
                    "IOTLB flush not confirmed: {} page-table page(s) kept, never freed\n",
                    n
                );
                self.tables_kept(n);
            }
        }
    }

    fn iotlb_sync(&self, gather: &IotlbGather<'_>) -> Result {
        match gather.range() {
            Some((first, last)) => self.flush_range(first as u64, last as u64),
            None => Ok(()),
        }
    }

    fn tables_kept(&self, count: usize) {
        let mut first = true;
        self.for_each_unit(|unit, _| {
            if core::mem::take(&mut first) {
                unit.tables_leaked(count);
            }
        });
    }

    fn iotlb_sync_map(&self, iova: usize, size: usize) -> Result {
        if size == 0 {
            return Ok(());
        }
        // Not present to present: only units that cache not-present
        // entries (CAP.CM) need an invalidation; others at most a write
        // buffer flush (CAP.RWBF).
        let (first, last) = (iova as u64, (iova + size - 1) as u64);
        self.for_each_unit(|unit, did| {
            if unit.cap.cm() {
                // (Logged and counted by the unit.)
                let _ = unit.flush_iotlb_range(did, first, last);
            } else if unit.flush_write_buffer().is_err() {
                pr_err!("dmar{}: write buffer flush not confirmed\n", unit.index);
            }
        });
        Ok(())
    }
}

#[kunit_tests(rust_vtd_domain)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_from_sllps() {
        // SLLPS 0: 4 KiB only. QEMU's CAP (0x80d2008c222f0606) has
        // SLLPS 3: 2 MiB and 1 GiB too.
        assert_eq!((0x80d2008c222f0606u64 >> 34) & 0xf, 3);
        assert_eq!(pgsize_bitmap(0), 0x1000);
        assert_eq!(pgsize_bitmap(1), 0x20_1000);
        assert_eq!(pgsize_bitmap(3), 0x4020_1000);
    }

    #[test]
    fn domains_fit_only_units_that_can_walk_them() -> Result {
        // QEMU's default unit: SAGAW 39 and 48 bits, MGAW 48, 2 MiB and
        // 1 GiB pages, coherent, no snoop control.
        let qemu = UnitFeatures {
            sagaw: 0x6,
            mgaw: 48,
            sllps: 3,
            coherent: true,
            snoop_control: false,
        };
        let f = TableFormat::for_unit(&qemu)?;
        assert_eq!(
            f,
            TableFormat {
                aw: 2,
                width: 48,
                pgsizes: 0x4020_1000,
                coherent: true,
                snoop: false
            }
        );
        assert_eq!(f.check(&qemu), Ok(()));
        // Each field that differs in a way the tables cannot bear.
        let no_4level = UnitFeatures { sagaw: 0x2, ..qemu };
        let narrower = UnitFeatures { mgaw: 39, ..qemu };
        let no_1g = UnitFeatures { sllps: 1, ..qemu };
        let no_2m = UnitFeatures { sllps: 2, ..qemu };
        let incoherent = UnitFeatures {
            coherent: false,
            ..qemu
        };
        for u in [no_4level, narrower, no_1g, no_2m, incoherent] {
            assert_eq!(f.check(&u), Err(EINVAL));
        }
        // Tables that force snooping need snoop control.
        let sc = UnitFeatures {
            snoop_control: true,
            ..qemu
        };
        let fsc = TableFormat::for_unit(&sc)?;
        assert_eq!(fsc.check(&sc), Ok(()));
        assert_eq!(fsc.check(&qemu), Err(EINVAL));
        // And the other way round, what the tables do not use is no
        // obstacle: an incoherent domain on a coherent unit, a unit with
        // more page sizes or more width.
        let fi = TableFormat::for_unit(&incoherent)?;
        assert_eq!(fi.check(&qemu), Ok(()));
        let f39 = TableFormat::for_unit(&UnitFeatures {
            sagaw: 0x2,
            mgaw: 39,
            sllps: 0,
            ..qemu
        })?;
        assert_eq!((f39.aw, f39.width, f39.pgsizes), (1, 39, 0x1000));
        assert_eq!(f39.check(&qemu), Ok(()));
        Ok(())
    }
}
