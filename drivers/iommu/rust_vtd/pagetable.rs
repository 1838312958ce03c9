// SPDX-License-Identifier: GPL-2.0

//! Second-stage page tables (VT-d 3.7 and 9.8): the format a unit's
//! tables take, and the debugfs dump of a table tree.
//!
//! The tables themselves are generic_pt's `vtdss` format
//! (`kernel::iommu::pt`), which maps, unmaps, writes tables back for units
//! that do not snoop the CPU caches (ECAP.C clear), and frees emptied
//! tables after the flush. What is VT-d's own is here: which format a
//! unit's domains get, whether a unit can walk a domain's tables, and the
//! dump in the C driver's format, which walks a table tree by physical
//! address.
//!
//! A table has 512 64-bit entries. Level 1 entries map 4 KiB pages;
//! level 2 and 3 entries point to the next table down or, with PS set,
//! map a 2 MiB or 1 GiB page. The top level is 3, 4 or 5 for 39, 48 or
//! 57-bit address widths.

use crate::regs::{
    CAP,
    ECAP, //
};
use kernel::{
    io::PhysAddr,
    iommu::{
        pages::{
            Table,
            Walker, //
        },
        pt,
    },
    prelude::*,
};

/// Read permission; a present entry has R or W set.
pub(crate) const PTE_R: u64 = 1 << 0;
/// Write permission.
pub(crate) const PTE_W: u64 = 1 << 1;
/// Page size: the entry maps a 2 MiB or 1 GiB page, not a table.
pub(crate) const PTE_PS: u64 = 1 << 7;
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

/// Runs `free`, which frees tables unlinked from a table tree, so that no
/// [`dump`] walks them meanwhile.
pub(crate) fn free_unlinked(free: impl FnOnce()) {
    let _walk = WALK.lock();
    free()
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

/// Whether `pte` is present.
pub(crate) const fn present(pte: u64) -> bool {
    pte & (PTE_R | PTE_W) != 0
}

/// Whether the present entry `pte` at `level` maps a page.
pub(crate) const fn is_leaf(pte: u64, level: u32) -> bool {
    level == 1 || pte & PTE_PS != 0
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

/// What a unit can do with second-stage tables, as far as sharing a
/// domain's tables goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct UnitFeatures {
    /// Supported adjusted guest address widths (CAP.SAGAW).
    pub(crate) sagaw: u64,
    /// Maximum guest address width in bits (CAP.MGAW + 1).
    pub(crate) mgaw: u32,
    /// Second-stage large pages (CAP.SLLPS): bit 0 2 MiB, bit 1 1 GiB.
    pub(crate) sllps: u64,
    /// Table walks snoop the CPU caches (ECAP.C).
    pub(crate) coherent: bool,
    /// Snoop control: leaves may force snooping (ECAP.SC).
    pub(crate) snoop_control: bool,
}

impl UnitFeatures {
    /// The features of a unit with capabilities `cap` and `ecap`.
    pub(crate) fn of(cap: CAP, ecap: ECAP) -> Self {
        Self {
            sagaw: cap.sagaw().get(),
            mgaw: cap.mgaw_bits(),
            sllps: cap.sllps().get(),
            coherent: ecap.c(),
            snoop_control: ecap.sc(),
        }
    }
}

/// How a domain's tables are made: what a unit must support to walk them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TableFormat {
    /// The AW encoding of the level count, for context entries.
    pub(crate) aw: u8,
    /// IOVA width the domain maps (its aperture).
    pub(crate) width: u32,
    /// Page sizes it maps.
    pub(crate) pgsizes: usize,
    /// Whether tables are written without writing them back from the CPU
    /// caches (for units that snoop).
    pub(crate) coherent: bool,
    /// Whether leaves force snooping (SNP). generic_pt sets SNP only when
    /// a domain is asked to enforce cache coherency, which rust_vtd does
    /// not offer yet: domains are made with this clear.
    pub(crate) snoop: bool,
}

impl TableFormat {
    /// The format of domains allocated for `unit`: as many levels as its
    /// widest supported address width, limited to what it can address.
    pub(crate) fn for_unit(u: &UnitFeatures) -> Result<Self> {
        let aw = crate::context::widest_aw(u.sagaw).ok_or(ENODEV)?;
        let levels = u32::from(aw) + 2;
        Ok(Self {
            aw,
            width: (level_shift(levels) + 9).min(u.mgaw),
            pgsizes: pgsize_bitmap(u.sllps),
            coherent: u.coherent,
            snoop: false,
        })
    }

