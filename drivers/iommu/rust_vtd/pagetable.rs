// SPDX-License-Identifier: GPL-2.0

//! Second-stage page tables (VT-d 3.7 and 9.8), as legacy-mode context
//! entries point to them.
//!
//! A table has 512 64-bit entries. Level 1 entries map 4 KiB pages;
//! level 2 and 3 entries point to the next table down or, with PS set,
//! map a 2 MiB or 1 GiB page. The top level is 3, 4 or 5 for 39, 48 or
//! 57-bit address widths.
//!
//! Tables are linked by physical address only. Concurrent map and unmap
//! calls on disjoint ranges take no lock: a missing table is installed
//! with a compare-and-exchange, and the loser of a race frees its copy.
//! An unmap that covers a table whole unlinks it and hands it to the
//! caller, to be freed once the caches are flushed; no concurrent map or
//! unmap can be using it, since their ranges are disjoint. Walks that are
//! not bound to a range (the debugfs dump) hold [`WALK`], which unlinking
//! takes too.
//!
//! On units that do not snoop the CPU caches when they walk tables
//! (ECAP.C clear), every write the unit must see is written back first: a
//! new table whole before it is linked, then the entry that links it, and
//! every leaf. A link carries [`PTE_FLUSHED`] once it has been written
//! back; a mapper that finds a link without it (another mapper installed
//! it and has not written it back yet) writes it back itself before its
//! own mapping below it can count as done, as generic_pt does with its
//! `SW_BIT_CACHE_FLUSH_DONE`.

use core::sync::atomic::{
    AtomicUsize,
    Ordering, //
};
use kernel::{
    alloc::Flags,
    io::PhysAddr,
    iommu::{
        pages::{
            Table,
            TablePage, //
        },
        paging::Prot,
    },
    prelude::*,
};

/// Read permission; a present entry has R or W set.
pub(crate) const PTE_R: u64 = 1 << 0;
/// Write permission.
pub(crate) const PTE_W: u64 = 1 << 1;
/// Page size: the entry maps a 2 MiB or 1 GiB page, not a table.
pub(crate) const PTE_PS: u64 = 1 << 7;
/// Snoop: the access snoops the CPU caches (where ECAP.SC allows).
pub(crate) const PTE_SNP: u64 = 1 << 11;
/// Ignored by the hardware (VT-d 9.8); set in a link to a table once the
/// link has been written back from the CPU caches. generic_pt's vtdss
/// format uses the same bit for the same purpose.
pub(crate) const PTE_FLUSHED: u64 = 1 << 10;
/// The address field, bits 51:12.
pub(crate) const PTE_ADDR: u64 = ((1 << 52) - 1) & !0xfff;
/// The widest physical address a leaf can hold (52 bits, as generic_pt's
/// vtdss format and the C driver allow).
pub(crate) const MAX_OA_BITS: u32 = 52;

kernel::sync::global_lock! {
    // SAFETY: Initialized by `init()` in the module initializer, before any
    // page table exists.
    unsafe(uninit) static WALK: SpinLockIrq<()> = ();
}

/// Makes the page-table code usable.
///
/// # Safety
///
/// Called once, in the module initializer, before any page table exists.
pub(crate) unsafe fn init() {
    // SAFETY: Per the safety requirements, nothing uses the lock yet.
    unsafe { WALK.init() };
}

/// The IOVA bits one level translates.
const LEVEL_BITS: u32 = 9;

/// log2 of the size an entry at `level` covers.
pub(crate) const fn level_shift(level: u32) -> u32 {
    12 + LEVEL_BITS * (level - 1)
}

/// The size an entry at `level` covers: 4 KiB, 2 MiB, 1 GiB, ...
pub(crate) const fn level_size(level: u32) -> u64 {
    1 << level_shift(level)
}

/// The index of `iova`'s entry in its table at `level`.
pub(crate) const fn index(iova: u64, level: u32) -> usize {
    ((iova >> level_shift(level)) & 511) as usize
}

/// Whether `pte` is present.
pub(crate) const fn present(pte: u64) -> bool {
    pte & (PTE_R | PTE_W) != 0
}

/// Whether the present entry `pte` at `level` maps a page.
pub(crate) const fn is_leaf(pte: u64, level: u32) -> bool {
    level == 1 || pte & PTE_PS != 0
}

/// The entry that points to the table at `phys`: readable and writable,
/// so that the leaves decide.
pub(crate) const fn table_pte(phys: PhysAddr) -> u64 {
    (phys & PTE_ADDR) | PTE_R | PTE_W
}

