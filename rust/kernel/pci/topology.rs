// SPDX-License-Identifier: GPL-2.0

//! Where a PCI device sits: segment, bus, device/function and upstream bridge.
//!
//! IOMMU drivers need this to find which translation unit a device is behind and to compute
//! the requester IDs its DMA carries.

use super::Device;
use crate::{
    bindings,
    device, //
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
