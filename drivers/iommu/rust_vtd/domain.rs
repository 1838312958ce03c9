// SPDX-License-Identifier: GPL-2.0

//! Paging domains: a second-stage page table, the units it is attached
//! on, and the domain ID it has on each.

use crate::{
    context::{
        ContextEntry,
        TranslationType, //
    },
    iommu::{
        DeviceData,
        RustVtdIommu, //
    },
    pagetable::PageTable,
    qi::IotlbInvalidation,
    unit::UnitState,
};
use kernel::{
    alloc::Flags,
    device::Device,
    io::PhysAddr,
    iommu::{
        domain::DomainRef,
        paging::{
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

/// A paging domain.
///
/// # Invariants
///
/// Every context entry that points to `pt` belongs to a device counted
/// in `attached`, and carries the domain ID recorded there.
#[pin_data]
pub(crate) struct VtdDomain {
    pt: PageTable,
    /// The AW encoding of `pt`'s level count, for context entries.
    aw: u8,
    #[pin]
    attached: SpinLockIrq<KVec<Attachment>>,
}

/// The domain type the IOMMU core sees.
pub(crate) type Domain = PagingDomain<VtdDomain>;

/// Page sizes a unit's second-stage tables can map: 4 KiB, plus 2 MiB and
/// 1 GiB where CAP.SLLPS says so.
pub(crate) fn pgsize_bitmap(sllps: u64) -> usize {
    let mut sizes = 0x1000;
    if sllps & 1 != 0 {
        sizes |= 0x20_0000;
    }
    if sllps & 2 != 0 {
        sizes |= 0x4000_0000;
    }
    sizes
}

impl VtdDomain {
    /// A new, empty domain for devices of `unit`: as many levels as the
    /// unit's widest supported address width, limited to what it can
    /// address (CAP.MGAW).
    pub(crate) fn alloc(unit: &UnitState) -> Result<NewDomain> {
        let aw = crate::context::widest_aw(unit.cap.sagaw().get()).ok_or(ENODEV)?;
        let levels = u32::from(aw) + 2;
        let pt = PageTable::new(levels, unit.ecap.c(), unit.ecap.sc())?;
        let width = pt.width().min(unit.cap.mgaw().get() as u32 + 1);
        let geometry = Geometry {
            aperture_start: 0,
            aperture_end: (1u64 << width) - 1,
        };
        PagingDomain::alloc(
            try_pin_init!(VtdDomain {
                pt,
                aw,
                attached <- new_spinlock_irq!(KVec::new()),
            }),
            pgsize_bitmap(unit.cap.sllps().get()),
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

    /// Invalidates the IOTLB entries of `first..=last` on every unit.
    fn flush_range(&self, first: u64, last: u64) {
        self.for_each_unit(|unit, did| unit.flush_iotlb_range(did, first, last));
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

impl PagingOps for VtdDomain {
    type Iommu = RustVtdIommu;

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
        if unit.cap.sagaw().get() & (1 << domain.aw) == 0 {
            // The unit cannot walk a table of this depth.
            return Err(EINVAL);
        }
        let did = domain.get_did(unit)?;
        let entry = ContextEntry {
            did,
            aw: domain.aw,
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
        let size = (pgsize * pgcount) as u64;
        // Emptied tables are freed once `iotlb_sync` (or, in lazy mode,
        // the core's flush queue) has flushed them from the caches. The
        // invalidations never set IH, so that flush covers the
        // paging-structure caches too.
        let n = self
            .pt
            .unmap(iova as u64, size, &mut |t| gather.free_after_flush(t));
        gather.add_range(iova, n as usize);
        n as usize
    }

    fn iova_to_phys(&self, iova: usize) -> PhysAddr {
        self.pt.translate(iova as u64).map_or(0, |(pa, _)| pa)
    }

    fn flush_iotlb_all(&self) {
        self.for_each_unit(|unit, did| unit.flush_iotlb(IotlbInvalidation::Domain { did }));
    }

    fn iotlb_sync(&self, gather: &IotlbGather<'_>) {
        if let Some((first, last)) = gather.range() {
            self.flush_range(first as u64, last as u64);
        }
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
                unit.flush_iotlb_range(did, first, last);
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
}
