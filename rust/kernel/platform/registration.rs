// SPDX-License-Identifier: GPL-2.0

//! Creating platform devices.
//!
//! C header: [`include/linux/platform_device.h`](srctree/include/linux/platform_device.h)

use crate::{
    bindings,
    error::from_err_ptr,
    io::{
        PhysAddr,
        ResourceSize, //
    },
    prelude::*,
};
use core::ptr::NonNull;

/// A platform device created by Rust code, with one memory resource.
///
/// Dropping the registration unregisters the device, which first unbinds its driver, if any.
/// This is how drivers for hardware that firmware describes in a table of its own (rather than
/// in ACPI namespace or a device tree) give each unit a device of its own to bind to.
///
/// # Invariants
///
/// `self.0` points to a platform device registered by `platform_device_register_full()` and
/// not yet unregistered.
///
/// # Examples
///
/// ```
/// use kernel::platform::DeviceRegistration;
///
/// // A device with no driver: registering and dropping it is all there is.
/// let dev = DeviceRegistration::new_mem(c"rust_doctest_pdev", Some(7), 0x1000_0000, 0x1000)?;
/// assert!(!dev.is_bound());
/// drop(dev);
/// # Ok::<(), Error>(())
/// ```
pub struct DeviceRegistration(NonNull<bindings::platform_device>);

// SAFETY: A registered platform device may be unregistered from any thread.
unsafe impl Send for DeviceRegistration {}

// SAFETY: `&DeviceRegistration` only allows querying the device, which is safe from any thread.
unsafe impl Sync for DeviceRegistration {}

impl DeviceRegistration {
    /// Creates and registers the platform device `name.id` (or `name` when `id` is `None`) with
    /// one `IORESOURCE_MEM` resource of `size` bytes at `start`.
    ///
    /// The resource is named after the device, as `/proc/iomem` shows once a driver claims it.
    /// A driver with the same name binds to it during this call.
    pub fn new_mem(
        name: &CStr,
        id: Option<u32>,
        start: PhysAddr,
        size: ResourceSize,
    ) -> Result<Self> {
        let end = size
            .checked_sub(1)
            .and_then(|s| start.checked_add(s))
            .ok_or(EINVAL)?;
        let id = match id {
            Some(id) => i32::try_from(id)?,
            None => bindings::PLATFORM_DEVID_NONE,
        };
        let res = bindings::resource {
            start,
            end,
            // CAST: `IORESOURCE_MEM` is a flag bit, which fits any width.
            flags: bindings::IORESOURCE_MEM as c_ulong,
            ..pin_init::zeroed()
        };
        let info = bindings::platform_device_info {
            name: name.as_char_ptr(),
            id,
            res: &res,
            num_res: 1,
            ..pin_init::zeroed()
        };
        // SAFETY: `info` is valid for the call; the C side copies `name` and the resource array
        // before it returns, and fills in the resource's NULL name with the device's own.
        let pdev = from_err_ptr(unsafe { bindings::platform_device_register_full(&info) })?;
        // INVARIANT: The device was registered successfully.
        Ok(Self(NonNull::new(pdev).ok_or(ENOMEM)?))
    }

    /// Returns whether a driver is bound to the device now.
    pub fn is_bound(&self) -> bool {
        // SAFETY: By the type invariant the device is registered, so its `dev` is valid.
        unsafe { bindings::device_is_bound(&raw mut (*self.0.as_ptr()).dev) }
    }
}

impl Drop for DeviceRegistration {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the device is registered and this is the only place that
        // unregisters it.
        unsafe { bindings::platform_device_unregister(self.0.as_ptr()) };
    }
}
