// SPDX-License-Identifier: GPL-2.0

//! kdump: a capture kernel taking over the context tables a crashed
//! kernel left a unit translating through.
//!
//! The old tables are untrusted input. They are read only through
//! [`kernel::crash_dump`], which refuses any address that is not memory
//! of the crashed kernel, and every entry is checked before it is copied
//! ([`ContextTables::copy_old`]). The unit keeps translating throughout;
//! which source IDs still have a copied entry is the unit's to track
//! (`UnitState::is_copied`), since their first attach replaces it.

use crate::{
    context::{
        ContextTables,
        CopiedEntries,
        OldEntryLimits,
        OldMemory, //
    },
    regs::{
        CAP,
        ECAP,
        RTADDR, //
    },
};
use kernel::{
    crash_dump,
    iommu::pages::Walker,
    prelude::*,
    transmute::AsBytes, //
};

/// The memory of the kernel that crashed, in a kdump kernel.
struct CrashedKernel;

impl OldMemory for CrashedKernel {
    fn is_ram(&self, phys: u64) -> bool {
        crash_dump::is_oldmem(phys, 4096)
    }

    fn read_page(&self, phys: u64, page: &mut [u64]) -> Result {
        crash_dump::read_oldmem(phys, AsBytes::as_bytes_mut(page))
    }
}

/// A copy of the context tables a crashed kernel left the unit
/// translating through (RTADDR `rtaddr`), with what it holds; or why
/// there is none. Entries that fail their checks are refused, each with
/// a message.
pub(crate) fn take_over(
    index: u32,
    walker: &Walker,
    cap: CAP,
    ecap: ECAP,
    rtaddr: RTADDR,
) -> core::result::Result<(ContextTables, CopiedEntries), &'static str> {
    if rtaddr.ttm().get() != 0 {
        // rust_vtd writes legacy-mode tables only.
        return Err("they are not legacy-mode tables (RTADDR.TTM is not 0)");
    }
    let root = rtaddr.rta().get() << 12;
    ContextTables::copy_old(
        walker.clone(),
        root,
        &CrashedKernel,
        &OldEntryLimits::of(cap, ecap),
        |bus, devfn, why| match devfn {
            Some(df) => pr_warn!(
                "dmar{}: [Firmware Bug]: crashed kernel's context entry of {:02x}:{:02x}.{} refused: {}\n",
                index,
                bus,
                df >> 3,
                df & 7,
                why
            ),
            None => pr_warn!(
                "dmar{}: [Firmware Bug]: crashed kernel's root entry of bus {:02x} refused: {}\n",
                index,
                bus,
                why
            ),
        },
    )
    .map_err(|e| {
        if e == EINVAL {
            "the root table address is not memory of the crashed kernel"
        } else {
            "the tables cannot be copied"
        }
    })
}