/// The entry at `level` that maps `paddr` with `prot`, or `None` for a
/// protection that grants no access. `snoop` sets SNP for `Prot::CACHE`.
pub(crate) fn leaf_pte(paddr: PhysAddr, level: u32, prot: Prot, snoop: bool) -> Option<u64> {
    let mut pte = paddr & PTE_ADDR;
    if prot.read() {
        pte |= PTE_R;
    }
    if prot.write() {
        pte |= PTE_W;
    }
    if !present(pte) {
        return None;
    }
    if level > 1 {
        pte |= PTE_PS;
    }
    if snoop && prot.cache() {
        pte |= PTE_SNP;
    }
    Some(pte)
}

/// The level whose leaves are `pgsize` bytes, if the format has one.
pub(crate) fn leaf_level(pgsize: usize) -> Option<u32> {
    match pgsize {
        0x1000 => Some(1),
        0x20_0000 => Some(2),
        0x4000_0000 => Some(3),
        _ => None,
    }
}

/// Page sizes a unit's second-stage tables can map: 4 KiB, plus 2 MiB and
/// 1 GiB where CAP.SLLPS says so.
pub(crate) fn pgsize_bitmap(sllps: u64) -> usize {
    let mut sizes = 0x1000;
    if sllps & 1 != 0 {
        sizes |= 0x20_0000;
    }
    if sllps & 2 != 0 {
        sizes |= 0x4000_0000;
    }
    sizes
}

/// How often a non-coherent page table wrote something back from the CPU
/// caches (the KUnit tests count them).
#[derive(Default)]
pub(crate) struct Flushes {
    /// New tables, written back whole before they were linked.
    pub(crate) tables: AtomicUsize,
    /// Entries: links and leaves.
    pub(crate) entries: AtomicUsize,
}

/// A second-stage page table.
///
/// # Invariants
///
/// Every present non-leaf entry reachable from `root` holds the address of
/// a [`TablePage`] leaked with `into_phys()` that only this page table
/// owns. Such a table is reclaimed only by `drop`, or by an unmap that
/// first unlinked it and covered its whole range (so that no concurrent
/// map or unmap, whose ranges are disjoint from that one, can reach it),
/// after the caches were flushed.
pub(crate) struct PageTable {
    root: TablePage,
    levels: u32,
    /// Whether the hardware snoops table writes (ECAP.C); if not, every
    /// write is flushed from the CPU caches.
    coherent: bool,
    /// Whether leaves set SNP for `IOMMU_CACHE` (ECAP.SC).
    snoop: bool,
    /// Tables in use, root included.
    tables: AtomicUsize,
    /// What was written back, where the hardware does not snoop.
    pub(crate) flushes: Flushes,
}

impl PageTable {
    /// An empty page table of `levels` levels (3 to 5), for hardware that
    /// snoops table writes if `coherent`, and that can force snooping
    /// (`Prot::CACHE` mappings) if `snoop`.
    pub(crate) fn new(levels: u32, coherent: bool, snoop: bool) -> Result<Self> {
        if !(3..=5).contains(&levels) {
            return Err(EINVAL);
        }
        let root = TablePage::new()?;
        let pt = Self {
            root,
            levels,
            coherent,
            snoop,
            tables: AtomicUsize::new(1),
            flushes: Flushes::default(),
        };
        pt.write_back_new(&pt.root);
        // INVARIANT: The root has no entries yet.
        Ok(pt)
    }

    /// The physical address of the top-level table.
    pub(crate) fn root_phys(&self) -> PhysAddr {
        self.root.phys()
    }

    /// The number of table pages in use.
    pub(crate) fn table_count(&self) -> usize {
        self.tables.load(Ordering::Relaxed)
    }

    /// The IOVA width the table translates.
    pub(crate) fn width(&self) -> u32 {
        level_shift(self.levels) + LEVEL_BITS
    }

    fn in_range(&self, iova: u64, size: u64) -> bool {
        let limit = 1u64 << self.width();
        size <= limit && iova <= limit - size
    }

