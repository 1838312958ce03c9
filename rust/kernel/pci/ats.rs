// SPDX-License-Identifier: GPL-2.0

//! PCI Express Address Translation Services (ATS).
//!
//! A function with ATS asks the IOMMU for translations ahead of its DMA and keeps them in a
//! cache of its own, the Address Translation Cache (ATC; VT-d calls it the device-TLB). An IOMMU
//! driver prepares ATS when it probes the function, enables it once the function's translation is
//! in place, invalidates the ATC whenever it invalidates its own IOTLB for that translation, and
//! disables ATS before the translation goes away.
//!
//! The caller serialises enabling and disabling for a function (an IOMMU driver does it from
//! the core's attach and release callbacks, under the core's group lock).
//!
//! C header: [`include/linux/pci-ats.h`](srctree/include/linux/pci-ats.h)

use super::Device;
use crate::{
    bindings,
    device,
    error::to_result,
    prelude::*, //
};

/// The kind of PCI Express function a device is (`PCI_EXP_TYPE_*`), from its PCI Express
/// capability.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PcieType {
    /// A root port of a root complex.
    RootPort,
    /// A PCI Express to PCI/PCI-X bridge: the functions behind it are conventional PCI.
    PcieToPciBridge,
    /// Any other type, with its `PCI_EXP_TYPE_*` value.
    Other(u8),
}

impl<Ctx: device::DeviceContext> Device<Ctx> {
    /// The device's PCI Express type, or `None` for a conventional PCI device.
    pub fn pcie_type(&self) -> Option<PcieType> {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`; the
        // capability offset and flags are read once, at enumeration.
        let (cap, flags) = unsafe { ((*self.as_raw()).pcie_cap, (*self.as_raw()).pcie_flags_reg) };
        if cap == 0 {
            return None;
        }
        // CAST: `PCI_EXP_FLAGS_TYPE` is bits 7:4.
        let t = ((u32::from(flags) & bindings::PCI_EXP_FLAGS_TYPE) >> 4) as u8;
        Some(match u32::from(t) {
            bindings::PCI_EXP_TYPE_ROOT_PORT => PcieType::RootPort,
            bindings::PCI_EXP_TYPE_PCI_BRIDGE => PcieType::PcieToPciBridge,
            _ => PcieType::Other(t),
        })
    }

    /// Whether the device is a virtual function of an SR-IOV device.
    pub fn is_virtfn(&self) -> bool {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        unsafe { (*self.as_raw()).is_virtfn() != 0 }
    }

    /// Whether the device has an ATS capability the kernel lets an IOMMU use (not on a device
    /// marked untrusted).
    pub fn ats_supported(&self) -> bool {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        unsafe { bindings::pci_ats_supported(self.as_raw()) }
    }

    /// Sets the Smallest Translation Unit to `1 << page_shift` bytes without enabling ATS, so
    /// that a later [`Device::enable_ats`] with the same size cannot fail on it (an IOMMU
    /// driver calls this when it probes the device).
    pub fn prepare_ats(&self, page_shift: u32) -> Result {
        let ps = c_int::try_from(page_shift).map_err(|_| EINVAL)?;
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        to_result(unsafe { bindings::pci_prepare_ats(self.as_raw(), ps) })
    }

    /// Enables ATS with a Smallest Translation Unit of `1 << page_shift` bytes: from here on the
    /// device may cache translations, and every invalidation of its translations must reach its
    /// ATC as well.
    pub fn enable_ats(&self, page_shift: u32) -> Result {
        let ps = c_int::try_from(page_shift).map_err(|_| EINVAL)?;
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        to_result(unsafe { bindings::pci_enable_ats(self.as_raw(), ps) })
    }

    /// Whether ATS is enabled.
    pub fn ats_enabled(&self) -> bool {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`; the flag is
        // written only by `pci_enable_ats()` and `pci_disable_ats()`, which the caller
        // serialises with this (module documentation).
        unsafe { (*self.as_raw()).ats_enabled() != 0 }
    }

    /// Disables ATS, if it is enabled: the device no longer caches translations. Its ATC may
    /// still hold entries until it is invalidated.
    pub fn disable_ats(&self) {
        if self.ats_enabled() {
            // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`, whose
            // ATS is enabled (checked above; the caller serialises enabling and disabling).
            unsafe { bindings::pci_disable_ats(self.as_raw()) }
        }
    }

    /// The number of invalidation requests the device's ATC accepts at once (1 to 32), or 0
    /// if it shares its queue with other functions (a virtual function).
    pub fn ats_queue_depth(&self) -> Result<u8> {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        let depth = unsafe { bindings::pci_ats_queue_depth(self.as_raw()) };
        to_result(depth)?;
        u8::try_from(depth).map_err(|_| EINVAL)
    }

    /// Whether the device's untranslated addresses are always 4 KiB aligned (the ATS capability's
    /// Page Aligned Request bit). The VT-d drivers enable ATS only then.
    pub fn ats_page_aligned(&self) -> bool {
        // SAFETY: By the type invariant `self.as_raw()` is a valid `struct pci_dev`.
        unsafe { bindings::pci_ats_page_aligned(self.as_raw()) != 0 }
    }
}
