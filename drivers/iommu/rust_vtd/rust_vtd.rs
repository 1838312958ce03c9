// SPDX-License-Identifier: GPL-2.0

//! rust_vtd: a driver for Intel VT-d DMA-remapping hardware.
//!
//! On load the driver reads the ACPI DMAR table, creates a platform device
//! `rust_vtd.N` for each remapping unit (DRHD) with the unit's register set
//! as its memory resource, and binds to those devices. Binding a unit maps
//! and identifies it, registers it with the IOMMU core (which gives every
//! device it translates a domain) and turns translation on; loading fails
//! unless every unit comes up.
//!
//! The core holds a reference on the module for every device it probed, so
//! units are taken down first by unbinding them
//! (`/sys/bus/platform/drivers/rust_vtd/unbind`), which releases their
//! devices and turns translation off; then the module can be removed.
//!
//! See `Documentation/iommu/rust_vtd.rst`.

use kernel::{
    acpi::table::Table,
    device::Core,
    driver,
    platform,
    prelude::*, //
};

mod context;
mod device;
mod dmar;
mod domain;
mod domain_id;
mod fault;
mod invalidation;
mod iommu;
mod kdump;
mod pagetable;
mod registry;
mod regs;
mod scope;
mod unit;

use dmar::{
    Dmar,
    ScopeKind, //
};
use iommu::Unit;

module! {
    type: RustVtd,
    name: "rust_vtd",
    authors: ["rust_vtd developers"],
    description: "Intel VT-d DMA remapping driver written in Rust",
    license: "GPL v2",
    // generic_pt's page-table operations (kernel::iommu::pt).
    imports_ns: ["GENERIC_PT_IOMMU"],
    params: {
        identity_page_tables: bool {
            default: false,
            description: "Give identity domains a 1:1 page table of system RAM even where the unit can pass DMA through (ECAP.PT); units without pass-through always get one",
        },
        queued_invalidation: bool {
            default: true,
            description: "Invalidate through the unit's invalidation queue where it has one (ECAP.QI); false makes every invalidation go through the registers (CCMD, IOTLB), as on units without a queue",
        },
    },
}

/// Whether identity domains must use 1:1 page tables (module parameter).
pub(crate) fn identity_page_tables() -> bool {
    module_parameters::identity_page_tables.value()
}

/// Whether units with an invalidation queue use it (module parameter).
pub(crate) fn queued_invalidation() -> bool {
    module_parameters::queued_invalidation.value()
}

/// The platform driver that binds to each remapping unit's device.
struct UnitDriver;

impl platform::Driver for UnitDriver {
    type IdInfo = ();
    type Data<'bound> = Unit;

    fn probe<'bound>(
        pdev: &'bound platform::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        Unit::probe(pdev)
    }
}

/// The module: one platform device per remapping unit, and their driver.
///
/// Fields drop in order: the unit devices go first, which unbinds them,
/// then the driver.
#[pin_data]
struct RustVtd {
    units: KVec<platform::DeviceRegistration>,
    #[pin]
    driver: driver::Registration<platform::Adapter<UnitDriver>>,
}

impl kernel::InPlaceModule for RustVtd {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // SAFETY: Called once, before any unit exists.
        unsafe { registry::init() };
        // SAFETY: Called once, before any page table exists.
        unsafe { pagetable::init() };
        try_pin_init!(Self {
            driver <- driver::Registration::new(c"rust_vtd", module),
            units: create_units()?,
        })
    }
}

fn scope_name(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Endpoint => "endpoint",
        ScopeKind::Bridge => "bridge",
        ScopeKind::IoApic => "ioapic",
        ScopeKind::Hpet => "hpet",
        ScopeKind::Namespace => "acpi",
    }
}

/// Reads the DMAR table and logs what it describes.
fn read_dmar() -> Result<Dmar> {
    let table = Table::get(b"DMAR", 1).inspect_err(|_| {
        pr_err!("no ACPI DMAR table: this machine has no VT-d remapping hardware to drive\n");
    })?;
    let dmar = Dmar::parse(table.as_bytes()).map_err(|e| {
        pr_err!("[Firmware Bug]: DMAR table rejected: {}\n", e);
        Error::from(e)
    })?;
    if !dmar.checksum_ok {
        pr_warn!("[Firmware Bug]: DMAR table checksum is wrong; using it anyway\n");
    }
    pr_info!(
        "DMAR table: host address width {}, flags {:#x}, {} unit(s), {} RMRR, {} ATSR, {} SATC, {} skipped\n",
        dmar.haw,
        dmar.flags,
        dmar.units.len(),
        dmar.rmrrs.len(),
        dmar.atsrs.len(),
        dmar.satcs.len(),
        dmar.skipped
    );
    for (i, u) in dmar.units.iter().enumerate() {
        pr_info!(
            "dmar{}: DRHD at table offset {:#x}: segment {} registers {:#x} size {:#x}{}\n",
            i,
            u.offset,
            u.segment,
            u.reg_base,
            u.reg_size,
            if u.include_all {
                " INCLUDE_PCI_ALL"
            } else {
                ""
            }
        );
        for s in u.scopes.iter() {
            let t = s.target();
            pr_info!(
                "dmar{}:   scope {} id {} start bus {:02x} path {} hop(s), last {:02x}.{}\n",
                i,
                scope_name(s.kind),
                s.enumeration_id,
                s.start_bus,
                s.path.len(),
                t.device,
                t.function
            );
        }
    }
    for r in dmar.rmrrs.iter() {
        pr_info!(
            "RMRR [{:#x}-{:#x}] segment {}, {} device(s)\n",
            r.base,
            r.limit,
            r.segment,
            r.scopes.len()
        );
    }
    for a in dmar.atsrs.iter() {
        pr_info!(
            "ATSR segment {}{}, {} root port(s)\n",
            a.segment,
            if a.all_ports { " ALL_PORTS" } else { "" },
            a.scopes.len()
        );
    }
    for s in dmar.satcs.iter() {
        pr_info!(
            "SATC segment {}{}, {} device(s)\n",
            s.segment,
            if s.atc_required { " ATC_REQUIRED" } else { "" },
            s.scopes.len()
        );
    }
    Ok(dmar)
}

/// Creates a platform device for every unit; each binds as it is created.
fn create_units() -> Result<KVec<platform::DeviceRegistration>> {
    let dmar = read_dmar()?;
    let mut units = KVec::with_capacity(dmar.units.len(), GFP_KERNEL)?;
    for (i, u) in dmar.units.iter().enumerate() {
        let index = u32::try_from(i)?;
        let dev = platform::DeviceRegistration::new_mem(
            c"rust_vtd",
            Some(index),
            u.reg_base,
            u.reg_size,
        )?;
        if !dev.is_bound() {
            pr_err!(
                "dmar{}: the unit at {:#x} could not be brought up; not loading\n",
                i,
                u.reg_base
            );
            return Err(ENODEV);
        }
        units.push(dev, GFP_KERNEL)?;
    }
    pr_info!("{} remapping unit(s) ready\n", units.len());
    Ok(units)
}
