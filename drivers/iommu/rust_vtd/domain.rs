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
    invalidation::{
        AtcTarget,
        IotlbInvalidation, //
    },
    pagetable::{
        free_unlinked,
        TableFormat,
        UnitFeatures, //
    },
    unit::UnitState,
};
use core::sync::atomic::{
    AtomicBool,
    Ordering, //
};
use kernel::{
    device::Device,
    iommu::{
        domain::DomainRef,
        paging::{
            DomainOps,
            IotlbGather,
            NewDomain,
            PagingDomain,
            PagingOps, //
        },
        pt::Vtdss,
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
    /// The ATCs of those with ATS, which every flush of the domain on
    /// `unit` reaches too.
    atc: KVec<AtcTarget>,
}

/// A paging domain.
///
/// # Invariants
///
/// Every context entry that points to the domain's table belongs to a
/// device counted in `attached`, and carries the domain ID recorded there.
/// The table is made as `format` says. `sync_map` is set before a context
/// entry of a unit that caches not-present entries (CAP.CM) or needs its
/// write buffer flushed (CAP.RWBF) points to the table.
#[pin_data]
pub(crate) struct VtdDomain {
    format: TableFormat,
    #[pin]
    attached: SpinLockIrq<KVec<Attachment>>,
    /// New mappings need work from some unit (see the invariant); set once
    /// and never cleared, as the C driver's `iotlb_sync_map`. Without it a
    /// map touches no lock shared with other mappers.
    sync_map: AtomicBool,
}

/// The domain type the IOMMU core sees.
pub(crate) type Domain = PagingDomain<VtdDomain>;

impl VtdDomain {
    /// A new, empty domain for devices of `unit`: as many levels as the
    /// unit's widest supported address width, limited to what it can
    /// address (CAP.MGAW), with the page sizes it supports (CAP.SLLPS).
    pub(crate) fn alloc(unit: &UnitState) -> Result<NewDomain> {
        let format = TableFormat::for_unit(&UnitFeatures::of(unit.cap, unit.ecap))?;
        // INVARIANT: the table is made as `format` says.
        PagingDomain::alloc(
            try_pin_init!(VtdDomain {
                format,
                attached <- new_spinlock_irq!(KVec::new()),
                sync_map: AtomicBool::new(unit.cap.cm() || unit.cap.rwbf()),
            }),
            &format.config(&unit.walker),
            format.pgsizes,
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
                atc: KVec::new(),
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

    /// Adds `atc` to the ATCs flushes of the domain on `unit` reach; the
    /// domain must have an ID there.
    fn add_atc(&self, unit: &Arc<UnitState>, atc: AtcTarget) -> Result {
        let mut att = self.attached.lock();
        let a = att
            .iter_mut()
            .find(|a| Arc::ptr_eq(&a.unit, unit))
            .ok_or(EINVAL)?;
        a.atc.push(atc, GFP_ATOMIC)?;
        Ok(())
    }

    /// Counts one device of `unit` less, and forgets its ATC, if `atc`;
    /// the last one gives the domain ID back. The device's context
    /// entries no longer use it.
    pub(crate) fn put_did(&self, unit: &Arc<UnitState>, atc: Option<AtcTarget>) {
        let mut att = self.attached.lock();
        let Some(pos) = att.iter().position(|a| Arc::ptr_eq(&a.unit, unit)) else {
            return;
        };
        if let Some(t) = atc {
            if let Some(i) = att[pos].atc.iter().position(|x| *x == t) {
                att[pos].atc.remove(i).ok();
            }
        }
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
    /// there and the ATCs its flushes there reach. Callable in atomic
    /// context.
    fn for_each_unit(&self, mut f: impl FnMut(&UnitState, u16, &[AtcTarget])) {
        let att = self.attached.lock();
        for a in att.iter() {
            f(&a.unit, a.did, &a.atc);
        }
    }

    /// Invalidates the IOTLB entries of `first..=last` on every unit; fails
    /// if one unit did not confirm it.
    /// `leaves_only`: no table was freed, the unit may keep its
    /// paging-structure caches (IH).
    fn flush_range(&self, first: u64, last: u64, leaves_only: bool) -> Result {
        let mut res = Ok(());
        self.for_each_unit(|unit, did, atc| {
            if let Err(e) = unit.flush_iotlb_range(did, first, last, leaves_only, atc) {
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
        old.put_did(data.unit(), data.ats);
    }
}

/// The operations table of rust_vtd's paging domains.
static DOMAIN_OPS: DomainOps<VtdDomain> = DomainOps::new();

impl PagingOps for VtdDomain {
    type Iommu = RustVtdIommu;
    type Format = Vtdss;
    const OPS: &'static DomainOps<Self> = &DOMAIN_OPS;

    fn attach_dev(
        domain: &Domain,
        dev: &Device,
        data: &DeviceData,
        old: Option<DomainRef<'_>>,
    ) -> Result {
        let unit = data.unit();
        if old.is_some_and(|o| o.as_raw() == domain.as_raw()) {
            return Ok(());
        }
        // A unit that cannot walk these tables (depth, width, page sizes,
        // snooping) gets the device a domain of its own.
        domain
            .format
            .check(&UnitFeatures::of(unit.cap, unit.ecap))?;
        if unit.cap.cm() || unit.cap.rwbf() {
            // INVARIANT: set before the entry below is written (already at
            // allocation for the unit the domain was made for).
            domain.sync_map.store(true, Ordering::Release);
        }
        // The device's ATC must not keep translations of the old domain:
        // ATS off and the ATC flushed first, as the C driver blocks the
        // device before an attach.
        data.ats_off(dev);
        // Until the entry changes the device stays in `old`: if that is
        // a paging domain, a failure gives it its ATS back.
        let keep_old = |e: Error| {
            if old.and_then(Domain::from_ref).is_some() {
                data.ats_on(dev);
            }
            e
        };
        let did = domain.get_did(unit).map_err(keep_old)?;
        // The ATC is flushed with the domain from before ATS is on.
        if let Some(t) = data.ats {
            if let Err(e) = domain.add_atc(unit, t) {
                domain.put_did(unit, None);
                return Err(keep_old(e));
            }
        }
        let entry = ContextEntry {
            did,
            aw: domain.format.aw,
            tt: if data.ats.is_some() {
                TranslationType::DeviceTlb
            } else {
                TranslationType::MultiLevel
            },
            slptptr: domain.table().hw_info().root,
        };
        if let Err(e) = data.set_context(entry) {
            domain.put_did(unit, data.ats);
            return Err(e);
        }
        leave_old(data, old);
        data.ats_on(dev);
        Ok(())
    }

    fn flush_iotlb_all(&self) -> Result {
        let mut res = Ok(());
        self.for_each_unit(|unit, did, atc| {
            // (A unit that does not confirm logs and counts it, and keeps
            // the domain ID.)
            if let Err(e) = unit.flush_iotlb_atc(IotlbInvalidation::Domain { did }, atc) {
                res = Err(e);
            }
        });
        res
    }

    fn iotlb_sync(&self, gather: &IotlbGather<'_>) -> Result {
        match gather.range() {
            Some((first, last)) => {
                self.flush_range(first as u64, last as u64, !gather.frees_tables())
            }
            None => Ok(()),
        }
    }

    fn free_tables(&self, free: impl FnOnce()) {
        free_unlinked(free)
    }

    fn tables_kept(&self, count: usize) {
        let mut first = true;
        self.for_each_unit(|unit, _, _| {
            if core::mem::take(&mut first) {
                unit.tables_leaked(count);
            }
        });
    }

    fn iotlb_sync_map(&self, iova: usize, size: usize) -> Result {
        if size == 0 || !self.sync_map.load(Ordering::Acquire) {
            return Ok(());
        }
        // Not present to present: only units that cache not-present
        // entries (CAP.CM) need an invalidation; others at most a write
        // buffer flush (CAP.RWBF).
        let (first, last) = (iova as u64, (iova + size - 1) as u64);
        self.for_each_unit(|unit, did, _| {
            if unit.cap.cm() {
                // (Logged and counted by the unit; ATCs cache no
                // not-present entries.)
                let _ = unit.flush_iotlb_range(did, first, last, false, &[]);
            } else if unit.flush_write_buffer().is_err() {
                pr_err!("dmar{}: write buffer flush not confirmed\n", unit.index);
            }
        });
        Ok(())
    }
}
