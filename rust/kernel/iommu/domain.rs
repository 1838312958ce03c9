// SPDX-License-Identifier: GPL-2.0

//! IOMMU domains.
//!
//! A domain is an address space that devices are attached to. This module provides the static
//! domains a driver hands to the core in [`Ops`]: the *blocking* domain, which lets a device
//! reach no memory at all, and the *identity* domain, through which a device's DMA addresses
//! are physical addresses. Their only operation is attaching a device.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use super::ops::Ops;
use crate::{
    bindings,
    device::Device,
    prelude::*,
    types::Opaque, //
};
use core::marker::PhantomData;

/// What a static domain does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StaticKind {
    /// Devices attached to it can reach no memory (`IOMMU_DOMAIN_BLOCKED`).
    Blocked,
    /// Devices attached to it reach physical memory directly (`IOMMU_DOMAIN_IDENTITY`).
    Identity,
}

impl StaticKind {
    const fn to_raw(self) -> u32 {
        match self {
            Self::Blocked => bindings::IOMMU_DOMAIN_BLOCKED,
            Self::Identity => bindings::IOMMU_DOMAIN_IDENTITY,
        }
    }
}

/// A reference to a domain the core passes to a driver, for example the domain a device is
/// being moved from.
#[derive(Clone, Copy)]
pub struct DomainRef<'a>(&'a Opaque<bindings::iommu_domain>);

impl<'a> DomainRef<'a> {
    /// A reference to `domain`, or `None` if it is NULL.
    ///
    /// # Safety
    ///
    /// `domain` must be NULL or a valid domain for `'a`.
    pub unsafe fn from_raw(domain: *mut bindings::iommu_domain) -> Option<Self> {
        if domain.is_null() {
            return None;
        }
        // SAFETY: Per the safety requirements a non-NULL `domain` is valid for `'a`;
        // `Opaque<T>` is a transparent wrapper of `T`.
        Some(Self(unsafe {
            &*domain.cast::<Opaque<bindings::iommu_domain>>()
        }))
    }

    /// The `struct iommu_domain` pointer.
    pub fn as_raw(&self) -> *mut bindings::iommu_domain {
        self.0.get()
    }

    /// The domain's `IOMMU_DOMAIN_*` type.
    pub fn domain_type(&self) -> u32 {
        // SAFETY: `self.0` is a valid domain for the lifetime of the reference.
        unsafe { (*self.0.get()).type_ }
    }

    /// Whether this is the static domain `domain`.
    pub fn is<A: AttachOps>(&self, domain: &StaticDomain<A>) -> bool {
        core::ptr::eq(self.0.get(), domain.as_raw())
    }
}

/// Whether `dev`'s current domain is a translated domain of the DMA API (`IOMMU_DOMAIN_DMA` or
/// `IOMMU_DOMAIN_DMA_FQ`): its driver's DMA handles are IOVAs, not physical addresses.
pub fn dma_api_translated(dev: &Device) -> bool {
    // SAFETY: `dev` is a valid device; the core returns NULL or its current domain, whose type
    // is read once.
    unsafe {
        let d = bindings::iommu_get_domain_for_dev(dev.as_raw());
        !d.is_null() && (*d).type_ & bindings::__IOMMU_DOMAIN_DMA_API != 0
    }
}

/// Attaching devices to a static domain.
pub trait AttachOps: Sized + 'static {
    /// The driver these domains belong to.
    type Iommu: Ops;

    /// Attaches `dev`, which `data` describes, to the domain, replacing `old` (`None` on the
    /// device's first attach). Attaching to a blocking domain must not fail.
    fn attach_dev(
        dev: &Device,
        data: &<Self::Iommu as Ops>::DeviceData,
        old: Option<DomainRef<'_>>,
    ) -> Result;
}

/// The `struct iommu_domain_ops` of a static domain.
#[repr(transparent)]
pub struct StaticDomainOps<A: AttachOps>(bindings::iommu_domain_ops, PhantomData<A>);

// SAFETY: The table is read-only once built and only holds function pointers.
unsafe impl<A: AttachOps> Sync for StaticDomainOps<A> {}

impl<A: AttachOps> StaticDomainOps<A> {
    /// Builds the operations table: `attach_dev` and nothing else.
    pub const fn new() -> Self {
        Self(
            bindings::iommu_domain_ops {
                attach_dev: Some(Self::attach_dev),
                ..pin_init::zeroed()
            },
            PhantomData,
        )
    }

    /// # Safety
    ///
    /// Called by the IOMMU core with a valid `domain` and `dev`, and `dev` probed by the driver
    /// `A::Iommu`, so that its private data is an `A::Iommu::DeviceData`.
    unsafe extern "C" fn attach_dev(
        _domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: The core holds a reference to `dev` for the duration of the call.
        let dev: &Device = unsafe { Device::from_raw(dev) };
        // SAFETY: `dev` was probed by this driver, whose `probe_device` stored its data there.
        let Some(data) = (unsafe { super::ops::device_data::<A::Iommu>(dev) }) else {
            return ENODEV.to_errno();
        };
        // SAFETY: `old` is NULL or the device's current domain, valid during the call.
        let old = unsafe { DomainRef::from_raw(old) };
        match A::attach_dev(dev, data, old) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}

impl<A: AttachOps> Default for StaticDomainOps<A> {
    fn default() -> Self {
        Self::new()
    }
}

/// A static domain, built at compile time and never freed.
///
/// # Invariants
///
/// The embedded `struct iommu_domain` has the type of a [`StaticKind`] and points to
/// [`StaticDomainOps<A>`].
///
/// # Examples
///
/// ```ignore
/// use kernel::iommu::domain::{StaticDomain, StaticDomainOps, StaticKind};
///
/// static BLOCKING_OPS: StaticDomainOps<Blocking> = StaticDomainOps::new();
/// static BLOCKING: StaticDomain<Blocking> = StaticDomain::new(StaticKind::Blocked, &BLOCKING_OPS);
/// // ... and pass `&BLOCKING` to `OpsTable::new()`.
/// ```
#[repr(transparent)]
pub struct StaticDomain<A: AttachOps>(Opaque<bindings::iommu_domain>, PhantomData<A>);

// SAFETY: The core only reads a static domain's fields; attaching goes through `A`, which must
// be safe to call from any thread (it is `Ops`' responsibility to lock).
unsafe impl<A: AttachOps> Sync for StaticDomain<A> {}

impl<A: AttachOps> StaticDomain<A> {
    /// Builds a static domain of `kind` whose operations are `ops`.
    pub const fn new(kind: StaticKind, ops: &'static StaticDomainOps<A>) -> Self {
        // INVARIANT: The type comes from `kind` and `ops` is an `A` table.
        Self(
            Opaque::new(bindings::iommu_domain {
                type_: kind.to_raw(),
                ops: &ops.0,
                ..pin_init::zeroed()
            }),
            PhantomData,
        )
    }

    /// The `struct iommu_domain` pointer, for the core.
    pub const fn as_raw(&self) -> *mut bindings::iommu_domain {
        self.0.get()
    }
}
