// SPDX-License-Identifier: GPL-2.0

//! The units the driver has brought up, and their debugfs directories.
//!
//! The IOMMU core's callbacks are plain functions: they find the unit that
//! translates a device here. A unit enters the registry before it registers
//! with the core (which probes its devices at once) and leaves it before it
//! unregisters, together with its debugfs directory
//! (`/sys/kernel/debug/iommu/intel/dmar<N>/`).

use crate::unit::UnitState;
use kernel::{
    debugfs::{
        Dir,
        Scope, //
    },
    device::Device,
    iommu::device::debugfs_dir,
    prelude::*,
    sync::Arc,
    uaccess::UserSliceReader,
};

kernel::sync::global_lock! {
    // SAFETY: Initialized by `init()`, in the module initializer, before any
    // unit is created, and so before the IOMMU core can call into the driver.
    unsafe(uninit) static UNITS: Mutex<KVec<Arc<UnitState>>> = KVec::new();
}

kernel::sync::global_lock! {
    // SAFETY: Initialized by `init()`, with `UNITS`.
    unsafe(uninit) static DEBUGFS: Mutex<Option<Dir>> = None;
}

/// Makes the registry usable.
///
/// # Safety
///
/// Called once, in the module initializer, before any unit exists.
pub(crate) unsafe fn init() {
    // SAFETY: Per the safety requirements, nothing uses the locks yet.
    unsafe { UNITS.init() };
    // SAFETY: As above.
    unsafe { DEBUGFS.init() };
}

/// `/sys/kernel/debug/iommu/intel`, made on first use, as the C driver
/// names it.
fn intel_dir() -> Dir {
    DEBUGFS
        .lock()
        .get_or_insert_with(|| debugfs_dir(c"intel"))
        .clone()
}

/// The unit whose scope covers the PCI device whose path from the root bus
/// is `chain`, else the catch-all unit of `segment`.
pub(crate) fn unit_for(segment: u16, chain: &[(u8, u8)]) -> Option<Arc<UnitState>> {
    let units = UNITS.lock();
    units
        .iter()
        .find(|u| u.scope().covers(segment, chain))
        .or_else(|| units.iter().find(|u| u.scope().includes_all(segment)))
        .cloned()
}

fn show_qi_stats(unit: &Arc<UnitState>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    unit.show_qi_stats(f)
}

fn show_fault_log(unit: &Arc<UnitState>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    unit.show_fault_log(f)
}

/// Test hook: writing a requester ID (hexadecimal, bus << 8 | devfn) and
/// optionally a count (decimal, 1 to 16; 1 if left out) makes the next
/// that many queued batches for that device's domain carry an invalid
/// descriptor, which the unit rejects (IQE).
fn inject_queue_error(unit: &Arc<UnitState>, input: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 24];
    let len = input.len().min(buf.len());
    input.read_slice(&mut buf[..len])?;
    let mut words = core::str::from_utf8(&buf[..len])
        .map_err(|_| EINVAL)?
        .split_ascii_whitespace();
    let text = words.next().ok_or(EINVAL)?;
    let text = text.strip_prefix("0x").unwrap_or(text);
    let rid = u16::from_str_radix(text, 16).map_err(|_| EINVAL)?;
    let batches = match words.next() {
        Some(n) => n.parse::<u32>().map_err(|_| EINVAL)?,
        None => 1,
    };
    if !(1..=16).contains(&batches) || words.next().is_some() {
        return Err(EINVAL);
    }
    unit.inject_queue_error(rid, batches)
}

/// A unit's place in the registry; leaving it takes the unit out, and its
/// debugfs directory away.
pub(crate) struct Entry {
    unit: Arc<UnitState>,
    /// `/sys/kernel/debug/iommu/intel/dmar<N>/`: `qi_stats`, the unit's
    /// invalidation counters (the C driver traces `qi_submit` instead);
    /// `fault_log`, its last faults, unthrottled; and `inject_queue_error`,
    /// the tests' hook.
    _debugfs: Option<Pin<KBox<Scope<Arc<UnitState>>>>>,
}

impl Entry {
    /// Enters `unit`, named `name`.
    pub(crate) fn new(unit: &Arc<UnitState>, name: &CStr) -> Result<Self> {
        UNITS.lock().push(unit.clone(), GFP_KERNEL)?;
        let debugfs = KBox::pin_init(
            intel_dir().scope(unit.clone(), name, |u, dir| {
                dir.read_callback_file(c"qi_stats", u, &show_qi_stats);
                dir.read_callback_file(c"fault_log", u, &show_fault_log);
                dir.write_only_callback_file(c"inject_queue_error", u, &inject_queue_error);
            }),
            GFP_KERNEL,
        )
        .ok();
        Ok(Self {
            unit: unit.clone(),
            _debugfs: debugfs,
        })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut units = UNITS.lock();
        units.retain(|u| !Arc::ptr_eq(u, &self.unit));
        if units.is_empty() {
            // The registry is a static, never dropped: free its buffer and
            // directory, so that nothing is left once the module goes.
            *units = KVec::new();
            *DEBUGFS.lock() = None;
        }
    }
}

/// What a device's `domain_translation_struct` debugfs file shows.
pub(crate) struct DebugData {
    unit: Arc<UnitState>,
    bus: u8,
    devfn: u8,
}

fn show_translation(d: &DebugData, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    d.unit.dump_translation(d.bus, d.devfn, f)
}

/// `/sys/kernel/debug/iommu/intel/<device>/domain_translation_struct`, as
/// the C driver has it (the VFIO selftests read it to check leaf sizes):
/// the tables of `bus:devfn` on `unit`. Removed when dropped.
pub(crate) fn device_debugfs(
    dev: &Device,
    unit: &Arc<UnitState>,
    bus: u8,
    devfn: u8,
) -> Option<Pin<KBox<Scope<DebugData>>>> {
    let data = DebugData {
        unit: unit.clone(),
        bus,
        devfn,
    };
    KBox::pin_init(
        intel_dir().scope(data, dev.name(), |d, dir| {
            dir.read_callback_file(c"domain_translation_struct", d, &show_translation)
        }),
        GFP_KERNEL,
    )
    .ok()
}
