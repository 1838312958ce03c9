// SPDX-License-Identifier: GPL-2.0

//! rust_vtd as the IOMMU core sees it: which unit translates a device,
//! and the static blocking and identity domains.

use crate::{
    context::ContextEntry,
    domain::{
        leave_old,
        VtdDomain, //
    },
    unit::UnitState,
};
use kernel::{
    debugfs::{
        Dir,
        Scope, //
    },
    device::Device,
    iommu::{
        device::{
            debugfs_dir,
            IommuDevice, //
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
    pci,
    prelude::*,
    sync::Arc,
};

kernel::sync::global_lock! {
    // SAFETY: Initialized in the module initializer before any unit is
    // created, and so before the IOMMU core can call into the driver.
    pub(crate) unsafe(uninit) static UNITS: Mutex<KVec<Arc<UnitState>>> = KVec::new();
}

kernel::sync::global_lock! {
    // SAFETY: Initialized in the module initializer, with `UNITS`.
    pub(crate) unsafe(uninit) static DEBUGFS: Mutex<Option<Dir>> = None;
}

/// What a device's `domain_translation_struct` debugfs file shows.
struct DebugData {
    unit: Arc<UnitState>,
    bus: u8,
    devfn: u8,
}

fn show_translation(d: &DebugData, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    d.unit.dump_translation(d.bus, d.devfn, f)
}

/// `/sys/kernel/debug/iommu/intel/<device>/domain_translation_struct`, as
/// the C driver has it (the VFIO selftests read it to check leaf sizes).
fn debugfs_for(
    dev: &Device,
    unit: &Arc<UnitState>,
    bus: u8,
    devfn: u8,
) -> Option<Pin<KBox<Scope<DebugData>>>> {
    let intel = DEBUGFS
        .lock()
        .get_or_insert_with(|| debugfs_dir(c"intel"))
        .clone();
    let data = DebugData {
        unit: unit.clone(),
        bus,
        devfn,
    };
    KBox::pin_init(
        intel.scope(data, dev.name(), |d, dir| {
            dir.read_callback_file(c"domain_translation_struct", d, &show_translation)
        }),
        GFP_KERNEL,
    )
    .ok()
}

fn show_qi_stats(unit: &Arc<UnitState>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    unit.show_qi_stats(f)
}

/// `/sys/kernel/debug/iommu/intel/<unit>/qi_stats`: the unit's
/// invalidation queue counters (the C driver traces `qi_submit` instead).
pub(crate) fn unit_debugfs(
    unit: &Arc<UnitState>,
    name: &CStr,
) -> Option<Pin<KBox<Scope<Arc<UnitState>>>>> {
    let intel = DEBUGFS
        .lock()
        .get_or_insert_with(|| debugfs_dir(c"intel"))
        .clone();
    KBox::pin_init(
        intel.scope(unit.clone(), name, |u, dir| {
            dir.read_callback_file(c"qi_stats", u, &show_qi_stats)
        }),
        GFP_KERNEL,
    )
    .ok()
}

/// The driver, for the IOMMU core.
pub(crate) struct RustVtdIommu;

/// What the driver keeps about a device it translates.
pub(crate) struct DeviceData {
    unit: Arc<UnitState>,
    bus: u8,
    devfn: u8,
    /// The requester IDs its DMA carries (its own first, then aliases):
    /// each gets the same context entry.
    rids: KVec<u16>,
    /// Memory the firmware says the device keeps using (RMRRs): first
    /// and last byte.
    rmrrs: KVec<(u64, u64)>,
    /// Its debugfs directory, removed with it.
    _debugfs: Option<Pin<KBox<Scope<DebugData>>>>,
}

impl DeviceData {
    fn name(&self) -> (u32, u8, u8, u8) {
        (self.unit.index, self.bus, self.devfn >> 3, self.devfn & 7)
    }

    /// The unit that translates the device.
    pub(crate) fn unit(&self) -> &Arc<UnitState> {
        &self.unit
    }

    /// Points every requester ID of the device at `entry`. On failure,
    /// the IDs already changed are blocked again.
    pub(crate) fn set_context(&self, entry: ContextEntry) -> Result {
        for (n, rid) in self.rids.iter().enumerate() {
            if let Err(e) = self.unit.set_context((rid >> 8) as u8, *rid as u8, entry) {
                for r in &self.rids[..n] {
                    self.unit.block((r >> 8) as u8, *r as u8);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Blocks every requester ID of the device.
    fn block(&self) {
        for rid in self.rids.iter() {
            self.unit.block((rid >> 8) as u8, *rid as u8);
        }
    }
}

/// Attaching to the blocking domain: the device's context entry is made
/// not present, so it reaches no memory at all.
pub(crate) struct Blocking;

impl AttachOps for Blocking {
    type Iommu = RustVtdIommu;

    fn attach_dev(_dev: &Device, data: &DeviceData, old: Option<DomainRef<'_>>) -> Result {
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

    fn attach_dev(_dev: &Device, data: &DeviceData, old: Option<DomainRef<'_>>) -> Result {
        let entry = data.unit.identity_entry()?;
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
        let unit = {
            let units = UNITS.lock();
            units
                .iter()
                .find(|u| u.scope_covers(segment, &chain))
                .or_else(|| units.iter().find(|u| u.includes_all(segment)))
                .cloned()
                .ok_or(ENODEV)?
        };
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
        let rmrrs = unit.reserved_regions(&chain)?;
        for (base, limit) in rmrrs.iter() {
            dev_info!(
                dev,
                "reserved memory region {:#x}-{:#x} (RMRR)\n",
                base,
                limit
            );
        }
        unit.add_device(dev)?;
        let debugfs = debugfs_for(dev, &unit, pdev.bus_number(), pdev.devfn());
        Ok(KBox::new(
            DeviceData {
                unit,
                bus: pdev.bus_number(),
                devfn: pdev.devfn(),
                rids,
                rmrrs,
                _debugfs: debugfs,
            },
            GFP_KERNEL,
        )?)
    }

    fn device_iommu(data: &DeviceData) -> &IommuDevice {
        use kernel::iommu::device::HasIommuDevice;
        data.unit.iommu_device()
    }

    fn release_device(dev: &Device, data: KBox<DeviceData>) {
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

    fn capable(_dev: &Device, _data: &DeviceData, cap: Capability) -> bool {
        match cap {
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
            let len = (limit - base + 1) as usize;
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
