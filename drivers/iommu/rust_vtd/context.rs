// SPDX-License-Identifier: GPL-2.0

//! Legacy-mode root and context tables (VT-d specification, 9.1 and 9.3).
//!
//! The root table has one 128-bit entry per bus, pointing to that bus's
//! context table; a context table has one 128-bit entry per device and
//! function. Entries are kept as two 64-bit words, low word first.
//! [`ContextTables`] is a unit's set of them; the unit invalidates what the
//! hardware caches around its changes.
//!
//! A kdump kernel that finds translation on copies the crashed kernel's
//! tables rather than turning translation off ([`ContextTables::copy_old`]):
//! DMA that the crashed kernel set up keeps landing where it was meant to
//! until each device's new driver takes over. Those tables are untrusted
//! input: every entry is checked against what the unit supports and
//! against the crashed kernel's RAM, and refused one by one.

use crate::regs::{
    CAP,
    ECAP, //
};
use kernel::{
    bitmap::BitmapVec,
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
    /// As `MultiLevel`, and the device may also ask for translations for
    /// its ATC (ATS translation requests).
    DeviceTlb = 1,
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
        self.set_words(bus, devfn, entry.encode())
    }

    /// Writes the encoded entry `[lo, hi]` for `bus:devfn`, as [`Self::set`].
    fn set_words(&mut self, bus: u8, devfn: u8, [lo, hi]: [u64; 2]) -> Result {
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

/// The crashed kernel's memory, as a kdump kernel reaches it.
pub(crate) trait OldMemory {
    /// Whether the 4 KiB page at `phys` is RAM of the crashed kernel.
    fn is_ram(&self, phys: u64) -> bool;

    /// Copies the 4 KiB page at `phys` (page aligned, RAM of the crashed
    /// kernel) into `page`, 512 words.
    fn read_page(&self, phys: u64, page: &mut [u64]) -> Result;
}

/// What a unit accepts in a context entry it did not write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct OldEntryLimits {
    /// Number of domain IDs (CAP.ND).
    pub(crate) domains: u64,
    /// Supported adjusted guest address widths (CAP.SAGAW).
    pub(crate) sagaw: u64,
    /// Translation type 1, device-TLBs allowed (ECAP.DT).
    pub(crate) device_tlb: bool,
    /// Translation type 2, pass-through (ECAP.PT).
    pub(crate) pass_through: bool,
}

impl OldEntryLimits {
    /// The limits of a unit with capabilities `cap` and `ecap`.
    pub(crate) fn of(cap: CAP, ecap: ECAP) -> Self {
        Self {
            domains: cap.domains(),
            sagaw: cap.sagaw().get(),
            device_tlb: ecap.dt(),
            pass_through: ecap.pt(),
        }
    }
}

/// Why an entry of the crashed kernel's tables was not copied.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Refusal {
    /// A reserved bit of the root entry is set (VT-d 9.1).
    RootReserved,
    /// The root entry points outside the crashed kernel's RAM.
    ContextTableNotRam(u64),
    /// A reserved bit of the context entry is set (VT-d 9.3).
    ContextReserved,
    /// The translation type is reserved or the unit does not support it.
    TranslationType(u8),
    /// The address width is one the unit does not support (CAP.SAGAW).
    AddressWidth(u8),
    /// The domain ID is beyond the unit's (CAP.ND).
    DomainId(u16),
    /// The second-stage table is outside the crashed kernel's RAM.
    TableNotRam(u64),
}

impl kernel::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::RootReserved => write!(f, "reserved bits set in the root entry"),
            Self::ContextTableNotRam(a) => write!(f, "context table {a:#x} is not RAM"),
            Self::ContextReserved => write!(f, "reserved bits set"),
            Self::TranslationType(t) => write!(f, "translation type {t} not supported"),
            Self::AddressWidth(aw) => write!(f, "address width {aw} not supported"),
            Self::DomainId(d) => write!(f, "domain ID {d} beyond the unit's"),
            Self::TableNotRam(a) => write!(f, "page table {a:#x} is not RAM"),
        }
    }
}

