// SPDX-License-Identifier: GPL-2.0

//! Where a PCI device sits: segment, bus, device/function and upstream bridge.
//!
//! IOMMU drivers need this to find which translation unit a device is behind and to compute
//! the requester IDs its DMA carries.

use super::Device;
use crate::{
    bindings,
    device,
    prelude::*, //
};

impl<Ctx: device::DeviceContext> Device<Ctx> {
    /// The PCI segment (domain) number.
    pub fn domain_nr(&self) -> u16 {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`, whose `bus`
        // is valid for as long as the device is.
        let nr = unsafe { bindings::pci_domain_nr((*self.as_raw()).bus) };
        // CAST: Segment numbers are 16 bits wide (ACPI MCFG and DMAR).
        nr as u16
    }

    /// The number of the bus the device is on.
    pub fn bus_number(&self) -> u8 {
        // SAFETY: As in `domain_nr`.
        unsafe { (*(*self.as_raw()).bus).number }
    }

    /// The device and function number, `device << 3 | function`.
    pub fn devfn(&self) -> u8 {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        unsafe { (*self.as_raw()).devfn as u8 }
    }

    /// The bridge above the device, or `None` for a device on a root bus. For a virtual
    /// function, the bridge above its physical function.
    pub fn upstream_bridge(&self) -> Option<&Device> {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        let bridge = unsafe { bindings::pci_upstream_bridge(self.as_raw()) };
        // SAFETY: A device holds a reference to its parent bridge for as long as it exists, so
        // the bridge outlives `&self`; `Device` is a transparent wrapper of `struct pci_dev`.
        (!bridge.is_null()).then(|| unsafe { &*bridge.cast::<Device>() })
    }
}

impl Device {
    /// The requester IDs (`bus << 8 | devfn`) the device's DMA may carry: its own, and the
    /// aliases that quirks and the bridges above it introduce (for example a PCIe-to-PCI
    /// bridge, which takes ownership of the transactions of the devices behind it), in the
    /// order `pci_for_each_dma_alias()` finds them. An IOMMU must translate all of them alike.
    pub fn dma_aliases(&self) -> Result<KVec<u16>> {
        /// # Safety
        ///
        /// Called by `pci_for_each_dma_alias()` with the `data` given below.
        unsafe extern "C" fn add(
            _pdev: *mut bindings::pci_dev,
            alias: u16,
            data: *mut c_void,
        ) -> c_int {
            // SAFETY: `data` is the `Result<KVec<u16>>` below, exclusively ours during the walk.
            let ids = unsafe { &mut *data.cast::<Result<KVec<u16>>>() };
            if let Ok(v) = ids {
                if !v.contains(&alias) {
                    if let Err(e) = v.push(alias, GFP_KERNEL) {
                        *ids = Err(e.into());
                        return 1;
                    }
                }
            }
            0
        }
        let mut ids: Result<KVec<u16>> = Ok(KVec::new());
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`; `add`
        // matches the callback type and `ids` outlives the call.
        unsafe {
            bindings::pci_for_each_dma_alias(self.as_raw(), Some(add), (&raw mut ids).cast())
        };
        ids
    }
}
