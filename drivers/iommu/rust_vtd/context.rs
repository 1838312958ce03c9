// SPDX-License-Identifier: GPL-2.0

//! Legacy-mode root and context tables (VT-d specification, 9.1 and 9.3).
//!
//! The root table has one 128-bit entry per bus, pointing to that bus's
//! context table; a context table has one 128-bit entry per device and
//! function. Entries are kept as two 64-bit words, low word first.
//! [`ContextTables`] is a unit's set of them; the unit invalidates what the
//! hardware caches around its changes.

use kernel::{
    iommu::pages::{
        TablePage,
        Walker, //
    },
    prelude::*, //
};

/// Context entry translation types (TT).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TranslationType {
    /// Untranslated requests are translated through the second-stage table.
    MultiLevel = 0,
    /// Untranslated requests bypass translation.
    PassThrough = 2,
}

/// A legacy root entry: present, with the context table at `ctp`.
pub(crate) fn root_entry(ctp: u64) -> [u64; 2] {
    [(ctp & !0xfff) | 1, 0]
}

/// The context table address in a root entry, if it is present.
pub(crate) fn root_entry_ctp(lo: u64) -> Option<u64> {
    (lo & 1 != 0).then_some(lo & !0xfff)
}

/// A present legacy context entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct ContextEntry {
    /// Domain identifier; tags cached translations.
    pub(crate) did: u16,
    /// Adjusted guest address width, as the AW encoding: 1 for 39 bits
    /// (3 levels), 2 for 48 bits (4 levels), 3 for 57 bits (5 levels).
    pub(crate) aw: u8,
    /// How requests are translated.
    pub(crate) tt: TranslationType,
    /// Second-stage page table root (ignored for pass-through).
    pub(crate) slptptr: u64,
}

impl ContextEntry {
    /// Bit 0 of the low word: present.
    pub(crate) const PRESENT: u64 = 1;
    /// Bit 1 of the low word: fault processing disable.
    pub(crate) const FPD: u64 = 1 << 1;

    /// The entry as it is written to memory; faults are reported (FPD clear).
    pub(crate) fn encode(&self) -> [u64; 2] {
        let lo = (self.slptptr & !0xfff) | ((self.tt as u64) << 2) | Self::PRESENT;
        let hi = u64::from(self.aw & 7) | (u64::from(self.did) << 8);
        [lo, hi]
    }

    /// The domain identifier of an encoded entry.
    pub(crate) fn did_of(hi: u64) -> u16 {
        ((hi >> 8) & 0xffff) as u16
    }
}

/// The AW encoding for the widest address width both the unit (CAP.SAGAW)
/// supports, or `None` if it supports none this driver knows.
pub(crate) fn widest_aw(sagaw: u64) -> Option<u8> {
    (1..=3u8).rev().find(|aw| sagaw & (1 << aw) != 0)
}

/// A PCI requester ID: bus and device/function.
pub(crate) fn source_id(bus: u8, devfn: u8) -> u16 {
    (u16::from(bus) << 8) | u16::from(devfn)
}

/// A unit's root table and the context tables it points to.
///
/// The tables are written back from the CPU caches as they change, for
/// units that do not snoop them (ECAP.C clear), through the core's
/// `iommu_pages_*_incoherent()` helpers: a new context table whole before
/// the root entry that links it, and every entry after it is written.
///
/// # Invariants
///
/// `contexts[b]` is the table root entry `b` points to, if it is present.
pub(crate) struct ContextTables {
    walker: Walker,
    root: TablePage,
    contexts: KVec<Option<TablePage>>,
}

impl ContextTables {
    /// An empty root table (every device blocked), which a unit that reads
    /// tables as `walker` says can read.
    pub(crate) fn new(walker: Walker) -> Result<Self> {
        let root = TablePage::new(&walker)?;
        let mut contexts = KVec::with_capacity(256, GFP_KERNEL)?;
        for _ in 0..256 {
            contexts.push(None, GFP_KERNEL)?;
        }
        // INVARIANT: No root entry is present.
        Ok(Self {
            walker,
            root,
            contexts,
        })
    }

    /// The physical address of the root table, for RTADDR.
    pub(crate) fn root_phys(&self) -> u64 {
        self.root.phys()
    }

    /// The context table of `bus`, if it has one.
    fn table(&self, bus: u8) -> Option<&TablePage> {
        self.contexts[usize::from(bus)].as_ref()
    }

    /// The entry of `bus:devfn` (low and high word), if it is present.
    pub(crate) fn get(&self, bus: u8, devfn: u8) -> Option<[u64; 2]> {
        let ctx = self.table(bus)?;
        let i = usize::from(devfn) * 2;
        let lo = ctx.read(i);
        (lo & ContextEntry::PRESENT != 0).then(|| [lo, ctx.read(i + 1)])
    }