    /// Whether unit `u` can use tables of this format, as the C driver's
    /// `paging_domain_compatible_second_stage()` decides: `EINVAL` if not,
    /// and the core then gives the device a domain of its own.
    pub(crate) fn check(&self, u: &UnitFeatures) -> Result {
        let fits = u.sagaw & (1 << self.aw) != 0
            && self.width <= u.mgaw
            && (u.sllps & 1 != 0 || self.pgsizes & 0x20_0000 == 0)
            && (u.sllps & 2 != 0 || self.pgsizes & 0x4000_0000 == 0)
            && (u.coherent || !self.coherent)
            && (u.snoop_control || !self.snoop);
        if fits {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// How generic_pt builds tables of this format for a unit that reads
    /// them as `walker` says.
    pub(crate) fn config(&self, walker: &Walker) -> pt::Config {
        pt::Config {
            levels: u32::from(self.aw) + 2,
            va_bits: self.width as u8,
            oa_bits: MAX_OA_BITS as u8,
            incoherent: match walker {
                Walker::Coherent => None,
                Walker::Incoherent(dev) => Some(dev.clone()),
            },
        }
    }
}
/// Writes the leaves of the table tree at `root`, a table at `level`, the
/// way the C driver's `domain_translation_struct` debugfs file does: one
/// line per leaf, its IOVA page frame number, then the entries on the path
/// to it by level (PML5E, PML4E, PDPE, then PDE and PTE where present).
///
/// The walk holds [`WALK`]: the tables unmaps unlink from the tree are
/// freed under it (`PagingOps::free_tables`), so none of the tables it
/// reaches is freed meanwhile.
///
/// # Safety
///
/// `root` must be the top table of a live page table (of a domain or the
/// identity table) that is not dropped during the call.
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

#[kunit_tests(rust_vtd_pagetable)]
mod tests {
    use super::*;
    use kernel::iommu::{
        paging::Prot,
        pt::{
            Table as PtTable,
            Vtdss, //
        },
    };

    const RW: Prot = Prot::from_raw(3);

    /// A 4-level table as QEMU's default unit gets it.
    fn qemu_table() -> Result<Pin<KBox<PtTable<Vtdss>>>> {
        let qemu = UnitFeatures {
            sagaw: 0x6,
            mgaw: 48,
            sllps: 3,
            coherent: true,
            snoop_control: false,
        };
        let cfg = TableFormat::for_unit(&qemu)?.config(&Walker::Coherent);
        KBox::pin_init(PtTable::<Vtdss>::new(&cfg, GFP_KERNEL), GFP_KERNEL)
    }

    #[test]
    fn page_sizes_from_sllps() {
        // SLLPS 0: 4 KiB only. QEMU's CAP (0x80d2008c222f0606) has
        // SLLPS 3: 2 MiB and 1 GiB too.
        assert_eq!((0x80d2008c222f0606u64 >> 34) & 0xf, 3);
        assert_eq!(pgsize_bitmap(0), 0x1000);
        assert_eq!(pgsize_bitmap(1), 0x20_1000);
        assert_eq!(pgsize_bitmap(3), 0x4020_1000);
    }

    #[test]
    fn domains_fit_only_units_that_can_walk_them() -> Result {
        // QEMU's default unit: SAGAW 39 and 48 bits, MGAW 48, 2 MiB and
        // 1 GiB pages, coherent, no snoop control.
        let qemu = UnitFeatures {
            sagaw: 0x6,
            mgaw: 48,
            sllps: 3,
            coherent: true,
            snoop_control: false,
        };
        let f = TableFormat::for_unit(&qemu)?;
        assert_eq!(
            f,
            TableFormat {
                aw: 2,
                width: 48,
                pgsizes: 0x4020_1000,
                coherent: true,
                snoop: false
            }
        );
        assert_eq!(f.check(&qemu), Ok(()));
        // Each field that differs in a way the tables cannot bear.
        let no_4level = UnitFeatures { sagaw: 0x2, ..qemu };
        let narrower = UnitFeatures { mgaw: 39, ..qemu };
        let no_1g = UnitFeatures { sllps: 1, ..qemu };
        let no_2m = UnitFeatures { sllps: 2, ..qemu };
        let incoherent = UnitFeatures {
            coherent: false,
            ..qemu
        };
        for u in [no_4level, narrower, no_1g, no_2m, incoherent] {
            assert_eq!(f.check(&u), Err(EINVAL));
        }
        // Tables that force snooping need snoop control.
        let sc = UnitFeatures {
            snoop_control: true,
            ..qemu
        };
        let fsc = TableFormat { snoop: true, ..f };
        assert_eq!(fsc.check(&sc), Ok(()));
        assert_eq!(fsc.check(&qemu), Err(EINVAL));
        // And the other way round, what the tables do not use is no
        // obstacle: an incoherent domain on a coherent unit, a unit with
        // more page sizes or more width.
        let fi = TableFormat::for_unit(&incoherent)?;
        assert_eq!(fi.check(&qemu), Ok(()));
        let f39 = TableFormat::for_unit(&UnitFeatures {
            sagaw: 0x2,
            mgaw: 39,
            sllps: 0,
            ..qemu
        })?;
        assert_eq!((f39.aw, f39.width, f39.pgsizes), (1, 39, 0x1000));
        assert_eq!(f39.check(&qemu), Ok(()));
        Ok(())
    }

    #[test]
    fn generic_pt_builds_the_format() -> Result {
        let f39 = TableFormat::for_unit(&UnitFeatures {
            sagaw: 0x2,
            mgaw: 39,
            sllps: 1,
            coherent: true,
            snoop_control: false,
        })?;
        let mut t = KBox::pin_init(
            PtTable::<Vtdss>::new(&f39.config(&Walker::Coherent), GFP_KERNEL),
            GFP_KERNEL,
        )?;
        t.as_mut().restrict_page_sizes(f39.pgsizes)?;
        // The context entry's AW is the format's; no 1 GiB pages.
        assert_eq!(t.hw_info().aw, f39.aw);
        assert_eq!(t.pgsize_bitmap(), 0x20_1000);
        // An aligned 1 GiB is mapped with 2 MiB pages, within 39 bits.
        t.as_mut()
            .map(0x4000_0000, 0x8000_0000, 1 << 30, RW, GFP_KERNEL)?;
        assert_eq!(t.iova_to_phys(0x7fff_ffff), 0xbfff_ffff);
        assert!(t.as_mut().map(1 << 39, 0, 4096, RW, GFP_KERNEL).is_err());
        Ok(())
    }

    #[test]
    fn output_addresses_beyond_52_bits_are_refused() -> Result {
        let mut t = qemu_table()?;
        assert!(t.as_mut().map(0, 1 << 52, 4096, RW, GFP_KERNEL).is_err());
        assert_eq!(t.iova_to_phys(0), 0);
        t.as_mut().map(0, (1 << 52) - 4096, 4096, RW, GFP_KERNEL)?;
        assert_eq!(t.iova_to_phys(0x123), (1 << 52) - 4096 + 0x123);
        Ok(())
    }

    #[test]
    fn unmap_frees_only_tables_it_covers_whole() -> Result {
        let mut t = qemu_table()?;
        // 1 GiB from 1 GiB, the first 2 MiB of it in 4 KiB pages (its
        // output is not 2 MiB aligned there), and one 4 KiB page at 2 GiB.
        t.as_mut()
            .map(0x4000_0000, 0x1_0000_1000, 2 << 20, RW, GFP_KERNEL)?;
        t.as_mut()
            .map(0x4020_0000, 0x1_0020_0000, 511 << 21, RW, GFP_KERNEL)?;
        t.as_mut().map(0x8000_0000, 0x1000, 4096, RW, GFP_KERNEL)?;
        let mut freed = 0;
        // Each half of the first 2 MiB: neither covers its level-1 table
        // whole, so the emptied table stays.
        assert_eq!(
            t.as_mut().unmap(0x4000_0000, 1 << 20, &mut |n| freed += n),
            1 << 20
        );
        assert_eq!(
            t.as_mut().unmap(0x4010_0000, 1 << 20, &mut |n| freed += n),
            1 << 20
        );
        assert_eq!(freed, 0);
        // Mapped again, then all of 1 GiB..2 GiB in one call: the level-2
        // table and the level-1 table below it go.
        t.as_mut()
            .map(0x4000_0000, 0x1_0000_1000, 2 << 20, RW, GFP_KERNEL)?;
        assert_eq!(
            t.as_mut().unmap(0x4000_0000, 1 << 30, &mut |n| freed += n),
            1 << 30
        );
        assert_eq!(freed, 2);
        // The neighbour is untouched.
        assert_eq!(t.iova_to_phys(0x8000_0000), 0x1000);
        Ok(())
    }

    #[test]
    fn dump_matches_the_c_format() -> Result {
        let mut t = qemu_table()?;
        t.as_mut()
            .map(0x20_0000, 0x4000_0000, 2 << 20, RW, GFP_KERNEL)?;
        t.as_mut().map(0x40_1000, 0x5000, 4096, RW, GFP_KERNEL)?;
        let mut out = KVec::<u8>::with_capacity(4096, GFP_KERNEL)?;
        let mut w = Writer(&mut out);
        // SAFETY: `t` is live for the call.
        unsafe { dump(t.hw_info().root, 4, &mut w) }.map_err(|_| EINVAL)?;
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
}
