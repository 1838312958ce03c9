// SPDX-License-Identifier: GPL-2.0

//! IOMMU drivers: the operations (`struct iommu_ops`) a driver gives the IOMMU core.
//!
//! A driver implements [`Ops`] and builds one [`OpsTable`] in a `static`; every hardware
//! instance it registers (see [`super::device::Registration`]) points to that table, so that
//! the core can tell the driver's domains and devices apart from other drivers'.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use super::{
    device::IommuDevice,
    domain::{
        AttachOps,
        StaticDomain, //
    },
    paging::{
        new_domain_into_raw,
        NewDomain,
        Prot, //
    },
};
use crate::{
    bindings,
    device::Device,
    error::{
        from_err_ptr,
        VTABLE_DEFAULT_ERROR, //
    },
    io::PhysAddr,
    module::{
        this_module,
        ModuleMetadata, //
    },
    prelude::*,
};
use core::{
    ffi::c_void,
    marker::PhantomData,
    ptr::NonNull, //
};

/// A reference to an IOMMU group (`struct iommu_group`): the devices that can only be isolated
/// from the rest together. [`Ops::device_group`] returns one.
///
/// # Examples
///
/// ```
/// use kernel::iommu::ops::Group;
///
/// // A new group, empty until the core puts a device in it; the reference goes with `g`.
/// let g = Group::new()?;
/// drop(g);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `self.0` is a valid group that this value holds a reference to.
pub struct Group(NonNull<bindings::iommu_group>);

// SAFETY: A group reference may be dropped on any thread; the group has its own locking.
unsafe impl Send for Group {}
// SAFETY: `Group` gives no access to the group's contents.
unsafe impl Sync for Group {}

impl Group {
    /// Takes over the reference returned by a group-finding function, or its error.
    ///
    /// # Safety
    ///
    /// `p` must be an `ERR_PTR` or a group the caller holds a reference to, which passes to the
    /// new value.
    unsafe fn from_ptr(p: *mut bindings::iommu_group) -> Result<Self> {
        let p = from_err_ptr(p)?;
        // INVARIANT: Per the safety requirements `p` is a referenced group.
        NonNull::new(p).map(Self).ok_or(ENODEV)
    }

    /// A new, empty group (`iommu_group_alloc()`).
    pub fn new() -> Result<Self> {
        // SAFETY: `iommu_group_alloc()` returns a new group with a reference for the caller, or
        // an `ERR_PTR`.
        unsafe { Self::from_ptr(bindings::iommu_group_alloc()) }
    }

    /// The group the core gives `dev` by default: for a PCI device the group of the devices it
    /// cannot be isolated from (DMA aliases, ACS; `pci_device_group()`), else a group of its
    /// own (`generic_device_group()`).
    pub fn default_for(dev: &Device) -> Result<Self> {
        let d = dev.as_raw();
        // SAFETY: `d` is valid during the call; both functions return a referenced group or an
        // `ERR_PTR`.
        unsafe {
            Self::from_ptr(if bindings::dev_is_pci(d) {
                bindings::pci_device_group(d)
            } else {
                bindings::generic_device_group(d)
            })
        }
    }

    /// Gives the reference to the caller.
    fn into_raw(self) -> *mut bindings::iommu_group {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the value holds a reference to the group.
        unsafe { bindings::iommu_group_put(self.0.as_ptr()) };
    }
}

/// The domain type a driver wants as a device's default domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DefaultDomain {
    /// Pass-through (`IOMMU_DOMAIN_IDENTITY`).
    Identity,
    /// Translated for the DMA API (`IOMMU_DOMAIN_DMA`).
    Dma,
}

/// A capability the core may ask a driver about for a device (`enum iommu_cap`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Capability {
    /// DMA is coherent with the CPU caches (`IOMMU_CAP_CACHE_COHERENCY`); VFIO and iommufd
    /// refuse devices without it.
    CacheCoherency,
    /// `IOMMU_NOEXEC` is honoured.
    NoExec,
    /// The firmware had the IOMMU protect memory before the kernel took over.
    PreBootProtection,
    /// The IOMMU can force DMA to snoop the CPU caches.
    EnforceCacheCoherency,
    /// IOTLB flushes may be deferred (lazy DMA domains).
    DeferredFlush,
    /// Dirty tracking is supported.
    DirtyTracking,
    /// The device may use PCI ATS.
    PciAtsSupported,
}

