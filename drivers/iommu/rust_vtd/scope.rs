// SPDX-License-Identifier: GPL-2.0

//! What the firmware's DMAR table assigns a unit: the PCI devices it
//! translates (device scopes, or every device of its segment), the
//! reserved memory regions (RMRRs) those devices must keep reaching, and
//! where ATS may be used (ATSR root ports, SATC devices).

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
    /// The segment's ATSRs: every root port (ALL_PORTS), or those named.
    atsrs: KVec<(bool, KVec<PciScope>)>,
    /// The segment's SATCs: whether the devices require their ATC, and
    /// the devices.
    satcs: KVec<(bool, KVec<PciScope>)>,
}

impl UnitScope {
    /// DRHD `index`'s scope, read again from the DMAR table, and the
    /// reserved memory regions of its segment.
    pub(crate) fn of_drhd(index: usize) -> Result<Self> {
        let table = Table::get(b"DMAR", 1)?;
        let dmar = Dmar::parse(table.as_bytes()).map_err(Error::from)?;
        Self::from_dmar(&dmar, index)
    }

    /// DRHD `index`'s scope in `dmar`, and what else of `dmar` concerns
    /// its segment.
    fn from_dmar(dmar: &Dmar, index: usize) -> Result<Self> {
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
        let mut atsrs = KVec::new();
        for a in dmar.atsrs.iter().filter(|a| a.segment == drhd.segment) {
            atsrs.push((a.all_ports, pci_scopes(&a.scopes)?), GFP_KERNEL)?;
        }
        let mut satcs = KVec::new();
        for a in dmar.satcs.iter().filter(|a| a.segment == drhd.segment) {
            satcs.push((a.atc_required, pci_scopes(&a.scopes)?), GFP_KERNEL)?;
        }
        Ok(Self {
            segment: drhd.segment,
            include_all: drhd.include_all,
            scopes,
            rmrrs,
            atsrs,
            satcs,
        })
    }

    /// Whether the firmware lets the device whose path from the root bus
    /// is `chain` use ATS, in legacy mode (the C driver's
    /// `dmar_ats_supported()`): a device a SATC names, unless it requires
    /// its ATC (a legacy-mode unit then enables it itself); else a device
    /// on a root bus (`root_port` `None`), or one below the root port
    /// whose path is the first `root_port` hops of `chain`, if an ATSR
    /// names that port or covers all of them.
    pub(crate) fn ats_allowed(&self, chain: &[(u8, u8)], root_port: Option<usize>) -> bool {
        if let Some((required, _)) = self
            .satcs
            .iter()
            .find(|(_, scopes)| scopes.iter().any(|s| s.covers(chain)))
        {
            return !*required;
        }
        let Some(n) = root_port else {
            return true;
        };
        let Some(port) = chain.get(..n) else {
            return false;
        };
        self.atsrs
            .iter()
            .any(|(all, scopes)| *all || scopes.iter().any(|s| s.covers(port)))
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

#[kunit_tests(rust_vtd_scope)]
mod tests {
    use super::*;

    /// QEMU 11.1's DMAR table for `-device intel-iommu,device-iotlb=on`
    /// (one INCLUDE_PCI_ALL unit, an ATSR with ALL_PORTS set).
    const QEMU_DMAR: &[u8] = include_bytes!("testdata/qemu-dmar-devtlb.bin");

    #[test]
    fn ats_allowed_where_the_firmware_says() -> Result {
        let dmar = Dmar::parse(QEMU_DMAR).map_err(Error::from)?;
        let mut scope = UnitScope::from_dmar(&dmar, 0)?;
        // A function below root port 00:01.0 (bus 1), and one on the
        // root bus: ALL_PORTS allows both.
        let below = [(0, 1 << 3), (1, 0)];
        assert!(scope.ats_allowed(&below, Some(1)));
        assert!(scope.ats_allowed(&[(0, 0x10 << 3)], None));
        // (A root port length past the path is refused, not followed.)
        assert!(!scope.ats_allowed(&below, Some(3)));
        // An ATSR naming only root port 00:02.0 allows nothing below 00:01.0.
        let port2 = pci_scope_of(0, &[2 << 3], true)?;
        scope.atsrs = KVec::new();
        scope.atsrs.push((false, port2), GFP_KERNEL)?;
        assert!(!scope.ats_allowed(&below, Some(1)));
        assert!(scope.ats_allowed(&[(0, 2 << 3), (2, 0)], Some(1)));
        // Without an ATSR, only functions on the root bus.
        scope.atsrs = KVec::new();
        assert!(!scope.ats_allowed(&below, Some(1)));
        assert!(scope.ats_allowed(&[(0, 0x10 << 3)], None));
        // A SATC device: allowed unless it requires its ATC (legacy mode
        // leaves that to the unit), whatever the ATSRs say.
        // (A path from the root bus: root port 00:01.0, then 00.0.)
        let dev = pci_scope_of(0, &[1 << 3, 0], false)?;
        scope.satcs.push((false, dev), GFP_KERNEL)?;
        assert!(scope.ats_allowed(&below, Some(1)));
        scope.satcs[0].0 = true;
        assert!(!scope.ats_allowed(&below, Some(1)));
        Ok(())
    }

    /// One PCI scope: a path of devfns from `start_bus`.
    fn pci_scope_of(start_bus: u8, devfns: &[u8], bridge: bool) -> Result<KVec<PciScope>> {
        let mut path = KVec::new();
        path.extend_from_slice(devfns, GFP_KERNEL)?;
        let mut v = KVec::new();
        v.push(
            PciScope {
                bridge,
                start_bus,
                path,
            },
            GFP_KERNEL,
        )?;
        Ok(v)
    }
}
