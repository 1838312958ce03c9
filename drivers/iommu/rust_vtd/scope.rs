// SPDX-License-Identifier: GPL-2.0

//! What the firmware's DMAR table assigns a unit: the PCI devices it
//! translates (device scopes, or every device of its segment) and the
//! reserved memory regions (RMRRs) those devices must keep reaching.

use crate::dmar::{
    DeviceScope,
    Dmar,
    ScopeKind, //
};
use kernel::{
    acpi::table::Table,
    prelude::*, //
};

/// A PCI device scope of the unit, as a path of device/function hops from
/// a start bus.
struct PciScope {
    bridge: bool,
    start_bus: u8,
    path: KVec<u8>,
}

impl PciScope {
    /// Whether the device whose path from the root bus is `chain` is in
    /// this scope: the scope's device itself, or below it for a bridge.
    fn covers(&self, chain: &[(u8, u8)]) -> bool {
        let n = self.path.len();
        chain.len() >= n
            && (self.bridge || chain.len() == n)
            && chain[0].0 == self.start_bus
            && chain.iter().zip(self.path.iter()).all(|(c, d)| c.1 == *d)
    }
}

/// A reserved memory region (RMRR) of the unit's segment: memory the
/// devices in its scope must keep reaching 1:1, inclusive bounds.
struct ReservedRegion {
    base: u64,
    limit: u64,
    scopes: KVec<PciScope>,
}

/// The scope of one unit (DRHD).
pub(crate) struct UnitScope {
    /// PCI segment.
    pub(crate) segment: u16,
    /// INCLUDE_PCI_ALL: every device of the segment no other unit names.
    include_all: bool,
    scopes: KVec<PciScope>,
    rmrrs: KVec<ReservedRegion>,
}

impl UnitScope {
    /// DRHD `index`'s scope, read again from the DMAR table, and the
    /// reserved memory regions of its segment.
    pub(crate) fn of_drhd(index: usize) -> Result<Self> {
        let table = Table::get(b"DMAR", 1)?;
        let dmar = Dmar::parse(table.as_bytes()).map_err(Error::from)?;
        let drhd = dmar.units.get(index).ok_or(ENODEV)?;
        let scopes = pci_scopes(&drhd.scopes)?;
        let mut rmrrs = KVec::new();
        for r in dmar.rmrrs.iter().filter(|r| r.segment == drhd.segment) {
            rmrrs.push(
                ReservedRegion {
                    base: r.base,
                    limit: r.limit,
                    scopes: pci_scopes(&r.scopes)?,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            segment: drhd.segment,
            include_all: drhd.include_all,
            scopes,
            rmrrs,
        })
    }

    /// Whether one of the unit's device scopes names the device whose
    /// path from the root bus is `chain` (bus, devfn of each hop, the
    /// device last): an endpoint scope naming it exactly, or a bridge scope
    /// naming it or a bridge above it.
    pub(crate) fn covers(&self, segment: u16, chain: &[(u8, u8)]) -> bool {
        segment == self.segment && self.scopes.iter().any(|s| s.covers(chain))
    }

    /// Whether this is the catch-all unit of `segment`.
    pub(crate) fn includes_all(&self, segment: u16) -> bool {
        self.include_all && self.segment == segment
    }

    /// The reserved memory regions (first and last byte) of the device
    /// whose path from the root bus is `chain`.
    pub(crate) fn reserved_regions(&self, chain: &[(u8, u8)]) -> Result<KVec<(u64, u64)>> {
        let mut out = KVec::new();
        for r in self.rmrrs.iter() {
            if r.scopes.iter().any(|s| s.covers(chain)) {
                out.push((r.base, r.limit), GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// Every reserved memory region of the segment (first and last byte).
    pub(crate) fn rmrrs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.rmrrs.iter().map(|r| (r.base, r.limit))
    }
}

/// The PCI scopes in `scopes`.
fn pci_scopes(scopes: &[DeviceScope]) -> Result<KVec<PciScope>> {
    let mut out = KVec::new();
    for s in scopes.iter() {
        let bridge = match s.kind {
            ScopeKind::Endpoint => false,
            ScopeKind::Bridge => true,
            _ => continue,
        };
        out.push(pci_scope(s, bridge)?, GFP_KERNEL)?;
    }
    Ok(out)
}

fn pci_scope(s: &DeviceScope, bridge: bool) -> Result<PciScope> {
    let mut path = KVec::with_capacity(s.path.len(), GFP_KERNEL)?;
    for hop in s.path.iter() {
        path.push((hop.device << 3) | (hop.function & 7), GFP_KERNEL)?;
    }
    Ok(PciScope {
        bridge,
        start_bus: s.start_bus,
        path,
    })
}
