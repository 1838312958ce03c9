// SPDX-License-Identifier: GPL-2.0

//! rust_vtd as the IOMMU core sees it: a unit registered with the core,
//! which unit translates a device, and the static blocking and identity
//! domains.

use crate::{
    device::{
        DeviceData,
        RustVtdIommu,
        ATS_PAGE_SHIFT, //
    },
    domain::{
        leave_old,
        VtdDomain, //
    },
    invalidation::AtcTarget,
    registry,
    unit::UnitState,
};
use kernel::{
    device::{
        Core,
        Device, //
    },
    iommu::{
        device::{
            IommuDevice,
            Registration, //
        },
        domain::{
            AttachOps,
            DomainRef,
            StaticDomain,
            StaticDomainOps,
            StaticKind, //
        },
        ops::{
            Capability,
            DefaultDomain,
            HwInfo,
            Ops,
            OpsTable,
            ResvKind,
            ResvRegions, //
        },
        paging::{
            NewDomain,
            Prot, //
        },
    },
    pci, platform,
    prelude::*,
    str::CString,
    sync::Arc,
};

/// Attaching to the blocking domain: the device's context entry is made
/// not present, so it reaches no memory at all.
pub(crate) struct Blocking;

impl AttachOps for Blocking {
    type Iommu = RustVtdIommu;

    fn attach_dev(dev: &Device, data: &DeviceData, old: Option<DomainRef<'_>>) -> Result {
        // ATS off and the ATC flushed before the entry goes: a reset
        // (pci_dev_reset_iommu_prepare()) finds the device quiet.
        data.ats_off(dev);
        data.block();
        leave_old(data, old);
        let (u, b, d, f) = data.name();
        pr_debug!("dmar{}: {:02x}:{:02x}.{}: blocked\n", u, b, d, f);
        Ok(())
    }
}

/// Attaching to the identity domain: the device's requests bypass
/// translation (context entry type pass-through).
pub(crate) struct Identity;

impl AttachOps for Identity {
    type Iommu = RustVtdIommu;

    fn attach_dev(dev: &Device, data: &DeviceData, old: Option<DomainRef<'_>>) -> Result {
        let entry = data.unit.identity_entry()?;
        // Identity gets no ATS, as in the C driver's legacy mode.
        data.ats_off(dev);
        data.set_context(entry)?;
        leave_old(data, old);
        let (u, b, d, f) = data.name();
        pr_debug!("dmar{}: {:02x}:{:02x}.{}: identity\n", u, b, d, f);
        Ok(())
    }
}

static BLOCKING_OPS: StaticDomainOps<Blocking> = StaticDomainOps::new();
static BLOCKING: StaticDomain<Blocking> = StaticDomain::new(StaticKind::Blocked, &BLOCKING_OPS);
static IDENTITY_OPS: StaticDomainOps<Identity> = StaticDomainOps::new();
static IDENTITY: StaticDomain<Identity> = StaticDomain::new(StaticKind::Identity, &IDENTITY_OPS);

/// The interrupt address window (VT-d 3.14): DMA writes there are
/// interrupt requests, which remapping never translates.
const MSI_WINDOW_START: u64 = 0xfee0_0000;
const MSI_WINDOW_LEN: usize = 0x10_0000;

/// The operations every unit registers with.
pub(crate) static OPS: OpsTable<RustVtdIommu> = OpsTable::new(&BLOCKING, &IDENTITY);

/// The path of `pdev` from its root bus: (bus, devfn) of each bridge
/// above it, then of the device itself.
fn pci_chain(pdev: &pci::Device) -> Result<KVec<(u8, u8)>> {
    let mut chain = KVec::new();
    let mut cur = Some(pdev);
    while let Some(p) = cur {
        chain.push((p.bus_number(), p.devfn()), GFP_KERNEL)?;
        cur = p.upstream_bridge();
    }
    chain.reverse();
    Ok(chain)
}

/// The device's ATC, if it may use ATS behind `unit`: the unit takes
/// device-TLB invalidations through its queue, the device has ATS (not as
/// a virtual function, whose ATC is its physical function's) with page
/// aligned requests, the path to its root port is PCI Express all the way,
/// and the firmware allows it ([`UnitScope::ats_allowed`]). ATS is
/// prepared here, enabled on attach to a paging domain.
///
/// [`UnitScope::ats_allowed`]: crate::scope::UnitScope::ats_allowed
fn ats_target(pdev: &pci::Device, unit: &UnitState, chain: &[(u8, u8)]) -> Option<AtcTarget> {
    if !unit.ats_capable() || !pdev.ats_supported() || pdev.is_virtfn() || !pdev.ats_page_aligned()
    {
        return None;
    }
    let mut hops = 0;
    let mut cur = pdev;
    let root_port = loop {
        let Some(bridge) = cur.upstream_bridge() else {
            break None;
        };
        hops += 1;
        match bridge.pcie_type() {
            None | Some(pci::PcieType::PcieToPciBridge) => return None,
            Some(pci::PcieType::RootPort) => break Some(chain.len().checked_sub(hops)?),
            Some(_) => cur = bridge,
        }
    };
    if !unit.scope().ats_allowed(chain, root_port) {
        return None;
    }
    if let Err(e) = pdev.prepare_ats(ATS_PAGE_SHIFT) {
        dev_warn!(pdev.as_ref(), "cannot prepare ATS ({:?}); no ATS\n", e);
        return None;
    }
    let qdep = pdev.ats_queue_depth().ok()?;
    let sid = (u16::from(pdev.bus_number()) << 8) | u16::from(pdev.devfn());
    Some(AtcTarget {
        sid,
        pfsid: if unit.ecap.dit() { sid } else { 0 },
        qdep,
    })
}

