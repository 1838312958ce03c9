// SPDX-License-Identifier: GPL-2.0

//! A device rust_vtd translates, as the IOMMU core hands it over: its
//! unit, its requester IDs (DMA aliases included) and what the firmware
//! reserved for it.

use crate::{context::ContextEntry, registry::DebugData, unit::UnitState};
use kernel::{
    debugfs::Scope,
    prelude::*,
    sync::Arc, //
};

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

    /// Blocks every requester ID of the device.
    pub(crate) fn block(&self) {
        for rid in self.rids.iter() {
            self.unit.block((rid >> 8) as u8, *rid as u8);
        }
    }
}