    /// Writes entry `i` of `table` back from the CPU caches, where the
    /// hardware does not snoop them.
    fn sync(&self, table: &Table, i: usize) {
        if !self.coherent {
            table.flush(i, 1);
            self.flushes.entries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes a new table back whole, where the hardware does not snoop
    /// the CPU caches, before it is linked.
    fn write_back_new(&self, table: &Table) {
        if !self.coherent {
            table.flush_all();
            self.flushes.tables.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The table a present non-leaf entry points to, for a walk to an
    /// IOVA that no concurrent unmap covers (the IOMMU core's contract:
    /// map, unmap and lookups of one range do not race), or for an unmap
    /// of a range the table lies in.
    fn child(&self, pte: u64) -> &Table {
        // SAFETY: By the type invariant a present non-leaf entry holds a
        // table of this page table, which is reclaimed only by `drop` or by
        // an unmap that covers its whole range; per the contract above, no
        // such unmap runs concurrently with this walk, other than the
        // caller's own.
        unsafe { Table::from_phys(pte & PTE_ADDR) }
    }

    /// The entry at `level` below `table`'s entry `i`, creating the table
    /// if there is none. Fails with `EEXIST` where a page is mapped.
    fn next_table(&self, table: &Table, i: usize, level: u32, gfp: Flags) -> Result<&Table> {
        let mut pte = table.read(i);
        if !present(pte) {
            let new = TablePage::new_with(gfp)?;
            self.write_back_new(&new);
            let want = table_pte(new.phys());
            match table.compare_exchange(i, pte, want) {
                Ok(()) => {
                    // INVARIANT: The new table is linked in; it is leaked
                    // here and reclaimed by `drop` or an unmap.
                    let _ = new.into_phys();
                    self.tables.fetch_add(1, Ordering::Relaxed);
                    if !self.coherent {
                        self.sync(table, i);
                        table.set_bits(i, PTE_FLUSHED);
                    }
                    pte = want | PTE_FLUSHED;
                }
                // Another mapping installed a table (or a page) first.
                Err(cur) => pte = cur,
            }
        }
        if is_leaf(pte, level) {
            return Err(EEXIST);
        }
        if !self.coherent && pte & PTE_FLUSHED == 0 {
            // Linked by another mapper that has not written the link back
            // yet: do it here, or what this mapping adds below it may be
            // out of the unit's sight when the mapping returns.
            self.sync(table, i);
        }
        Ok(self.child(pte))
    }

    /// Maps one page of the size of `level` at `iova` to `paddr`.
    fn map_one(&self, iova: u64, paddr: PhysAddr, level: u32, prot: Prot, gfp: Flags) -> Result {
        let leaf = leaf_pte(paddr, level, prot, self.snoop).ok_or(EINVAL)?;
        let mut table: &Table = &self.root;
        let mut l = self.levels;
        while l > level {
            table = self.next_table(table, index(iova, l), l, gfp)?;
            l -= 1;
        }
        let i = index(iova, level);
        match table.compare_exchange(i, 0, leaf) {
            Ok(()) => {
                self.sync(table, i);
                Ok(())
            }
            Err(cur) if present(cur) && !is_leaf(cur, level) => {
                // A table is left where earlier, smaller mappings were:
                // map the range with the next size down inside it.
                let sub = level_size(level - 1);
                for j in 0..512 {
                    self.map_one(iova + j * sub, paddr + j * sub, level - 1, prot, gfp)?;
                }
                Ok(())
            }
            Err(_) => Err(EEXIST),
        }
    }

    /// Maps `count` pages of `pgsize` bytes from `iova` to `paddr`.
    /// Returns the bytes mapped, and an error if that is short.
    pub(crate) fn map(
        &self,
        iova: u64,
        paddr: PhysAddr,
        pgsize: usize,
        count: usize,
        prot: Prot,
        gfp: Flags,
    ) -> (usize, Result) {
        let Some(level) = leaf_level(pgsize).filter(|l| *l <= self.levels) else {
            return (0, Err(EINVAL));
        };
        let size = pgsize as u64;
        let aligned = (iova | paddr) & (size - 1) == 0;
        let Some(total) = size.checked_mul(count as u64) else {
            return (0, Err(EINVAL));
        };
        if !aligned || !self.in_range(iova, total) {
            return (0, Err(EINVAL));
        }
        // Output addresses the format cannot hold are refused, as
        // generic_pt refuses them, rather than cut to 52 bits.
        let fits = match paddr.checked_add(total.saturating_sub(1)) {
            Some(last) => last >> MAX_OA_BITS == 0,
            None => false,
        };
        if !fits {
            return (0, Err(ERANGE));
        }
        let mut mapped = 0;
        for n in 0..count as u64 {
            if let Err(e) = self.map_one(iova + n * size, paddr + n * size, level, prot, gfp) {
                return (mapped, Err(e));
            }
            mapped += pgsize;
        }
        (mapped, Ok(()))
    }

    /// Maps `first..=last` 1:1, readable and writable, with the largest
    /// pages in `sizes` (a page-size bitmap) that fit. Pages already
    /// mapped are left as they are: in a 1:1 table they map the same.
    pub(crate) fn map_identity(&self, first: u64, last: u64, sizes: usize) -> Result {
        let rw = Prot::READ.union(Prot::WRITE);
        let mut a = first & !0xfff;
        while a <= last {
            let mut size = 0x1000u64;
            for s in [0x4000_0000u64, 0x20_0000] {
                if sizes & (s as usize) != 0 && a & (s - 1) == 0 && last - a >= s - 1 {
                    size = s;
                    break;
                }
            }
            match self.map(a, a, size as usize, 1, rw, GFP_KERNEL).1 {
                Ok(()) => {}
                Err(e) if e == EEXIST => {
                    // Partly mapped already: page by page.
                    for p in (a..a + size).step_by(0x1000) {
                        match self.map(p, p, 0x1000, 1, rw, GFP_KERNEL).1 {
                            Ok(()) => {}
                            Err(e) if e == EEXIST => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
            match a.checked_add(size) {
                Some(n) => a = n,
                None => break,
            }
        }
        Ok(())
    }

    /// The leaf entry that translates `iova`: its table, index and level.
    fn find(&self, iova: u64) -> Option<(&Table, usize, u32)> {
        if !self.in_range(iova, 1) {
            return None;
        }
        let mut table: &Table = &self.root;
        let mut l = self.levels;
        loop {
            let i = index(iova, l);
            let pte = table.read(i);
            if !present(pte) {
                return None;
            }
            if is_leaf(pte, l) {
                return Some((table, i, l));
            }
            table = self.child(pte);
            l -= 1;
        }
    }

    /// Unmaps the pages that translate `size` bytes from `iova`, stopping
    /// at the first address that is not mapped. A page larger than asked
    /// for is unmapped whole. Returns the bytes unmapped.
    ///
    /// Tables that cover only unmapped addresses are unlinked and passed
    /// to `free`, which must keep them until the IOTLB and the
    /// paging-structure caches are flushed (an IOTLB gather's freelist).
    /// Only tables the range covers whole are removed: no concurrent map
    /// or unmap of a disjoint range can be using them.
    pub(crate) fn unmap(&self, iova: u64, size: u64, free: &mut impl FnMut(TablePage)) -> u64 {
        let mut done = 0;
        while done < size {
            let Some((table, i, l)) = self.find(iova + done) else {
                break;
            };
            let ls = level_size(l);
            if (iova + done) & (ls - 1) != 0 {
                // Part of a larger page: the caller's range is wrong.
                break;
            }
            table.write(i, 0);
            self.sync(table, i);
            done += ls;
        }
        if done > 0 {
            self.prune(&self.root, self.levels, 0, iova, iova + (done - 1), free);
        }
        done
    }

    /// Unlinks the tables below `table`, a table at `level` whose first
    /// IOVA is `base`, that lie inside `first..=last`, and passes them to
    /// `free`. Every leaf in the range is already cleared.
    fn prune(
        &self,
        table: &Table,
        level: u32,
        base: u64,
        first: u64,
        last: u64,
        free: &mut impl FnMut(TablePage),
    ) {
        let ls = level_size(level);
        let span_last = base + (ls * 512 - 1);
        let lo = if first > base { index(first, level) } else { 0 };
        let hi = if last < span_last {
            index(last, level)
        } else {
            511
        };
        for i in lo..=hi {
            let pte = table.read(i);
            if !present(pte) || is_leaf(pte, level) {
                continue;
            }
            let start = base + i as u64 * ls;
            if start >= first && start + (ls - 1) <= last {
                // Not while a dump walks the tables: it may be in this one.
                let walk = WALK.lock();
                table.write(i, 0);
                drop(walk);
                self.sync(table, i);
                // SAFETY: By the type invariant the entry held a table of
                // this page table, leaked when it was linked in. It is
                // unlinked now and taken back only here: nothing else
                // unmaps this range at the same time.
                let child = unsafe { TablePage::from_phys(pte & PTE_ADDR) };
                self.release(child, level - 1, free);
            } else {
                self.prune(self.child(pte), level - 1, start, first, last, free);
            }
        }
    }

    /// Passes `table`, an unlinked table at `level`, and the tables
    /// below it to `free`.
    fn release(&self, table: TablePage, level: u32, free: &mut impl FnMut(TablePage)) {
        if level > 1 {
            for i in 0..512 {
                let pte = table.read(i);
                if present(pte) && !is_leaf(pte, level) {
                    // SAFETY: As in `prune`: a table of this page table
                    // that only the unlinked `table` still points to.
                    let child = unsafe { TablePage::from_phys(pte & PTE_ADDR) };
                    self.release(child, level - 1, free);
                }
            }
        }
        self.tables.fetch_sub(1, Ordering::Relaxed);
        free(table);
    }

    /// The physical address `iova` translates to, and the size of its page.
    pub(crate) fn translate(&self, iova: u64) -> Option<(PhysAddr, u64)> {
        let (table, i, l) = self.find(iova)?;
        let ls = level_size(l);
        Some((
            (table.read(i) & PTE_ADDR & !(ls - 1)) | (iova & (ls - 1)),
            ls,
        ))
    }

    /// Calls `f` with every present leaf, in IOVA order: its IOVA, entry
    /// and level.
    pub(crate) fn for_each_leaf(&self, f: &mut impl FnMut(u64, u64, u32)) {
        self.walk(&self.root, self.levels, 0, f);
    }

    fn walk(&self, table: &Table, level: u32, base: u64, f: &mut impl FnMut(u64, u64, u32)) {
        for i in 0..512 {
            let pte = table.read(i);
            if !present(pte) {
                continue;
            }
            let iova = base + (i as u64) * level_size(level);
            if is_leaf(pte, level) {
                f(iova, pte, level);
            } else {
                self.walk(self.child(pte), level - 1, iova, f);
            }
        }
    }

    /// Frees the tables below `table`, a table at `level`.
    fn free_below(table: &Table, level: u32) {
        if level == 1 {
            return;
        }
        for i in 0..512 {
            let pte = table.read(i);
            if present(pte) && !is_leaf(pte, level) {
                // SAFETY: By the type invariant the entry holds a leaked
                // table owned by this page table, reclaimed only here; the
                // page table is being dropped, so nothing walks it.
                let child = unsafe { TablePage::from_phys(pte & PTE_ADDR) };
                Self::free_below(&child, level - 1);
            }
        }
    }
}

/// Writes the leaves of the table tree at `root`, a table at `level`, the
/// way the C driver's `domain_translation_struct` debugfs file does: one
/// line per leaf, its IOVA page frame number, then the entries on the path
/// to it by level (PML5E, PML4E, PDPE, then PDE and PTE where present).
///
/// The walk holds [`WALK`]: no table can be unlinked from the tree
/// meanwhile, and tables are freed only after they were unlinked.
///
/// # Safety
///
/// `root` must be the root table of a live [`PageTable`] that is not
/// dropped during the call.
pub(crate) unsafe fn dump(
    root: PhysAddr,
    level: u32,
    f: &mut impl core::fmt::Write,
) -> core::fmt::Result {
    let mut path = [0u64; 6];
    let _walk = WALK.lock();
    // SAFETY: Per the safety requirements the root is live; the tables
    // below it stay linked, and so live, while `WALK` is held.
    unsafe { dump_level(Table::from_phys(root), level, 0, &mut path, f) }
}

/// # Safety
///
/// `table` must be live, and the caller must hold [`WALK`], so that the
/// tables below it stay linked, and live, during the call.
unsafe fn dump_level(
    table: &Table,
    level: u32,
    base: u64,
    path: &mut [u64; 6],
    f: &mut impl core::fmt::Write,
) -> core::fmt::Result {
    if !(1..=5).contains(&level) {
        return Ok(());
    }
    for i in 0..512 {
        let pte = table.read(i);
        if !present(pte) {
            continue;
        }
        let iova = base + (i as u64) * level_size(level);
        path[level as usize] = pte;
        if is_leaf(pte, level) {
            write!(
                f,
                "{:#015x} |\t{:#018x}\t{:#018x}\t{:#018x}",
                iova >> 12,
                path[5],
                path[4],
                path[3]
            )?;
            if path[2] != 0 {
                write!(f, "\t{:#018x}", path[2])?;
                if path[1] != 0 {
                    write!(f, "\t{:#018x}", path[1])?;
                }
            }
            writeln!(f)?;
        } else {
            // SAFETY: A present non-leaf entry of a live table points to a
            // table of the same page table, which stays linked while `WALK`
            // is held.
            unsafe { dump_level(Table::from_phys(pte & PTE_ADDR), level - 1, iova, path, f)? };
        }
        path[level as usize] = 0;
    }
    Ok(())
}

impl Drop for PageTable {
    fn drop(&mut self) {
        Self::free_below(&self.root, self.levels);
    }
}

#[kunit_tests(rust_vtd_pagetable)]
mod tests {
    use super::*;

    const RW: Prot = Prot::from_raw(3);

    #[test]
    fn entry_encodings_match_the_spec_and_vtdss() {
        // VT-d 9.8 / generic_pt fmt/vtdss.h: R bit 0, W bit 1, PS bit 7,
        // SNP bit 11, address 51:12; tables are R|W.
        assert_eq!(table_pte(0x1234_5000), 0x1234_5003);
        assert_eq!(leaf_pte(0xabc_d000, 1, RW, false), Some(0xabc_d003));
        assert_eq!(leaf_pte(0x20_0000, 2, Prot::READ, false), Some(0x20_0081));
        assert_eq!(
            leaf_pte(0x4000_0000, 3, Prot::WRITE, false),
            Some(0x4000_0082)
        );
        assert_eq!(leaf_pte(0x1000, 1, Prot::from_raw(7), true), Some(0x1803));
        assert_eq!(leaf_pte(0x1000, 1, Prot::from_raw(0), false), None);
        assert_eq!(PTE_ADDR, 0x000f_ffff_ffff_f000);
        assert_eq!(
            (level_size(1), level_size(2), level_size(3)),
            (4096, 2 << 20, 1 << 30)
        );
        assert_eq!(index(0x7f_ffff_f000, 3), 511);
        assert_eq!(index(0x40_2000, 1), 2);
        assert_eq!(index(0x40_2000, 2), 2);
    }

    #[test]
    fn incoherent_tables_are_written_back_before_use() -> Result {
        let flushed = |pt: &PageTable| {
            (
                pt.flushes.tables.load(Ordering::Relaxed),
                pt.flushes.entries.load(Ordering::Relaxed),
            )
        };
        let pt = PageTable::new(4, false, false)?;
        // The root, when it is made.
        assert_eq!(flushed(&pt), (1, 0));
        pt.map(0x20_0000_0000, 0x1000, 4096, 1, RW, GFP_KERNEL).1?;
        // Three new tables (levels 3, 2 and 1), each written back whole
        // before it was linked, the three links, and the leaf.
        assert_eq!(flushed(&pt), (4, 4));
        assert_ne!(pt.root.read(index(0x20_0000_0000, 4)) & PTE_FLUSHED, 0);
        // Another page in the same level-1 table: its leaf only.
        pt.map(0x20_0000_1000, 0x2000, 4096, 1, RW, GFP_KERNEL).1?;
        assert_eq!(flushed(&pt), (4, 5));
        // A link that another mapper installed and has not written back
        // yet (no PTE_FLUSHED): the next mapper through it writes it back
        // itself, besides its own two new tables, their links and its leaf.
        let iova = 0x100_0000_0000;
        let t = TablePage::new()?;
        t.flush_all();
        pt.root.write(index(iova, 4), table_pte(t.into_phys()));
        pt.tables.fetch_add(1, Ordering::Relaxed);
        pt.map(iova, 0x3000, 4096, 1, RW, GFP_KERNEL).1?;
        assert_eq!(flushed(&pt), (6, 5 + 4));
        assert_eq!(pt.translate(iova), Some((0x3000, 4096)));
        // Unmapping writes the cleared leaf back.
        assert_eq!(pt.unmap(iova, 4096, &mut drop), 4096);
        assert_eq!(flushed(&pt), (6, 10));
        // A unit that snoops: nothing is written back.
        let pc = PageTable::new(4, true, false)?;
        pc.map(0x20_0000_0000, 0x1000, 4096, 1, RW, GFP_KERNEL).1?;
        assert_eq!(flushed(&pc), (0, 0));
        assert_eq!(pc.root.read(index(0x20_0000_0000, 4)) & PTE_FLUSHED, 0);
        Ok(())
    }

    #[test]
    fn output_addresses_beyond_52_bits_are_refused() -> Result {
        let pt = PageTable::new(4, true, false)?;
        assert_eq!(
            pt.map(0, 1 << 52, 4096, 1, RW, GFP_KERNEL),
            (0, Err(ERANGE))
        );
        assert_eq!(
            pt.map(0, (1 << 52) - 0x20_0000, 4096, 1024, RW, GFP_KERNEL),
            (0, Err(ERANGE))
        );
        assert_eq!(
            pt.map(0, (1 << 52) - 4096, 4096, 1, RW, GFP_KERNEL).1,
            Ok(())
        );
        // A page count whose byte size does not fit in 64 bits.
        assert_eq!(
            pt.map(0, 0, 1 << 30, usize::MAX / 2, RW, GFP_KERNEL),
            (0, Err(EINVAL))
        );
        Ok(())
    }

    #[test]
    fn map_translate_unmap() -> Result {
        let pt = PageTable::new(4, true, false)?;
        assert_eq!(pt.width(), 48);
        assert_eq!(
            pt.map(0x10_0000, 0x5000_0000, 4096, 4, RW, GFP_KERNEL).0,
            4 * 4096
        );
        assert_eq!(pt.translate(0x10_2abc), Some((0x5000_2abc, 4096)));
        assert_eq!(pt.translate(0x10_4000), None);
        // Levels 4, 3, 2 and 1: four tables.
        assert_eq!(pt.table_count(), 4);
        // Overlap is refused.
        assert_eq!(
            pt.map(0x10_1000, 0x1000, 4096, 1, RW, GFP_KERNEL).1,
            Err(EEXIST)
        );
        assert_eq!(pt.unmap(0x10_0000, 2 * 4096, &mut drop), 2 * 4096);
        assert_eq!(pt.translate(0x10_0000), None);
        assert_eq!(pt.translate(0x10_2000), Some((0x5000_2000, 4096)));
        // Unmapping stops at the first hole.
        assert_eq!(pt.unmap(0x10_2000, 8 * 4096, &mut drop), 2 * 4096);
        Ok(())
    }

    #[test]
    fn large_pages() -> Result {
        let pt = PageTable::new(3, false, false)?;
        assert_eq!(pt.width(), 39);
        assert_eq!(
            pt.map(0x4000_0000, 0x8000_0000, 1 << 30, 1, RW, GFP_KERNEL)
                .0,
            1 << 30
        );
        assert_eq!(
            pt.map(0x20_0000, 0x40_0000, 2 << 20, 2, RW, GFP_KERNEL).0,
            4 << 20
        );
        assert_eq!(pt.translate(0x4123_4567), Some((0x8123_4567, 1 << 30)));
        assert_eq!(pt.translate(0x30_0001), Some((0x50_0001, 2 << 20)));
        let mut leaves = KVec::new();
        pt.for_each_leaf(&mut |iova, _, level| {
            let _ = leaves.push((iova, level), GFP_KERNEL);
        });
        assert_eq!(
            &leaves[..],
            &[(0x20_0000, 2), (0x40_0000, 2), (0x4000_0000, 3)]
        );
        // A 4 KiB unmap of a 2 MiB page unmaps the whole page.
        assert_eq!(pt.unmap(0x20_0000, 4096, &mut drop), 2 << 20);
        // Misaligned or out-of-range requests are refused.
        assert_eq!(pt.map(0x1000, 0, 2 << 20, 1, RW, GFP_KERNEL).1, Err(EINVAL));
        assert_eq!(pt.map(1 << 39, 0, 4096, 1, RW, GFP_KERNEL).1, Err(EINVAL));
        assert_eq!(pt.map(0, 0, 8192, 1, RW, GFP_KERNEL).1, Err(EINVAL));
        Ok(())
    }

    #[test]
    fn dump_matches_the_c_format() -> Result {
        let pt = PageTable::new(4, true, false)?;
        pt.map(0x20_0000, 0x4000_0000, 2 << 20, 1, RW, GFP_KERNEL)
            .1?;
        pt.map(0x40_1000, 0x5000, 4096, 1, RW, GFP_KERNEL).1?;
        let mut out = KVec::<u8>::with_capacity(4096, GFP_KERNEL)?;
        let mut w = Writer(&mut out);
        // SAFETY: `pt` is live for the call.
        unsafe { dump(pt.root_phys(), 4, &mut w) }.map_err(|_| EINVAL)?;
        let text = core::str::from_utf8(&out).map_err(|_| EINVAL)?;
        let mut lines = text.lines();
        // The 2 MiB leaf: PML5E (0), PML4E, PDPE, PDE; the 4 KiB leaf has
        // a PTE column too.
        let l1 = lines.next().ok_or(EINVAL)?;
        assert!(l1.starts_with("0x0000000000200 |\t0x0000000000000000\t0x"));
        assert!(l1.ends_with("\t0x0000000040000083"));
        assert_eq!(l1.split('\t').count(), 5);
        let l2 = lines.next().ok_or(EINVAL)?;
        assert!(l2.starts_with("0x0000000000401 |"));
        assert!(l2.ends_with("\t0x0000000000005003"));
        assert_eq!(l2.split('\t').count(), 6);
        assert!(lines.next().is_none());
        Ok(())
    }

    /// A writer into a buffer reserved up front: `dump` holds the walk
    /// lock, with interrupts off, so nothing it writes to may allocate
    /// (debugfs' seq_file buffer does not either).
    struct Writer<'a>(&'a mut KVec<u8>);

    impl core::fmt::Write for Writer<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            if self.0.capacity() - self.0.len() < s.len() {
                return Err(core::fmt::Error);
            }
            self.0
                .extend_from_slice(s.as_bytes(), GFP_NOWAIT)
                .map_err(|_| core::fmt::Error)
        }
    }

    #[test]
    fn identity_map_uses_the_largest_pages() -> Result {
        let pt = PageTable::new(4, true, false)?;
        // 4 KiB up to the first 2 MiB boundary, 2 MiB up to 1 GiB, one
        // 1 GiB page, then 2 MiB and 4 KiB pages to the end.
        pt.map_identity(0x1f_f000, 0x8060_0fff, 0x4020_1000)?;
        let mut sizes = [0usize; 4];
        pt.for_each_leaf(&mut |iova, pte, level| {
            sizes[level as usize] += 1;
            assert_eq!(pte & PTE_ADDR, iova);
        });
        assert_eq!(sizes, [0, 2, 511 + 3, 1]);
        assert_eq!(pt.translate(0x4abc_d123), Some((0x4abc_d123, 1 << 30)));
        // Overlapping ranges are fine.
        pt.map_identity(0x8060_0000, 0x8060_1fff, 0x4020_1000)?;
        assert_eq!(pt.translate(0x8060_1000), Some((0x8060_1000, 4096)));
        Ok(())
    }

    #[test]
    fn large_page_over_an_emptied_table() -> Result {
        let pt = PageTable::new(4, true, false)?;
        pt.map(0x60_0000, 0x1000, 4096, 1, RW, GFP_KERNEL).1?;
        assert_eq!(pt.unmap(0x60_0000, 4096, &mut drop), 4096);
        // The level-1 table is still there; the 2 MiB request is mapped
        // with 4 KiB pages inside it, and translates the same.
        pt.map(0x60_0000, 0x120_0000, 2 << 20, 1, RW, GFP_KERNEL)
            .1?;
        assert_eq!(pt.translate(0x7f_f123), Some((0x13f_f123, 4096)));
        let mut freed = 0;
        assert_eq!(pt.unmap(0x60_0000, 2 << 20, &mut |_| freed += 1), 2 << 20);
        assert_eq!(pt.translate(0x60_0000), None);
        // Now the range covered the table whole: it went to the freelist.
        assert_eq!(freed, 1);
        Ok(())
    }

    #[test]
    fn unmap_frees_only_tables_it_covers_whole() -> Result {
        let pt = PageTable::new(4, true, false)?;
        // 1 GiB from 1 GiB: the first 2 MiB in 4 KiB pages, the rest in
        // 2 MiB pages. And one 4 KiB page at 2 GiB.
        pt.map(0x4000_0000, 0x1_0000_0000, 4096, 512, RW, GFP_KERNEL)
            .1?;
        pt.map(0x4020_0000, 0x1_0020_0000, 2 << 20, 511, RW, GFP_KERNEL)
            .1?;
        pt.map(0x8000_0000, 0x1000, 4096, 1, RW, GFP_KERNEL).1?;
        // Root, level 3, two level-2 and two level-1 tables.
        assert_eq!(pt.table_count(), 6);
        let mut freed = 0;
        let mut free = |_| freed += 1;
        // Each half of the first 2 MiB: neither call covers its level-1
        // table whole, so the emptied table stays.
        assert_eq!(pt.unmap(0x4000_0000, 1 << 20, &mut free), 1 << 20);
        assert_eq!(pt.unmap(0x4010_0000, 1 << 20, &mut free), 1 << 20);
        assert_eq!(pt.table_count(), 6);
        // Mapped again, then all of 1 GiB..2 GiB in one call: the level-2
        // table and the level-1 table below it go.
        pt.map(0x4000_0000, 0x1_0000_0000, 4096, 512, RW, GFP_KERNEL)
            .1?;
        assert_eq!(pt.unmap(0x4000_0000, 1 << 30, &mut free), 1 << 30);
        assert_eq!(pt.table_count(), 4);
        assert_eq!(freed, 2);
        // The neighbour is untouched.
        assert_eq!(pt.translate(0x8000_0000), Some((0x1000, 4096)));
        Ok(())
    }
}
