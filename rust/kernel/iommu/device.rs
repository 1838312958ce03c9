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
    str::RawFormatter,
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
///
/// # Safety
///
/// `OFFSET` is the byte offset of an [`IommuDevice`] field within `Self`.
pub unsafe trait HasIommuDevice: Send + Sync + Sized {
    /// Where the [`IommuDevice`] field is, as `core::mem::offset_of!` gives it.
    const OFFSET: usize;

    /// The instance's storage.
    fn iommu_device(&self) -> &IommuDevice {
        // SAFETY: By the trait's safety requirement `OFFSET` locates an `IommuDevice` in `self`.
        unsafe {
            &*core::ptr::from_ref(self)
                .byte_add(Self::OFFSET)
                .cast::<IommuDevice>()
        }
    }
}

/// A read-only sysfs attribute of an IOMMU instance, shown by [`Attributes::show`].
#[repr(transparent)]
pub struct Attribute<T: Attributes>(bindings::device_attribute, PhantomData<T>);

// SAFETY: The attribute is read-only after construction and holds only a `'static` name and a
// function pointer.
unsafe impl<T: Attributes> Sync for Attribute<T> {}

impl<T: Attributes> Attribute<T> {
    /// A read-only (0444) attribute called `name`.
    pub const fn new(name: &'static CStr) -> Self {
        Self(
            bindings::device_attribute {
                // With lockdep, the rest holds the lock class key: a null key makes sysfs
                // use the attribute's own static `skey`, as for C attributes defined statically.
                // Without lockdep there is no rest.
                #[allow(clippy::needless_update)]
                attr: bindings::attribute {
                    name: name.to_bytes_with_nul().as_ptr(),
                    mode: 0o444,
                    ..pin_init::zeroed()
                },
                __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 {
                    show: Some(Self::show),
                },
                ..pin_init::zeroed()
            },
            PhantomData,
        )
    }

    /// # Safety
    ///
    /// Called by sysfs for an attribute of the group a [`Registration`] of `T` added: `dev` is the
    /// instance's sysfs device, whose driver data is the `IommuDevice` embedded in a live `T`,
    /// and `buf` is a page.
    unsafe extern "C" fn show(
        dev: *mut bindings::device,
        attr: *mut bindings::device_attribute,
        buf: *mut c_char,
    ) -> isize {
        // SAFETY: `iommu_device_sysfs_add()` set the driver data to the `struct iommu_device`, which
        // by `HasIommuDevice` is `T::OFFSET` bytes into a `T`; sysfs removal waits for this call,
        // and the registration removes the sysfs device before letting go of the `T`.
        let unit = unsafe {
            &*bindings::dev_get_drvdata(dev)
                .cast::<u8>()
                .sub(T::OFFSET)
                .cast::<T>()
        };
        // SAFETY: `attr` is one of `T`'s attributes, whose names are `'static` C strings.
        let name = unsafe { CStr::from_char_ptr((*attr).attr.name) };
        // SAFETY: sysfs hands `show` a buffer of one page.
        let mut out = unsafe { RawFormatter::from_buffer(buf.cast(), crate::page::PAGE_SIZE) };
        match unit.show(name, &mut out) {
            Ok(()) => out.bytes_written() as isize,
            Err(e) => e.to_errno() as isize,
        }
    }
}

/// Sysfs attributes shown in a named group of each registered instance's directory
/// (`/sys/class/iommu/<name>/<GROUP>/`).
pub trait Attributes: HasIommuDevice + 'static {
    /// The group's directory name.
    const GROUP: &'static CStr;

    /// The attributes.
    const ATTRIBUTES: &'static [Attribute<Self>];

    /// Writes the value of attribute `name` to `out`.
    fn show(&self, name: &CStr, out: &mut RawFormatter) -> Result;
}

/// The C arrays a registration hands to sysfs for `T`'s attribute group.
struct AttributeGroup {
    _attrs: KVec<*mut bindings::attribute>,
    _group: KBox<bindings::attribute_group>,
    groups: KBox<[*const bindings::attribute_group; 2]>,
}

// SAFETY: The arrays are only read, by sysfs, while the registration that owns them exists.
unsafe impl Send for AttributeGroup {}
// SAFETY: As above.
unsafe impl Sync for AttributeGroup {}

impl AttributeGroup {
    fn new<T: Attributes>() -> Result<Self> {
        let mut attrs = KVec::with_capacity(T::ATTRIBUTES.len() + 1, GFP_KERNEL)?;
        for a in T::ATTRIBUTES {
            // CAST: sysfs takes non-const pointers but only reads static attributes.
            attrs.push((&raw const a.0.attr).cast_mut(), GFP_KERNEL)?;
        }
        attrs.push(null_mut(), GFP_KERNEL)?;
        let group = KBox::new(
            bindings::attribute_group {
                name: T::GROUP.as_char_ptr(),
                __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
                    attrs: attrs.as_mut_ptr(),
                },
                ..pin_init::zeroed()
            },
            GFP_KERNEL,
        )?;
        let groups = KBox::new([&raw const *group, core::ptr::null()], GFP_KERNEL)?;
        Ok(Self {
            _attrs: attrs,
            _group: group,
            groups,
        })
    }
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
    _attrs: Option<AttributeGroup>,
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
        Self::register_inner(unit, parent, name, ops, None)
    }

    /// Registers like [`Registration::register`], with `U`'s sysfs attribute group.
    pub fn register_with_attributes(
        unit: Arc<U>,
        parent: &Device<Bound>,
        name: &CStr,
        ops: &'static OpsTable<T>,
    ) -> Result<Self>
    where
        U: Attributes,
    {
        let attrs = AttributeGroup::new::<U>()?;
        Self::register_inner(unit, parent, name, ops, Some(attrs))
    }

    fn register_inner(
        unit: Arc<U>,
        parent: &Device<Bound>,
        name: &CStr,
        ops: &'static OpsTable<T>,
        attrs: Option<AttributeGroup>,
    ) -> Result<Self> {
        let groups = attrs
            .as_ref()
            .map_or(null_mut(), |a| a.groups.as_ptr().cast_mut());
        let raw = unit.iommu_device().as_raw();
        // SAFETY: `raw` points to storage that `unit` keeps alive and in place (an `Arc` never
        // moves its contents); `parent` is a bound device; the format takes one string.
        to_result(unsafe {
            bindings::iommu_device_sysfs_add(
                raw,
                parent.as_raw(),
                groups,
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
            _attrs: attrs,
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

/// Creates directory `name` under the IOMMU core's debugfs directory (`/sys/kernel/debug/iommu/`),
/// where IOMMU drivers keep their debug files. Without `CONFIG_IOMMU_DEBUGFS` the directory is
/// inert: files created in it do not appear.
///
/// # Examples
///
/// ```
/// use kernel::iommu::device::debugfs_dir;
///
/// let dir = debugfs_dir(c"rust_iommu_example");
/// let _child = dir.subdir(c"unit0");
/// ```
pub fn debugfs_dir(name: &CStr) -> crate::debugfs::Dir {
    #[cfg(CONFIG_IOMMU_DEBUGFS)]
    // SAFETY: `iommu_debugfs_dir` is set by a core initcall, before any module can run, and is
    // never removed; it is only read here.
    let parent = unsafe { bindings::iommu_debugfs_dir };
    #[cfg(not(CONFIG_IOMMU_DEBUGFS))]
    let parent = core::ptr::null_mut();
    // SAFETY: `parent` is NULL, an error pointer or a directory that is never removed.
    unsafe { crate::debugfs::Dir::subdir_of_raw(parent, name) }
}