/// Checks a present context entry `[lo, hi]` of the crashed kernel's
/// tables; returns its domain ID if the unit may walk it as it is.
pub(crate) fn check_old_entry(
    [lo, hi]: [u64; 2],
    limits: &OldEntryLimits,
    mem: &impl OldMemory,
) -> Result<u16, Refusal> {
    // Reserved: bits 11:4 of the low word; bit 71 and bits 127:88.
    if lo & 0xff0 != 0 || hi & !0x00ff_ff7f != 0 {
        return Err(Refusal::ContextReserved);
    }
    // CAST: two bits.
    let tt = ((lo >> 2) & 3) as u8;
    match tt {
        0 => {}
        1 if limits.device_tlb => {}
        2 if limits.pass_through => {}
        _ => return Err(Refusal::TranslationType(tt)),
    }
    // CAST: three bits. (For pass-through AW names the widest width the
    // unit supports, so it too must be one of SAGAW's.)
    let aw = (hi & 7) as u8;
    if limits.sagaw & (1 << aw) == 0 {
        return Err(Refusal::AddressWidth(aw));
    }
    let did = ContextEntry::did_of(hi);
    if u64::from(did) >= limits.domains {
        return Err(Refusal::DomainId(did));
    }
    let table = lo & !0xfff;
    if tt != 2 && !mem.is_ram(table) {
        return Err(Refusal::TableNotRam(table));
    }
    Ok(did)
}

/// What [`ContextTables::copy_old`] copied.
pub(crate) struct CopiedEntries {
    /// The source IDs (bus and devfn) whose entries were copied.
    pub(crate) sources: BitmapVec,
    /// The domain IDs the copied entries use.
    pub(crate) dids: BitmapVec,
    /// Context entries copied.
    pub(crate) copied: u32,
    /// Root and context entries refused.
    pub(crate) refused: u32,
}