/// Hardware information a driver reports for a device through iommufd's `IOMMU_GET_HW_INFO`,
/// for user space (a VMM) to decide what it may ask of the IOMMU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HwInfo {
    /// An Intel VT-d unit (`IOMMU_HW_INFO_TYPE_INTEL_VTD`, `struct iommu_hw_info_vtd`).
    IntelVtd {
        /// `enum iommu_hw_info_vtd_flags`.
        flags: u32,
        /// The unit's Capability Register.
        cap: u64,
        /// The unit's Extended Capability Register.
        ecap: u64,
    },
}

impl HwInfo {
    /// The `enum iommu_hw_info_type` of this information.
    fn kind(&self) -> bindings::iommu_hw_info_type {
        match self {
            Self::IntelVtd { .. } => bindings::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_INTEL_VTD,
        }
    }

    /// The information in its uAPI layout, allocated for the core, which frees it with
    /// `kfree()`; and its length in bytes.
    fn into_raw(self) -> Result<(*mut c_void, u32)> {
        match self {
            Self::IntelVtd { flags, cap, ecap } => {
                let info = KBox::new(
                    bindings::iommu_hw_info_vtd {
                        flags,
                        __reserved: 0,
                        cap_reg: cap,
                        ecap_reg: ecap,
                    },
                    GFP_KERNEL,
                )?;
                // CAST: The structure is 24 bytes.
                let len = core::mem::size_of::<bindings::iommu_hw_info_vtd>() as u32;
                Ok((KBox::into_raw(info).cast(), len))
            }
        }
    }
}

impl Capability {
    fn from_raw(cap: bindings::iommu_cap) -> Option<Self> {
        Some(match cap {
            bindings::iommu_cap_IOMMU_CAP_CACHE_COHERENCY => Self::CacheCoherency,
            bindings::iommu_cap_IOMMU_CAP_NOEXEC => Self::NoExec,
            bindings::iommu_cap_IOMMU_CAP_PRE_BOOT_PROTECTION => Self::PreBootProtection,
            bindings::iommu_cap_IOMMU_CAP_ENFORCE_CACHE_COHERENCY => Self::EnforceCacheCoherency,
            bindings::iommu_cap_IOMMU_CAP_DEFERRED_FLUSH => Self::DeferredFlush,
            bindings::iommu_cap_IOMMU_CAP_DIRTY_TRACKING => Self::DirtyTracking,
            bindings::iommu_cap_IOMMU_CAP_PCI_ATS_SUPPORTED => Self::PciAtsSupported,
            _ => return None,
        })
    }
}

/// The kind of a reserved region (`enum iommu_resv_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ResvKind {
    /// Memory the device must keep reaching 1:1 (firmware-reported, such as VT-d RMRRs).
    Direct,
    /// Like [`ResvKind::Direct`], but the mapping may be dropped when the device is assigned.
    DirectRelaxable,
    /// Addresses that must never be mapped.
    Reserved,
    /// The hardware MSI window: writes there are interrupts, never translated.
    Msi,
}

impl ResvKind {
    fn to_raw(self) -> bindings::iommu_resv_type {
        match self {
            Self::Direct => bindings::iommu_resv_type_IOMMU_RESV_DIRECT,
            Self::DirectRelaxable => bindings::iommu_resv_type_IOMMU_RESV_DIRECT_RELAXABLE,
            Self::Reserved => bindings::iommu_resv_type_IOMMU_RESV_RESERVED,
            Self::Msi => bindings::iommu_resv_type_IOMMU_RESV_MSI,
        }
    }
}

/// The list of a device's reserved regions that the core asks a driver to fill.
///
/// # Invariants
///
/// `list` is the valid `struct list_head` the core passed to `get_resv_regions`, for `'a`.
pub struct ResvRegions<'a> {
    list: *mut bindings::list_head,
    _p: PhantomData<&'a mut bindings::list_head>,
}