#[vtable]
impl Ops for RustVtdIommu {
    type OwnerModule = crate::RustVtd;
    type DeviceData = DeviceData;
    type Blocked = Blocking;
    type Identity = Identity;

    fn probe_device(dev: &Device) -> Result<KBox<DeviceData>> {
        let pdev: &pci::Device = dev.try_into().map_err(|_| ENODEV)?;
        let segment = pdev.domain_nr();
        let chain = pci_chain(pdev)?;
        let unit = registry::unit_for(segment, &chain).ok_or(ENODEV)?;
        // Aliases on other buses of the same segment are translated by
        // the same unit (the bridge that creates them is in its scope).
        let rids = pdev.dma_aliases()?;
        if rids.len() > 1 {
            pr_info!(
                "{:04x}:{:02x}:{:02x}.{}: DMA also as {} requester ID(s), first {:04x}\n",
                segment,
                pdev.bus_number(),
                pdev.devfn() >> 3,
                pdev.devfn() & 7,
                rids.len() - 1,
                rids[1]
            );
        }
        let rmrrs = unit.scope().reserved_regions(&chain)?;
        for (base, limit) in rmrrs.iter() {
            dev_info!(
                dev,
                "reserved memory region {:#x}-{:#x} (RMRR)\n",
                base,
                limit
            );
        }
        let ats = ats_target(pdev, &unit, &chain);
        if let Some(t) = ats {
            dev_info!(dev, "ATS allowed; invalidate queue depth {}\n", t.qdep);
        }
        unit.add_device(dev)?;
        let debugfs = registry::device_debugfs(dev, &unit, pdev.bus_number(), pdev.devfn());
        Ok(KBox::new(
            DeviceData {
                unit,
                bus: pdev.bus_number(),
                devfn: pdev.devfn(),
                rids,
                rmrrs,
                ats,
                _debugfs: debugfs,
            },
            GFP_KERNEL,
        )?)
    }

    fn is_attach_deferred(dev: &Device, data: &DeviceData) -> bool {
        // kdump: a device whose DMA still goes through the crashed
        // kernel's copied entry keeps it until its driver first uses the
        // DMA API, or until another domain is attached (the core clears
        // the deferral then). A device bound already (rust_vtd loaded
        // late) may be doing DMA with addresses of this kernel: it gets
        // its domain now.
        !dev.has_driver() && data.rids.iter().any(|&rid| data.unit.is_copied(rid))
    }

    fn def_domain_type(dev: &Device, data: &DeviceData) -> Option<DefaultDomain> {
        // kdump: a deferred device leaves the crashed kernel's translation
        // at its driver's first DMA-API call (`iommu_deferred_attach()`).
        // Behind an identity domain that call never comes (dma-direct
        // makes none), and the device would DMA to physical addresses
        // through the old tables for good: it gets a translated default
        // domain, whatever `iommu.passthrough` says. The C driver leaves
        // such a device on the old tables.
        Self::is_attach_deferred(dev, data).then_some(DefaultDomain::Dma)
    }

    fn device_iommu(data: &DeviceData) -> &IommuDevice {
        use kernel::iommu::device::HasIommuDevice;
        data.unit.iommu_device()
    }

    fn release_device(dev: &Device, data: KBox<DeviceData>) {
        // (The core attached the release domain, blocking, which turned
        // ATS off already.)
        data.ats_off(dev);
        data.unit.remove_device(dev);
        let (u, b, d, f) = data.name();
        pr_debug!("dmar{}: {:02x}:{:02x}.{}: released\n", u, b, d, f);
    }

    fn domain_alloc_paging_flags(
        _dev: &Device,
        data: &DeviceData,
        flags: u32,
    ) -> Result<NewDomain> {
        if flags != 0 {
            // Nesting parents, dirty tracking and PASIDs come with
            // scalable mode.
            return Err(EOPNOTSUPP);
        }
        VtdDomain::alloc(&data.unit)
    }

    fn hw_info(_dev: &Device, data: &DeviceData) -> HwInfo {
        // No errata flag: rust_vtd has no nesting parent domains, which is all that
        // IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 restricts.
        let unit = data.unit();
        HwInfo::IntelVtd {
            flags: 0,
            cap: u64::from(unit.cap),
            ecap: u64::from(unit.ecap),
        }
    }

