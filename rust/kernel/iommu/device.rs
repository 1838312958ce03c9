// SPDX-License-Identifier: GPL-2.0

//! IOMMU hardware instances (`struct iommu_device`) and their registration with the core.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use super::ops::{
    Ops,
    OpsTable, //
};
use crate::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    error::to_result,
    prelude::*,
    sync::Arc,
    types::Opaque,
};
use core::{
    marker::PhantomData,
    ptr::null_mut, //
};

/// Storage for one hardware IOMMU instance, embedded in the driver's object for that
/// instance. It means nothing to the core until it is registered.
///
/// # Examples
///
/// ```
/// use kernel::iommu::device::IommuDevice;
///
/// let storage = IommuDevice::new();
/// assert!(!storage.as_raw().is_null());
/// ```
#[repr(transparent)]
pub struct IommuDevice(Opaque<bindings::iommu_device>);

// SAFETY: The core serialises its use of a registered `struct iommu_device`.
unsafe impl Send for IommuDevice {}

// SAFETY: `&IommuDevice` only gives the raw pointer out.
unsafe impl Sync for IommuDevice {}

impl IommuDevice {
    /// Storage for an unregistered instance.
    pub const fn new() -> Self {
        Self(Opaque::zeroed())
    }

    /// The `struct iommu_device` pointer.
    pub fn as_raw(&self) -> *mut bindings::iommu_device {
        self.0.get()
    }
}

impl Default for IommuDevice {
    fn default() -> Self {
        Self::new()
    }
}

/// An object holding an [`IommuDevice`].
pub trait HasIommuDevice: Send + Sync {
    /// The instance's storage.
    fn iommu_device(&self) -> &IommuDevice;
}

/// An IOMMU instance registered in sysfs (`/sys/class/iommu/<name>`) and with the IOMMU core.
///
/// Registering probes every device on the buses the core watches through `T`'s
/// [`Ops::probe_device`]. Dropping the registration unregisters the instance, which releases
/// every device it probed (moving each to the release domain first).
///
/// # Examples
///
/// ```ignore
/// // In a platform driver's probe, for a unit whose state `unit: Arc<MyUnit>` embeds an
/// // `IommuDevice`; `OPS` is the driver's `static OpsTable`.
/// let reg = Registration::register(unit.clone(), pdev.as_ref(), c"dmar0", &OPS)?;
/// // ... every device the unit translates has been probed and attached here ...
/// drop(reg); // Released through the release domain, unregistered.
/// ```
///
/// # Invariants
///
/// `unit.iommu_device()` is added to sysfs and registered with the core with `T`'s operations
/// until `self` is dropped; `unit` keeps its storage alive and in place.
pub struct Registration<T: Ops, U: HasIommuDevice> {
    unit: Arc<U>,
    _ops: PhantomData<T>,
}

impl<T: Ops, U: HasIommuDevice> Registration<T, U> {
    /// Registers the instance held by `unit`, named `name` under `parent`, with `ops`.
    pub fn register(
        unit: Arc<U>,
        parent: &Device<Bound>,
        name: &CStr,
        ops: &'static OpsTable<T>,
    ) -> Result<Self> {
        let raw = unit.iommu_device().as_raw();
        // SAFETY: `raw` points to storage that `unit` keeps alive and in place (an `Arc` never
        // moves its contents); `parent` is a bound device; the format takes one string.
        to_result(unsafe {
            bindings::iommu_device_sysfs_add(
                raw,
                parent.as_raw(),
                null_mut(),
                c"%s".as_char_ptr(),
                name.as_char_ptr(),
            )
        })?;
        // SAFETY: As above; `ops` is `'static`.
        let ret = unsafe { bindings::iommu_device_register(raw, ops.as_raw(), parent.as_raw()) };
        if ret != 0 {
            // SAFETY: The sysfs entry was added above and is not registered.
            unsafe { bindings::iommu_device_sysfs_remove(raw) };
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: Added and registered above.
        Ok(Self {
            unit,
            _ops: PhantomData,
        })
    }

    /// The object holding the instance.
    pub fn unit(&self) -> &Arc<U> {
        &self.unit
    }
}

impl<T: Ops, U: HasIommuDevice> Drop for Registration<T, U> {
    fn drop(&mut self) {
        let raw = self.unit.iommu_device().as_raw();
        // SAFETY: By the type invariant the instance is registered and in sysfs; the core
        // unlinks devices through the sysfs device, so that goes last.
        unsafe {
            bindings::iommu_device_unregister(raw);
            bindings::iommu_device_sysfs_remove(raw);
        }
    }
}
