// SPDX-License-Identifier: GPL-2.0

//! Domain identifiers (VT-d 3.4.2, CAP.ND): the tag a unit puts on what it
//! caches for a domain.
//!
//! A domain ID may be handed out again only once no cache of the unit can
//! hold a translation tagged with it. When an invalidation of the ID was
//! not confirmed, the ID is kept out of use for good ([`DomainIds::keep`])
//! rather than risk a new domain hitting the old one's translations.

use kernel::{
    bitmap::BitmapVec,
    id_pool::IdPool,
    prelude::*, //
};

/// Domain ID of pass-through context entries, as the C driver uses it
/// (`FLPT_DEFAULT_DID`). Never handed out, nor is 0, which caching-mode
/// units reserve.
pub(crate) const PASS_THROUGH_DID: u16 = 1;

/// The domain IDs of one unit.
///
/// # Invariants
///
/// Every ID at or above `limit`, 0 and [`PASS_THROUGH_DID`] are taken in
/// `pool` and never released; `in_use` counts the other taken IDs, and
/// `kept` marks those of them that must never be released: `kept_count` of
/// them for an unconfirmed invalidation, `old_count` for a crashed kernel.
pub(crate) struct DomainIds {
    pool: IdPool,
    kept: BitmapVec,
    limit: usize,
    in_use: u32,
    kept_count: u32,
    old_count: u32,
}

impl DomainIds {
    /// The IDs of a unit that supports `count` of them (CAP.ND), at most
    /// 2^16.
    pub(crate) fn new(count: u64) -> Result<Self> {
        let limit = count.min(1 << 16) as usize;
        let mut pool = IdPool::with_capacity(limit, GFP_KERNEL)?;
        let kept = BitmapVec::new(pool.capacity(), GFP_KERNEL)?;
        for _ in 0..=PASS_THROUGH_DID {
            if let Some(id) = pool.find_unused_id(0) {
                id.acquire();
            }
        }
        while limit < pool.capacity() {
            match pool.find_unused_id(limit) {
                Some(id) => id.acquire(),
                None => break,
            };
        }
        // INVARIANT: 0, the pass-through ID and every ID from `limit` on are
        // taken; nothing else is.
        Ok(Self {
            pool,
            kept,
            limit,
            in_use: 0,
            kept_count: 0,
            old_count: 0,
        })
    }

    /// A free ID, or `None` if every one is in use.
    pub(crate) fn alloc(&mut self) -> Option<u16> {
        let id = self.pool.find_unused_id(0)?;
        if id.as_usize() >= self.limit {
            return None;
        }
        let id = id.acquire();
        self.in_use += 1;
        // CAST: `id < limit <= 2^16`.
        Some(id as u16)
    }

    /// Gives `id` back, unless it is kept.
    pub(crate) fn free(&mut self, id: u16) {
        let id = usize::from(id);
        if id <= usize::from(PASS_THROUGH_DID) || id >= self.limit || self.is_kept(id) {
            return;
        }
        self.pool.release_id(id);
        self.in_use -= 1;
    }

    /// Keeps `id` out of use for good: an invalidation of it was not
    /// confirmed.
    pub(crate) fn keep(&mut self, id: u16) {
        let id = usize::from(id);
        if id <= usize::from(PASS_THROUGH_DID) || id >= self.limit || self.is_kept(id) {
            return;
        }
        self.kept.set_bit(id);
        self.kept_count += 1;
    }

    /// Takes `id`, which context entries copied from a crashed kernel use,
    /// out of use for good: nothing tells when the last translation a unit
    /// cached under it is gone (the C driver keeps such IDs too). Returns
    /// false if `id` is reserved, beyond the unit's, or taken already.
    pub(crate) fn reserve_old(&mut self, id: u16) -> bool {
        let id = usize::from(id);
        if id >= self.limit {
            return false;
        }
        match self.pool.find_unused_id(id) {
            Some(unused) if unused.as_usize() == id => unused.acquire(),
            _ => return false,
        };
        self.kept.set_bit(id);
        self.in_use += 1;
        self.old_count += 1;
        true
    }

    /// The IDs taken for a crashed kernel's entries.
    pub(crate) fn old(&self) -> u32 {
        self.old_count
    }

    fn is_kept(&self, id: usize) -> bool {
        self.kept.next_bit(id) == Some(id)
    }

    /// The IDs handed out (the reserved ones not counted), kept ones
    /// included.
    pub(crate) fn in_use(&self) -> u32 {
        self.in_use
    }

    /// The IDs kept out of use.
    pub(crate) fn kept(&self) -> u32 {
        self.kept_count
    }
}

#[kunit_tests(rust_vtd_domain_id)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ids_are_never_handed_out() -> Result {
        // CAP.ND 0: 16 IDs, 14 of them usable; the pool itself has more.
        let mut ids = DomainIds::new(16)?;
        let mut got = KVec::new();
        while let Some(id) = ids.alloc() {
            got.push(id, GFP_KERNEL)?;
        }
        assert_eq!(got.len(), 14);
        assert_eq!((got[0], got[13]), (2, 15));
        assert_eq!(ids.in_use(), 14);
        ids.free(0);
        ids.free(PASS_THROUGH_DID);
        assert_eq!(ids.alloc(), None);
        ids.free(7);
        assert_eq!(ids.alloc(), Some(7));
        Ok(())
    }

    #[test]
    fn kept_ids_are_not_reused() -> Result {
        let mut ids = DomainIds::new(256)?;
        assert_eq!(ids.alloc(), Some(2));
        assert_eq!(ids.alloc(), Some(3));
        ids.keep(2);
        ids.free(2);
        ids.free(3);
        assert_eq!(ids.alloc(), Some(3));
        assert_eq!(ids.alloc(), Some(4));
        assert_eq!((ids.in_use(), ids.kept()), (3, 1));
        Ok(())
    }

    #[test]
    fn old_ids_are_reserved_for_good() -> Result {
        let mut ids = DomainIds::new(256)?;
        assert!(ids.reserve_old(2));
        assert!(ids.reserve_old(200));
        // Taken already, reserved, or beyond CAP.ND.
        assert!(!ids.reserve_old(2));
        assert!(!ids.reserve_old(PASS_THROUGH_DID));
        assert!(!ids.reserve_old(0));
        assert!(!ids.reserve_old(256));
        assert_eq!(ids.alloc(), Some(3));
        ids.free(2);
        ids.free(200);
        ids.free(3);
        assert_eq!(ids.alloc(), Some(3));
        assert_eq!((ids.in_use(), ids.old(), ids.kept()), (3, 2, 0));
        Ok(())
    }
}