    fn capable(_dev: &Device, data: &DeviceData, cap: Capability) -> bool {
        match cap {
            // What the core asks before it enables ATS-dependent features.
            Capability::PciAtsSupported => data.ats.is_some(),
            // As the C driver: legacy-mode remapping never breaks coherency.
            Capability::CacheCoherency => true,
            // Lazy (flush-queue) DMA domains: unmaps may be flushed later.
            Capability::DeferredFlush => true,
            // Forcing snoop (SNP in every leaf) is not implemented yet.
            _ => false,
        }
    }

    fn get_resv_regions(dev: &Device, data: &DeviceData, regions: &mut ResvRegions<'_>) {
        // As the C driver: RMRRs as direct mappings, which the core maps
        // 1:1 in every default domain and which keep the device out of
        // user-space assignment; then the MSI window, so that no IOVA is
        // handed out there.
        for (base, limit) in data.rmrrs.iter() {
            // (The table parser made sure that base <= limit; an RMRR of
            // the whole address space has no length that fits.)
            let Some(len) = (limit - base).checked_add(1) else {
                dev_warn!(
                    dev,
                    "[Firmware Bug]: RMRR {:#x}-{:#x} covers everything; not reported\n",
                    base,
                    limit
                );
                continue;
            };
            let len = len as usize;
            if regions
                .add(*base, len, Prot::READ.union(Prot::WRITE), ResvKind::Direct)
                .is_err()
            {
                dev_warn!(dev, "cannot report RMRR {:#x}: out of memory\n", base);
            }
        }
        if regions
            .add(MSI_WINDOW_START, MSI_WINDOW_LEN, Prot::NONE, ResvKind::Msi)
            .is_err()
        {
            pr_warn!("cannot report the MSI window: out of memory\n");
        }
    }
}

/// The platform driver's data for a bound unit.
///
/// Dropping it (on unbind) unregisters the unit from the IOMMU core, which
/// moves every device to the blocking domain and releases it, then turns
/// translation off, so that devices fall back to direct DMA.
///
/// Fields are released in this order: the registry entry first (no new
/// device finds the unit), then the core registration.
pub(crate) struct Unit {
    entry: Option<registry::Entry>,
    registration: Option<Registration<RustVtdIommu, UnitState>>,
    state: Arc<UnitState>,
}

impl Drop for Unit {
    fn drop(&mut self) {
        let s = &self.state;
        // A driver doing DMA through a translated DMA-API domain holds
        // IOVAs that mean nothing once translation is off: unbind it
        // while the unit still translates, and offer the device a driver
        // again once it does direct DMA.
        let translated = s.translated_bound_devices();
        for dev in translated.iter() {
            dev_info!(
                dev,
                "dmar{}: going away; unbinding the driver of this translated device\n",
                s.index
            );
            dev.release_driver();
        }
        drop(self.entry.take());
        drop(self.registration.take());
        s.shut_down();
        for dev in translated.iter() {
            match dev.attach_driver() {
                Ok(true) => dev_info!(dev, "driver bound again, with direct DMA\n"),
                Ok(false) => {}
                Err(e) => dev_warn!(dev, "binding a driver again failed: {:?}\n", e),
            }
        }
        let (submissions, devtlb) = s.queue_counts();
        pr_info!(
            "dmar{}: released; {} faults reported, {} invalidation batches queued ({} device-TLB invalidations)\n",
            s.index,
            s.fault_count(),
            submissions,
            devtlb
        );
    }
}

impl Unit {
    /// Brings up the unit behind platform device `pdev`, registers it
    /// with the IOMMU core, which gives every device it translates a
    /// domain, then turns translation on.
    pub(crate) fn probe(pdev: &platform::Device<Core<'_>>) -> Result<Self> {
        let state = UnitState::bring_up(pdev)?;
        let index = state.index;
        let name = CString::try_from_fmt(fmt!("dmar{index}"))?;
        // In the registry first: registering probes the unit's devices.
        let entry = registry::Entry::new(&state, &name)?;
        let registration =
            match Registration::register_with_attributes(state.clone(), pdev.as_ref(), &name, &OPS)
            {
                Ok(r) => r,
                Err(e) => {
                    pr_err!(
                        "dmar{}: registration with the IOMMU core failed: {:?}\n",
                        index,
                        e
                    );
                    return Err(e);
                }
            };
        let unit = Unit {
            entry: Some(entry),
            registration: Some(registration),
            state,
        };
        // From here on `unit`'s drop stops the poll.
        unit.state.clone().poll_faults_later();
        // Every device the unit translates has its context entry now.
        unit.state.enable_translation()?;
        pr_info!(
            "dmar{}: translation enabled; {} bus(es) with context tables\n",
            index,
            unit.state.context_tables()
        );
        Ok(unit)
    }
}