    /// Makes the entry of `bus:devfn` not present, the present bit first,
    /// and returns the domain ID it had; `None` if it was not present. The
    /// caller invalidates the context cache, then [`Self::erase`]s it.
    pub(crate) fn clear_present(&self, bus: u8, devfn: u8) -> Option<u16> {
        let [lo, hi] = self.get(bus, devfn)?;
        let ctx = self.table(bus)?;
        let i = usize::from(devfn) * 2;
        ctx.write(i, lo & !ContextEntry::PRESENT);
        ctx.flush(i, 1);
        Some(ContextEntry::did_of(hi))
    }

    /// Zeroes the (not present) entry of `bus:devfn`.
    pub(crate) fn erase(&self, bus: u8, devfn: u8) {
        if let Some(ctx) = self.table(bus) {
            let i = usize::from(devfn) * 2;
            ctx.write(i + 1, 0);
            ctx.write(i, 0);
            ctx.flush(i, 2);
        }
    }

    /// Writes `entry` for `bus:devfn`, whose entry is not present, the
    /// high word first. Makes the bus's context table first if it has
    /// none.
    pub(crate) fn set(&mut self, bus: u8, devfn: u8, entry: ContextEntry) -> Result {
        let b = usize::from(bus);
        if self.contexts[b].is_none() {
            let ctx = TablePage::new(&self.walker)?;
            let [lo, hi] = root_entry(ctx.phys());
            self.root.write(b * 2 + 1, hi);
            self.root.write(b * 2, lo);
            self.root.flush(b * 2, 2);
            // INVARIANT: The root entry points to the new table.
            self.contexts[b] = Some(ctx);
        }
        let ctx = self.table(bus).ok_or(ENOMEM)?;
        let [lo, hi] = entry.encode();
        let i = usize::from(devfn) * 2;
        ctx.write(i + 1, hi);
        ctx.write(i, lo);
        ctx.flush(i, 2);
        Ok(())
    }

    /// The number of buses whose root entry points to a context table.
    pub(crate) fn buses(&self) -> usize {
        (0..256)
            .filter(|b| root_entry_ctp(self.root.read(b * 2)).is_some())
            .count()
    }
}

#[kunit_tests(rust_vtd_context)]
mod tests {
    use super::*;

    #[test]
    fn root_entry_points_to_context_table() {
        // VT-d 9.1: P is bit 0, CTP is bits 63:12, the high word is reserved.
        assert_eq!(root_entry(0x1234_5000), [0x1234_5001, 0]);
        assert_eq!(root_entry_ctp(0x1234_5001), Some(0x1234_5000));
        assert_eq!(root_entry_ctp(0x1234_5000), None);
    }

    #[test]
    fn pass_through_entry_matches_the_c_driver() {
        // What context_setup_pass_through() writes on a unit with 48-bit
        // SAGAW: DID 1 (FLPT_DEFAULT_DID), AW 2, TT 2, FPD clear, present.
        let e = ContextEntry {
            did: 1,
            aw: 2,
            tt: TranslationType::PassThrough,
            slptptr: 0,
        };
        assert_eq!(e.encode(), [0x9, 0x102]);
        assert_eq!(ContextEntry::did_of(0x102), 1);
    }

    #[test]
    fn translated_entry_fields() {
        // VT-d 9.3: SLPTPTR 63:12, TT 3:2, FPD 1, P 0; AW 66:64, DID 87:72.
        let e = ContextEntry {
            did: 0xabcd,
            aw: 1,
            tt: TranslationType::MultiLevel,
            slptptr: 0x7654_3000,
        };
        let [lo, hi] = e.encode();
        assert_eq!(lo, 0x7654_3001);
        assert_eq!(lo & ContextEntry::FPD, 0);
        assert_eq!(hi, 0xab_cd01);
        assert_eq!(ContextEntry::did_of(hi), 0xabcd);
    }

    #[test]
    fn context_tables_set_clear_erase() -> Result {
        let mut t = ContextTables::new(Walker::Coherent)?;
        assert_eq!(t.buses(), 0);
        let e = ContextEntry {
            did: 5,
            aw: 2,
            tt: TranslationType::MultiLevel,
            slptptr: 0x4000,
        };
        assert_eq!(t.get(3, 0x10), None);
        t.set(3, 0x10, e)?;
        assert_eq!(t.get(3, 0x10), Some(e.encode()));
        assert_eq!(t.buses(), 1);
        assert_eq!(t.clear_present(3, 0x10), Some(5));
        assert_eq!(t.get(3, 0x10), None);
        assert_eq!(t.clear_present(3, 0x10), None);
        t.erase(3, 0x10);
        assert_eq!(t.buses(), 1);
        Ok(())
    }

    #[test]
    fn address_width_from_sagaw() {
        // QEMU: SAGAW 0x2 (39-bit) with aw-bits=39, 0x6 (39 and 48) with 48.
        assert_eq!(widest_aw(0x2), Some(1));
        assert_eq!(widest_aw(0x6), Some(2));
        assert_eq!(widest_aw(0xe), Some(3));
        assert_eq!(widest_aw(0x1), None);
        assert_eq!(source_id(0x01, 0x10), 0x0110);
    }
}