impl ResvRegions<'_> {
    /// Adds the region of `length` bytes at `start`, which devices may access as `prot` says.
    pub fn add(&mut self, start: PhysAddr, length: usize, prot: Prot, kind: ResvKind) -> Result {
        // SAFETY: Plain allocation; the core frees the region with `iommu_put_resv_regions()`.
        let region = unsafe {
            bindings::iommu_alloc_resv_region(
                start,
                length,
                prot.bits() as i32,
                kind.to_raw(),
                GFP_KERNEL.as_raw(),
            )
        };
        if region.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `region` is a new region, not on any list; by the type invariant `self.list`
        // is the core's list head.
        unsafe { bindings::list_add_tail(&raw mut (*region).list, self.list) };
        Ok(())
    }
}

/// An IOMMU driver.
///
/// # Examples
///
/// ```ignore
/// struct MyIommu;
///
/// #[vtable]
/// impl iommu::ops::Ops for MyIommu {
///     type OwnerModule = MyModule;
///     type DeviceData = MyDevice;
///     type Blocked = Blocking;
///     type Identity = Identity;
///
///     fn probe_device(dev: &Device) -> Result<KBox<MyDevice>> {
///         find_my_unit(dev).ok_or(ENODEV)?.new_device(dev)
///     }
///
///     fn device_iommu(data: &MyDevice) -> &IommuDevice {
///         data.unit.iommu()
///     }
/// }
///
/// static OPS: iommu::ops::OpsTable<MyIommu> = iommu::ops::OpsTable::new(&BLOCKING, &IDENTITY);
/// ```
#[vtable]
pub trait Ops: Sized + Send + Sync + 'static {
    /// The module that holds the driver; the core pins it while any device uses the driver.
    type OwnerModule: ModuleMetadata;

    /// What the driver keeps about each device it handles, from `probe_device` to
    /// `release_device`.
    type DeviceData: Send + Sync;

    /// Attaching to the static blocking domain, which is also the release domain: devices are
    /// moved to it before `release_device`.
    type Blocked: AttachOps<Iommu = Self>;

    /// Attaching to the static identity domain.
    type Identity: AttachOps<Iommu = Self>;

    /// Takes `dev` on, or returns `ENODEV` if no instance of this driver translates it.
    ///
    /// The core calls this for every device on the buses it watches, including devices other
    /// drivers' instances translate.
    fn probe_device(dev: &Device) -> Result<KBox<Self::DeviceData>>;

    /// The hardware instance that translates the device `data` describes.
    fn device_iommu(data: &Self::DeviceData) -> &IommuDevice;

    /// Lets go of `dev`. The core has already attached it to the release domain, unless its
    /// attach was deferred. Only what `probe_device` allocated is to be freed here.
    fn release_device(_dev: &Device, _data: KBox<Self::DeviceData>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The group `dev`, described by `data`, belongs in. Without this entry:
    /// [`Group::default_for`].
    fn device_group(_dev: &Device, _data: &Self::DeviceData) -> Result<Group> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The default domain type `dev` needs, or `None` for the core's choice.
    fn def_domain_type(_dev: &Device, _data: &Self::DeviceData) -> Option<DefaultDomain> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether attaching `dev` must wait until its driver first uses the DMA API.
    fn is_attach_deferred(_dev: &Device, _data: &Self::DeviceData) -> bool {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Adds `dev`'s reserved regions to `regions`.
    fn get_resv_regions(_dev: &Device, _data: &Self::DeviceData, _regions: &mut ResvRegions<'_>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether the driver has capability `cap` for `dev`.
    fn capable(_dev: &Device, _data: &Self::DeviceData, _cap: Capability) -> bool {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The hardware information iommufd reports for `dev` (`IOMMU_GET_HW_INFO`). Without this
    /// entry the core reports none.
    fn hw_info(_dev: &Device, _data: &Self::DeviceData) -> HwInfo {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Allocates a paging domain that `dev` can be attached to (see
    /// [`super::paging::PagingDomain::alloc`]). `flags` are iommufd's `IOMMU_HWPT_ALLOC_*` flags,
    /// 0 for the DMA API; a driver refuses flags it does not implement with `EOPNOTSUPP`.
    /// Without this entry the driver has no paging domains, and its devices stay on the
    /// identity domain.
    fn domain_alloc_paging_flags(
        _dev: &Device,
        _data: &Self::DeviceData,
        _flags: u32,
    ) -> Result<NewDomain> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// Returns the data `T::probe_device` made for `dev`, if any.
///
/// # Safety
///
/// `dev` must have been probed by an instance of `T` (or have no IOMMU private data), and the
/// data must not be released while the returned reference lives; the core guarantees both
/// inside the callbacks it makes for `dev`.
pub(crate) unsafe fn device_data<T: Ops>(dev: &Device) -> Option<&T::DeviceData> {
    // SAFETY: `dev` is valid; `dev->iommu` exists while the core calls into the driver.
    let p = unsafe { bindings::dev_iommu_priv_get(dev.as_raw()) };
    // SAFETY: Per the safety requirements a non-NULL private pointer is a leaked
    // `KBox<T::DeviceData>` made by `OpsTable::<T>::probe_device`.
    (!p.is_null()).then(|| unsafe { &*p.cast::<T::DeviceData>() })
}

/// The `struct iommu_ops` of driver `T`, to be placed in a `static`.
#[repr(transparent)]
pub struct OpsTable<T: Ops>(bindings::iommu_ops, PhantomData<T>);

// SAFETY: The table is read-only once built; its pointers refer to `'static` data.
unsafe impl<T: Ops> Sync for OpsTable<T> {}

impl<T: Ops> OpsTable<T> {
    /// Builds the table, with `blocked` as the blocking and release domain and `identity` as
    /// the identity domain. Entries `T` does not implement are left NULL.
    pub const fn new(
        blocked: &'static StaticDomain<T::Blocked>,
        identity: &'static StaticDomain<T::Identity>,
    ) -> Self {
        Self(
            bindings::iommu_ops {
                probe_device: Some(Self::probe_device),
                release_device: Some(Self::release_device),
                device_group: Some(Self::device_group),
                def_domain_type: if T::HAS_DEF_DOMAIN_TYPE {
                    Some(Self::def_domain_type)
                } else {
                    None
                },
                is_attach_deferred: if T::HAS_IS_ATTACH_DEFERRED {
                    Some(Self::is_attach_deferred)
                } else {
                    None
                },
                get_resv_regions: if T::HAS_GET_RESV_REGIONS {
                    Some(Self::get_resv_regions)
                } else {
                    None
                },
                capable: if T::HAS_CAPABLE {
                    Some(Self::capable)
                } else {
                    None
                },
                hw_info: if T::HAS_HW_INFO {
                    Some(Self::hw_info)
                } else {
                    None
                },
                domain_alloc_paging_flags: if T::HAS_DOMAIN_ALLOC_PAGING_FLAGS {
                    Some(Self::domain_alloc_paging_flags)
                } else {
                    None
                },
                owner: this_module::<T::OwnerModule>().as_ptr(),
                identity_domain: identity.as_raw(),
                blocked_domain: blocked.as_raw(),
                release_domain: blocked.as_raw(),
                ..pin_init::zeroed()
            },
            PhantomData,
        )
    }

    pub(crate) fn as_raw(&'static self) -> *const bindings::iommu_ops {
        &self.0
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device, as `iommu_ops.probe_device`.
    unsafe extern "C" fn probe_device(dev: *mut bindings::device) -> *mut bindings::iommu_device {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        match T::probe_device(dev) {
            Ok(data) => {
                let iommu = T::device_iommu(&data).as_raw();
                // SAFETY: `dev->iommu` exists and the core holds the probe lock that
                // `dev_iommu_priv_set()` asserts.
                unsafe { bindings::dev_iommu_priv_set(dev.as_raw(), KBox::into_raw(data).cast()) };
                iommu
            }
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device, as `iommu_ops.release_device`.
    unsafe extern "C" fn release_device(dev: *mut bindings::device) {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by `T`: the core only releases devices it probed.
        let p = unsafe { bindings::dev_iommu_priv_get(dev.as_raw()) };
        if p.is_null() {
            return;
        }
        // SAFETY: `p` is the `KBox<T::DeviceData>` leaked by `probe_device`; the core makes no
        // further callbacks for `dev` after this one, so nothing else refers to it.
        let data = unsafe { KBox::from_raw(p.cast::<T::DeviceData>()) };
        if T::HAS_RELEASE_DEVICE {
            T::release_device(dev, data);
        }
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device, as `iommu_ops.device_group`.
    unsafe extern "C" fn device_group(dev: *mut bindings::device) -> *mut bindings::iommu_group {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        let group = if T::HAS_DEVICE_GROUP {
            // SAFETY: The core asks for the group of a device `T` probed.
            match unsafe { device_data::<T>(dev) } {
                Some(data) => T::device_group(dev, data),
                None => Err(ENODEV),
            }
        } else {
            Group::default_for(dev)
        };
        match group {
            Ok(g) => g.into_raw(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device, as `iommu_ops.def_domain_type`.
    unsafe extern "C" fn def_domain_type(dev: *mut bindings::device) -> c_int {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by `T`.
        let Some(data) = (unsafe { device_data::<T>(dev) }) else {
            return 0;
        };
        match T::def_domain_type(dev, data) {
            Some(DefaultDomain::Identity) => bindings::IOMMU_DOMAIN_IDENTITY as c_int,
            Some(DefaultDomain::Dma) => bindings::IOMMU_DOMAIN_DMA as c_int,
            None => 0,
        }
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device, as `iommu_ops.is_attach_deferred`.
    unsafe extern "C" fn is_attach_deferred(dev: *mut bindings::device) -> bool {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by `T`.
        unsafe { device_data::<T>(dev) }.is_some_and(|data| T::is_attach_deferred(dev, data))
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device, as `iommu_ops.capable`.
    unsafe extern "C" fn capable(dev: *mut bindings::device, cap: bindings::iommu_cap) -> bool {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        let Some(cap) = Capability::from_raw(cap) else {
            return false;
        };
        // SAFETY: `dev` was probed by `T`.
        unsafe { device_data::<T>(dev) }.is_some_and(|data| T::capable(dev, data, cap))
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device and valid `length` and `kind`, as
    /// `iommu_ops.hw_info`.
    unsafe extern "C" fn hw_info(
        dev: *mut bindings::device,
        length: *mut u32,
        kind: *mut bindings::iommu_hw_info_type,
    ) -> *mut c_void {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by `T`.
        let Some(data) = (unsafe { device_data::<T>(dev) }) else {
            return ENODEV.to_ptr();
        };
        let info = T::hw_info(dev, data);
        // SAFETY: `kind` is valid for reads and writes during the call.
        let asked = unsafe { *kind };
        // The caller asks for one type, or for the driver's own (`DEFAULT`).
        if asked != bindings::iommu_hw_info_type_IOMMU_HW_INFO_TYPE_DEFAULT && asked != info.kind()
        {
            return EOPNOTSUPP.to_ptr();
        }
        match info.into_raw() {
            Ok((p, len)) => {
                // SAFETY: `length` and `kind` are valid for writes during the call.
                unsafe {
                    *length = len;
                    *kind = info.kind();
                }
                p
            }
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device and list, as `iommu_ops.get_resv_regions`.
    unsafe extern "C" fn get_resv_regions(
        dev: *mut bindings::device,
        list: *mut bindings::list_head,
    ) {
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by `T`.
        let Some(data) = (unsafe { device_data::<T>(dev) }) else {
            return;
        };
        // INVARIANT: `list` is the core's list, valid during the call.
        let mut regions = ResvRegions {
            list,
            _p: PhantomData,
        };
        T::get_resv_regions(dev, data, &mut regions);
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device, as `iommu_ops.domain_alloc_paging_flags`.
    unsafe extern "C" fn domain_alloc_paging_flags(
        dev: *mut bindings::device,
        flags: u32,
        user_data: *const bindings::iommu_user_data,
    ) -> *mut bindings::iommu_domain {
        if !user_data.is_null() {
            // Driver-specific allocation data is not supported yet.
            return EOPNOTSUPP.to_ptr();
        }
        // SAFETY: The core holds a reference to `dev` during the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by `T`.
        let Some(data) = (unsafe { device_data::<T>(dev) }) else {
            return ENODEV.to_ptr();
        };
        new_domain_into_raw(T::domain_alloc_paging_flags(dev, data, flags))
    }
}