impl ContextTables {
    /// A copy of the crashed kernel's legacy root table at `old_root` and
    /// of the present entries of the context tables it points to, for a
    /// unit whose limits are `limits`; the second-stage tables are not
    /// copied: the entries keep pointing to them, in memory a kdump kernel
    /// never allocates. Each entry that fails [`check_old_entry`], and
    /// each root entry that is malformed or points outside RAM, is left
    /// out (the bus's or the device's DMA is then blocked) and passed to
    /// `refused` with its bus and, for a context entry, its devfn. Fails
    /// only if the root table itself cannot be read, or on allocation
    /// failure.
    pub(crate) fn copy_old(
        walker: Walker,
        old_root: u64,
        mem: &impl OldMemory,
        limits: &OldEntryLimits,
        mut refused: impl FnMut(u8, Option<u8>, Refusal),
    ) -> Result<(Self, CopiedEntries)> {
        if old_root & 0xfff != 0 || !mem.is_ram(old_root) {
            return Err(EINVAL);
        }
        let mut root = KVec::from_elem(0u64, 512, GFP_KERNEL)?;
        let mut ctx = KVec::from_elem(0u64, 512, GFP_KERNEL)?;
        mem.read_page(old_root, &mut root)?;
        let mut tables = Self::new(walker)?;
        let mut out = CopiedEntries {
            sources: BitmapVec::new(1 << 16, GFP_KERNEL)?,
            dids: BitmapVec::new(1 << 16, GFP_KERNEL)?,
            copied: 0,
            refused: 0,
        };
        for bus in 0..=255u8 {
            let b = usize::from(bus) * 2;
            let (lo, hi) = (root[b], root[b + 1]);
            if lo & 1 == 0 {
                continue;
            }
            // Reserved: bits 11:1 and the whole high word.
            if lo & 0xffe != 0 || hi != 0 {
                refused(bus, None, Refusal::RootReserved);
                out.refused += 1;
                continue;
            }
            let ctp = lo & !0xfff;
            if !mem.is_ram(ctp) || mem.read_page(ctp, &mut ctx).is_err() {
                refused(bus, None, Refusal::ContextTableNotRam(ctp));
                out.refused += 1;
                continue;
            }
            for devfn in 0..=255u8 {
                let d = usize::from(devfn) * 2;
                let entry = [ctx[d], ctx[d + 1]];
                if entry[0] & ContextEntry::PRESENT == 0 {
                    continue;
                }
                match check_old_entry(entry, limits, mem) {
                    Ok(did) => {
                        tables.set_words(bus, devfn, entry)?;
                        out.sources.set_bit(usize::from(source_id(bus, devfn)));
                        out.dids.set_bit(usize::from(did));
                        out.copied += 1;
                    }
                    Err(r) => {
                        refused(bus, Some(devfn), r);
                        out.refused += 1;
                    }
                }
            }
        }
        Ok((tables, out))
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

    /// A crashed kernel's memory made by a test: RAM is [`OLD_RAM`], pages
    /// not written read as zeroes.
    struct CraftedMemory {
        pages: KVec<(u64, KVec<u64>)>,
    }

    const OLD_RAM: core::ops::Range<u64> = 0x1000_0000..0x2000_0000;

    impl CraftedMemory {
        fn new() -> Self {
            Self { pages: KVec::new() }
        }

        /// Sets word `index` of the page at `phys` to `value`.
        fn write(&mut self, phys: u64, index: usize, value: u64) -> Result {
            let pos = match self.pages.iter().position(|(p, _)| *p == phys) {
                Some(pos) => pos,
                None => {
                    let page = KVec::from_elem(0u64, 512, GFP_KERNEL)?;
                    self.pages.push((phys, page), GFP_KERNEL)?;
                    self.pages.len() - 1
                }
            };
            self.pages[pos].1[index] = value;
            Ok(())
        }

        /// Writes context entry `entry` of `devfn` in the table at `phys`.
        fn entry(&mut self, phys: u64, devfn: u8, [lo, hi]: [u64; 2]) -> Result {
            self.write(phys, usize::from(devfn) * 2, lo)?;
            self.write(phys, usize::from(devfn) * 2 + 1, hi)
        }
    }

    impl OldMemory for CraftedMemory {
        fn is_ram(&self, phys: u64) -> bool {
            OLD_RAM.contains(&phys)
        }

        fn read_page(&self, phys: u64, page: &mut [u64]) -> Result {
            if !self.is_ram(phys) || phys & 0xfff != 0 {
                return Err(EFAULT);
            }
            match self.pages.iter().find(|(p, _)| *p == phys) {
                Some((_, words)) => page.copy_from_slice(words),
                None => page.fill(0),
            }
            Ok(())
        }
    }

    /// A unit with 256 domain IDs, 39- and 48-bit widths, pass-through
    /// and no device-TLB (QEMU's default).
    const LIMITS: OldEntryLimits = OldEntryLimits {
        domains: 256,
        sagaw: 0x6,
        device_tlb: false,
        pass_through: true,
    };

    const ROOT: u64 = 0x1000_0000;

    fn translated(did: u16, aw: u8, slptptr: u64) -> [u64; 2] {
        ContextEntry {
            did,
            aw,
            tt: TranslationType::MultiLevel,
            slptptr,
        }
        .encode()
    }

    fn pass_through(did: u16) -> [u64; 2] {
        ContextEntry {
            did,
            aw: 2,
            tt: TranslationType::PassThrough,
            slptptr: 0,
        }
        .encode()
    }

    #[test]
    fn old_tables_are_copied_entry_for_entry() -> Result {
        let mut mem = CraftedMemory::new();
        let (c0, c3) = (0x1000_1000, 0x1000_2000);
        mem.write(ROOT, 0, root_entry(c0)[0])?;
        mem.write(ROOT, 6, root_entry(c3)[0])?;
        // FPD set by the crashed kernel is kept: the copy is verbatim.
        let mut a = translated(5, 2, 0x1000_5000);
        a[0] |= ContextEntry::FPD;
        let b = pass_through(1);
        let c = translated(7, 1, 0x1000_7000);
        mem.entry(c0, 0x10, a)?;
        mem.entry(c0, 0x18, b)?;
        mem.entry(c3, 0x00, c)?;
        // Not present: left out whatever else it holds.
        mem.entry(c0, 0x20, [c[0] & !ContextEntry::PRESENT, c[1]])?;

        let mut refusals = 0;
        let (t, out) =
            ContextTables::copy_old(Walker::Coherent, ROOT, &mem, &LIMITS, |_, _, _| {
                refusals += 1
            })?;
        assert_eq!((out.copied, out.refused, refusals), (3, 0, 0));
        assert_eq!(t.buses(), 2);
        assert_eq!(t.get(0, 0x10), Some(a));
        assert_eq!(t.get(0, 0x18), Some(b));
        assert_eq!(t.get(3, 0x00), Some(c));
        assert_eq!(t.get(0, 0x20), None);
        // The copy is new memory: the unit is pointed at it, not at the old.
        assert_ne!(t.root_phys(), ROOT);
        assert_eq!(out.sources.next_bit(0), Some(0x0010));
        assert_eq!(out.sources.next_bit(0x11), Some(0x0018));
        assert_eq!(out.sources.next_bit(0x19), Some(0x0300));
        assert_eq!(out.sources.next_bit(0x301), None);
        assert_eq!(out.dids.next_bit(0), Some(1));
        assert_eq!(out.dids.next_bit(2), Some(5));
        assert_eq!(out.dids.next_bit(6), Some(7));
        assert_eq!(out.dids.next_bit(8), None);
        Ok(())
    }

    #[test]
    fn malformed_old_entries_are_refused_one_by_one() -> Result {
        let mut mem = CraftedMemory::new();
        let (c1, c5) = (0x1000_1000, 0x1000_3000);
        // Bus 1: a reserved bit of the root entry; bus 2: a context table
        // outside RAM; bus 4: the high word of a legacy root entry is
        // reserved.
        mem.write(ROOT, 2, root_entry(c1)[0] | 0x10)?;
        mem.write(ROOT, 4, root_entry(0x9000_0000)[0])?;
        mem.write(ROOT, 8, root_entry(c1)[0])?;
        mem.write(ROOT, 9, 1)?;
        mem.write(ROOT, 10, root_entry(c5)[0])?;
        mem.entry(c1, 0, translated(3, 2, 0x1000_4000))?;
        let good = translated(9, 2, 0x1000_4000);
        mem.entry(c5, 0, good)?;
        mem.entry(c5, 1, [good[0] | 0x10, good[1]])?;
        mem.entry(c5, 2, [good[0], good[1] | 0x80])?;
        mem.entry(c5, 3, [good[0] | 0xc, good[1]])?;
        mem.entry(c5, 4, [good[0] | 0x4, good[1]])?;
        mem.entry(c5, 5, translated(9, 3, 0x1000_4000))?;
        mem.entry(c5, 6, translated(300, 2, 0x1000_4000))?;
        mem.entry(c5, 7, translated(9, 2, 0x9000_0000))?;
        // Pass-through points to no table: nothing to check there.
        mem.entry(c5, 8, pass_through(1))?;

        let mut seen = KVec::new();
        let (t, out) =
            ContextTables::copy_old(Walker::Coherent, ROOT, &mem, &LIMITS, |b, d, r| {
                let _ = seen.push((b, d, r), GFP_KERNEL);
            })?;
        let want: [(u8, Option<u8>, Refusal); 10] = [
            (1, None, Refusal::RootReserved),
            (2, None, Refusal::ContextTableNotRam(0x9000_0000)),
            (4, None, Refusal::RootReserved),
            (5, Some(1), Refusal::ContextReserved),
            (5, Some(2), Refusal::ContextReserved),
            (5, Some(3), Refusal::TranslationType(3)),
            (5, Some(4), Refusal::TranslationType(1)),
            (5, Some(5), Refusal::AddressWidth(3)),
            (5, Some(6), Refusal::DomainId(300)),
            (5, Some(7), Refusal::TableNotRam(0x9000_0000)),
        ];
        assert_eq!(&seen[..], &want[..]);
        assert_eq!((out.copied, out.refused), (2, 10));
        assert_eq!(t.buses(), 1);
        assert_eq!(t.get(5, 0), Some(good));
        assert_eq!(t.get(5, 8), Some(pass_through(1)));
        assert_eq!(t.get(5, 7), None);
        assert_eq!(out.dids.next_bit(0), Some(1));
        assert_eq!(out.dids.next_bit(2), Some(9));
        assert_eq!(out.dids.next_bit(10), None);

        // A unit with device-TLBs takes translation type 1.
        let dt = OldEntryLimits {
            device_tlb: true,
            ..LIMITS
        };
        assert_eq!(check_old_entry([good[0] | 0x4, good[1]], &dt, &mem), Ok(9));
        Ok(())
    }

    #[test]
    fn old_entry_limits_from_registers() {
        // QEMU's default unit: CAP.ND 6 (2^16 IDs), SAGAW 39 and 48 bits;
        // ECAP.PT only.
        assert_eq!(
            OldEntryLimits::of(CAP::from(0x80d2_008c_222f_0606), ECAP::from(1 << 6)),
            OldEntryLimits {
                domains: 1 << 16,
                sagaw: 0x6,
                device_tlb: false,
                pass_through: true,
            }
        );
        assert!(OldEntryLimits::of(CAP::from(0), ECAP::from(1 << 2)).device_tlb);
    }

    #[test]
    fn unreadable_old_root_fails_the_copy() {
        let mem = CraftedMemory::new();
        let copy = |root| {
            ContextTables::copy_old(Walker::Coherent, root, &mem, &LIMITS, |_, _, _| {}).err()
        };
        assert_eq!(copy(0x9000_0000), Some(EINVAL));
        assert_eq!(copy(ROOT + 8), Some(EINVAL));
        assert_eq!(copy(ROOT), None);
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
