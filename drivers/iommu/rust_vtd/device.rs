// SPDX-License-Identifier: GPL-2.0

//! A device rust_vtd translates, as the IOMMU core hands it over: its
//! unit, its requester IDs (DMA aliases included) and what the firmware
//! reserved for it.

use crate::{
    context::ContextEntry,
    invalidation::AtcTarget,
    registry::DebugData,
    unit::UnitState, //
};
use kernel::{
    debugfs::Scope,
    device::Device,
    pci,
    prelude::*,
    sync::Arc, //
};

/// The page size ATS translations are made for (the Smallest Translation
/// Unit): 4 KiB.
pub(crate) const ATS_PAGE_SHIFT: u32 = 12;

/// The driver, for the IOMMU core.
pub(crate) struct RustVtdIommu;

/// What the driver keeps about a device it translates.
pub(crate) struct DeviceData {
    pub(crate) unit: Arc<UnitState>,
    pub(crate) bus: u8,
    pub(crate) devfn: u8,
    /// The requester IDs its DMA carries (its own first, then aliases):
    /// each gets the same context entry.
    pub(crate) rids: KVec<u16>,
    /// Memory the firmware says the device keeps using (RMRRs): first
    /// and last byte.
    pub(crate) rmrrs: KVec<(u64, u64)>,
    /// The device's ATC, if it may use ATS (the unit, the firmware and the
    /// device all allow it): ATS is on while the device is attached to a
    /// paging domain.
    pub(crate) ats: Option<AtcTarget>,
    /// Its debugfs directory, removed with it.
    pub(crate) _debugfs: Option<Pin<KBox<Scope<DebugData>>>>,
}

impl DeviceData {
    /// Unit index, bus, device and function, for messages.
    pub(crate) fn name(&self) -> (u32, u8, u8, u8) {
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

    /// Turns the device's ATS off, if it is on, and invalidates its whole
    /// ATC: from here on it uses no translation it cached. Called before
    /// its context entries change.
    pub(crate) fn ats_off(&self, dev: &Device) {
        let Some(t) = self.ats else {
            return;
        };
        let Ok(pdev) = <&pci::Device>::try_from(dev) else {
            return;
        };
        if !pdev.ats_enabled() {
            return;
        }
        pdev.disable_ats();
        if self.unit.flush_atc(t).is_err() {
            dev_err!(
                dev,
                "ATS disabled, but its ATC invalidation was not confirmed\n"
            );
        }
    }

    /// Turns the device's ATS on, if it may use it: called once its
    /// context entries let it ask for translations and the domain's
    /// flushes reach its ATC.
    pub(crate) fn ats_on(&self, dev: &Device) {
        if self.ats.is_none() {
            return;
        }
        let Ok(pdev) = <&pci::Device>::try_from(dev) else {
            return;
        };
        if pdev.ats_enabled() {
            return;
        }
        if let Err(e) = pdev.enable_ats(ATS_PAGE_SHIFT) {
            dev_warn!(dev, "enabling ATS failed ({:?}); it works without\n", e);
        }
    }

    /// Blocks every requester ID of the device.
    pub(crate) fn block(&self) {
        for rid in self.rids.iter() {
            self.unit.block((rid >> 8) as u8, *rid as u8);
        }
    }
}
