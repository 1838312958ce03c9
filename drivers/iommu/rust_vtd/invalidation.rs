// SPDX-License-Identifier: GPL-2.0

//! Invalidation (VT-d 6.5): what the driver asks a unit to forget, the
//! descriptors and register values that say it, and the invalidation
//! queue that carries them.
//!
//! Every invalidation is a [`ContextInvalidation`] or an
//! [`IotlbInvalidation`]. A unit with queued invalidation (ECAP.QI) takes
//! them as 128-bit descriptors in a ring of 256 ([`InvQueue`]); a unit
//! without takes them through the CCMD and IOTLB registers.
//!
//! The queue follows the C driver's `qi_submit_sync()`, and goes further
//! where that can report an invalidation that did not happen:
//!
//! - every batch ends with a wait descriptor that writes a sequence number,
//!   new for each batch, to a status word of its own slot: a late
//!   completion of an earlier batch can neither be taken for this one's
//!   nor overwrite it;
//! - slots are reused only once the unit has fetched them: a batch given up
//!   on (time-out) keeps its slots until the unit's head (IQH) has passed
//!   them;
//! - a queue error (IQE) marks the bad descriptor's batch failed, replaces
//!   the descriptor with a harmless status write, then clears the error and
//!   lets the unit go on; the failed batch is submitted once more, so that
//!   one damaged descriptor does not leave an invalidation unconfirmed, and
//!   fails only if rejected again; a time-out (ITE) aborts the batches the unit has
//!   fetched, which are submitted again; a completion error (ICE) fails
//!   every batch the unit has fetched;
//! - a batch that does not complete in time fails with `ETIMEDOUT`; nothing
//!   waits without a bound;
//! - the queue's lock is not held while waiting, so waits on one CPU do not
//!   stop the others from submitting.
//!
//! The slot logic runs against the [`QueueHw`] trait, which the unit
//! implements with its registers and the KUnit tests below with a fake
//! unit that can lose, delay, reject and abort descriptors.

use crate::regs::{
    poll,
    Block,
    IotlbRegs,
    CCMD,
    COMMAND_TIMEOUT,
    FSTS_ICE,
    FSTS_IQE,
    FSTS_ITE,
    IOTLB,
    IVA,
    REG_SIZE, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    io::{
        mem::ExclusiveIoMem,
        Io,
        PhysAddr, //
    },
    iommu::pages::{
        TablePage,
        Walker, //
    },
    new_spinlock_irq,
    prelude::*,
    processor::cpu_relax,
    sync::SpinLockIrq,
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

/// A context-cache invalidation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ContextInvalidation {
    /// Everything.
    Global,
    /// One device's entry, which had domain `did`.
    Device {
        /// Domain ID of the entry.
        did: u16,
        /// Requester (source) ID.
        sid: u16,
    },
}

/// An IOTLB invalidation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum IotlbInvalidation {
    /// Everything.
    Global,
    /// Every translation tagged with domain `did`.
    Domain {
        /// Domain ID.
        did: u16,
    },
    /// The translations of domain `did` for the 2^`am` pages from `addr`,
    /// which is aligned to that size (page-selective-within-domain).
    Pages {
        /// Domain ID.
        did: u16,
        /// First address, aligned to 4 KiB << `am`.
        addr: u64,
        /// Address mask: log2 of the number of 4 KiB pages.
        am: u8,
        /// Invalidation hint: only leaves changed, no table was freed, so
        /// the paging-structure caches may be kept.
        ih: bool,
    },
}

/// CCMD.ICC: invalidate the context cache.
const CCMD_ICC: u64 = 1 << 63;

/// IOTLB_REG: invalidate, and busy while set.
const IOTLB_IVT: u64 = 1 << 63;

impl ContextInvalidation {
    /// The domain ID the invalidation is for, if it is for one.
    pub(crate) fn domain(self) -> Option<u16> {
        match self {
            Self::Global => None,
            Self::Device { did, .. } => Some(did),
        }
    }

    /// Granularity: 1 global, 3 device-selective (2, domain, is not used).
    fn granularity(self) -> u64 {
        match self {
            Self::Global => 1,
            Self::Device { .. } => 3,
        }
    }

    /// The CCMD register value (VT-d 11.4.5.1), ICC set.
    pub(crate) fn register(self) -> u64 {
        let fields = match self {
            Self::Global => 0,
            Self::Device { did, sid } => (u64::from(sid) << 16) | u64::from(did),
        };
        CCMD_ICC | (self.granularity() << 61) | fields
    }

    /// The context-cache invalidate descriptor (VT-d 6.5.2.1).
    pub(crate) fn descriptor(self) -> [u64; 2] {
        let fields = match self {
            Self::Global => 0,
            Self::Device { did, sid } => (u64::from(sid) << 32) | (u64::from(did) << 16),
        };
        [fields | (self.granularity() << 4) | 1, 0]
    }
}

impl IotlbInvalidation {
    /// The domain ID the invalidation is for, if it is for one.
    pub(crate) fn domain(self) -> Option<u16> {
        match self {
            Self::Global => None,
            Self::Domain { did } | Self::Pages { did, .. } => Some(did),
        }
    }

    /// Granularity: 1 global, 2 domain-selective, 3 page-selective.
    fn granularity(self) -> u64 {
        match self {
            Self::Global => 1,
            Self::Domain { .. } => 2,
            Self::Pages { .. } => 3,
        }
    }

    fn did(self) -> u64 {
        match self {
            Self::Global => 0,
            Self::Domain { did } | Self::Pages { did, .. } => u64::from(did),
        }
    }

    /// The address word of a page-selective invalidation: the IVA
    /// register (VT-d 11.4.8.2), also the descriptor's high word, with the
    /// invalidation hint (IH, bit 6) where only leaves changed.
    pub(crate) fn address(self) -> Option<u64> {
        match self {
            Self::Pages { addr, am, ih, .. } => {
                Some((addr & !0xfff) | (u64::from(ih) << 6) | u64::from(am & 0x3f))
            }
            _ => None,
        }
    }

    /// The same invalidation with the invalidation hint set where
    /// `leaves_only`: the unmap it follows freed no table, so the unit may
    /// keep its paging-structure caches, as the C driver does. Tables
    /// freed after the flush need the hint clear.
    #[inline]
    pub(crate) fn leaves_only(self, leaves_only: bool) -> Self {
        match self {
            Self::Pages { did, addr, am, .. } => Self::Pages {
                did,
                addr,
                am,
                ih: leaves_only,
            },
            other => other,
        }
    }

    /// The page-selective invalidation of `first..=last` in domain `did`,
    /// as the smallest aligned power-of-two block that covers it (the C
    /// driver's calculate_psi_aligned_address()), or a domain-selective
    /// one where the block's mask exceeds `mamv` (CAP.MAMV) or the unit
    /// cannot invalidate by page (`psi` false).
    #[inline]
    pub(crate) fn covering(did: u16, first: u64, last: u64, psi: bool, mamv: u8) -> Self {
        let pfn = first >> 12;
        let last_pfn = (last.max(first)) >> 12;
        let pages = last_pfn - pfn + 1;
        let mut am = pages.next_power_of_two().trailing_zeros();
        if pfn & ((1u64 << am) - 1) != 0 {
            // Not aligned: the block is the one that holds both ends.
            let shared = !(pfn ^ last_pfn) & !((1u64 << am) - 1);
            am = if shared == 0 {
                64
            } else {
                shared.trailing_zeros()
            };
        }
        if !psi || am > u32::from(mamv) {
            return Self::Domain { did };
        }
        Self::Pages {
            did,
            addr: (pfn & !((1u64 << am) - 1)) << 12,
            am: am as u8,
            ih: false,
        }
    }

    /// The IOTLB_REG value (VT-d 11.4.8.1), IVT set; `dr`/`dw` drain reads
    /// and writes first where the unit can (CAP.DRD, CAP.DWD).
    pub(crate) fn register(self, dr: bool, dw: bool) -> u64 {
        IOTLB_IVT
            | (self.granularity() << 60)
            | (u64::from(dr) << 49)
            | (u64::from(dw) << 48)
            | (self.did() << 32)
    }

    /// The IOTLB invalidate descriptor (VT-d 6.5.2.3).
    #[inline]
    pub(crate) fn descriptor(self, dr: bool, dw: bool) -> [u64; 2] {
        [
            (self.did() << 16)
                | (u64::from(dr) << 7)
                | (u64::from(dw) << 6)
                | (self.granularity() << 4)
                | 2,
            self.address().unwrap_or(0),
        ]
    }
}

impl IotlbInvalidation {
    /// The range a device-TLB invalidation that goes with this one
    /// covers: the same pages, or everything (`ATC_ALL`) for a domain or
    /// global invalidation.
    pub(crate) fn atc_range(self) -> (u64, u8) {
        match self {
            Self::Pages { addr, am, .. } => (addr, am),
            _ => (0, ATC_ALL),
        }
    }
}

/// A device-TLB invalidation's size order that covers every address.
pub(crate) const ATC_ALL: u8 = 52;

/// The device-TLB descriptor's type (VT-d 6.5.2.5).
const DEVTLB_TYPE: u64 = 3;

/// A device's Address Translation Cache (PCIe ATS), the unit's
/// "device-TLB", which every IOTLB invalidation of the device's
/// translations must reach as well while its ATS is enabled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct AtcTarget {
    /// The device's source ID (its own requester ID, not an alias).
    pub(crate) sid: u16,
    /// Its physical function's source ID where the unit throttles
    /// device-TLB invalidations per function (ECAP.DIT); else 0.
    pub(crate) pfsid: u16,
    /// How many invalidation requests its ATC takes at once (1 to 32).
    pub(crate) qdep: u8,
}

impl AtcTarget {
    /// The device-TLB invalidate descriptor (VT-d 6.5.2.5, the C driver's
    /// `qi_desc_dev_iotlb()`) for the 2^`order` pages from `addr`, which
    /// is aligned to that size; an `order` of [`ATC_ALL`] or more covers
    /// everything.
    pub(crate) fn descriptor(self, addr: u64, order: u8) -> [u64; 2] {
        // A depth of 32 is written as 0.
        let qdep = if self.qdep >= 32 { 0 } else { self.qdep };
        let pfsid = u64::from(self.pfsid);
        let lo = (u64::from(self.sid) << 32)
            | ((pfsid & 0xfff0) << 48)
            | (u64::from(qdep & 0x1f) << 16)
            | ((pfsid & 0xf) << 12)
            | DEVTLB_TYPE;
        let hi = match order.min(ATC_ALL) {
            0 => addr & !0xfff,
            // Size bit set: the lowest 0 bit of the address from bit 12
            // up gives the size, 2^(order) pages.
            o => ((addr | ((1u64 << (12 + o - 1)) - 1)) & !0xfff) | 1,
        };
        [lo, hi]
    }
}

/// Whether `desc` is a device-TLB invalidation.
#[inline]
fn is_devtlb(desc: &[u64; 2]) -> bool {
    desc[0] & 0xf == DEVTLB_TYPE
}

/// The invalidation wait descriptor (VT-d 6.5.2.8): when everything before
/// it is done, write `data` to `status` (SW).
pub(crate) fn wait_descriptor(data: u32, status: u64) -> [u64; 2] {
    [(u64::from(data) << 32) | (1 << 5) | 5, status]
}

/// Carries out `ctx` then `iotlb` through the registers of a unit without
/// queued invalidation (VT-d 6.5.1), whose IOTLB registers are `regs`
/// (ECAP.IRO), and waits, bounded, for each. The caller holds the unit's
/// register lock. Fails with `EIO` if the unit reports that it ignored a
/// request (actual granularity 0).
pub(crate) fn register_invalidate(
    io: &ExclusiveIoMem<'_, REG_SIZE>,
    regs: Block<IotlbRegs>,
    ctx: Option<ContextInvalidation>,
    iotlb: Option<IotlbInvalidation>,
    dr: bool,
    dw: bool,
) -> Result {
    if let Some(c) = ctx {
        io.try_write_reg(CCMD::from(c.register()))?;
        let done = poll(COMMAND_TIMEOUT, || io.try_read(CCMD), |v| !v.icc())?;
        // An actual granularity of 0: the unit found the request wrong
        // and ignored it (VT-d 11.4.4.1).
        if done.caig().get() == 0 {
            return Err(EIO);
        }
    }
    if let Some(t) = iotlb {
        if let Some(a) = t.address() {
            io.try_write(regs.reg::<IVA>(), IVA::from(a))?;
        }
        io.try_write(regs.reg::<IOTLB>(), IOTLB::from(t.register(dr, dw)))?;
        let done = poll(
            COMMAND_TIMEOUT,
            || io.try_read(regs.reg::<IOTLB>()),
            |v| !v.ivt(),
        )?;
        // (As CCMD.CAIG; the C driver only logs it.)
        if done.iaig().get() == 0 {
            return Err(EIO);
        }
    }
    Ok(())
}

/// Descriptors in the queue: one 4 KiB page of 128-bit descriptors.
pub(crate) const QUEUE_LEN: usize = 256;

/// How long a batch may take; the C driver spins forever on a hung queue.
pub(crate) const QI_TIMEOUT: Delta = Delta::from_millis(1000);

/// A time-out whose clock starts at the first look: a batch the unit has
/// carried out by the time its status is first read (QEMU's unit does so
/// on the IQT write) costs no clock read.
struct Deadline {
    timeout: Delta,
    start: Option<Instant<Monotonic>>,
}

impl Deadline {
    fn new(timeout: Delta) -> Self {
        Deadline {
            timeout,
            start: None,
        }
    }

    /// Whether `timeout` has passed since the first call; the first call
    /// starts the clock and answers `false`.
    fn passed(&mut self) -> bool {
        match self.start {
            Some(start) => start.elapsed() > self.timeout,
            None => {
                self.start = Some(Instant::now());
                false
            }
        }
    }
}

/// How often a batch the unit aborted (ITE) is submitted again.
const ABORT_RETRIES: u32 = 3;

/// A descriptor every unit rejects: type 0 is not defined. Only the test
/// hook ([`InvQueue::inject_error`]) submits it.
const INVALID_DESCRIPTOR: [u64; 2] = [0, 0];

/// The unit, as the queue sees it: its head and tail registers and the
/// queue's error bits of its fault status register.
pub(crate) trait QueueHw {
    /// The slot the unit fetches next (IQH).
    fn head(&self) -> Result<usize>;
    /// Lets the unit fetch up to, not including, slot `tail` (IQT).
    fn set_tail(&self, tail: usize) -> Result;
    /// The fault status register (FSTS).
    fn fault_status(&self) -> Result<u32>;
    /// Clears the write-1-to-clear status bits `bits`.
    fn clear_fault_status(&self, bits: u32) -> Result;
}

/// What a queue slot holds, for the software.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    /// Nothing the unit still needs: may be filled again.
    Free,
    /// A descriptor of a batch whose submitter is waiting for it.
    InUse,
    /// A descriptor of a batch given up on: free once the unit fetched it.
    Abandoned,
}

/// An error the unit reported against a slot's descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SlotError {
    None,
    /// The descriptor was rejected (IQE) and skipped.
    Invalid,
    /// Fetched when a device-TLB invalidation timed out (ITE): waits were
    /// aborted.
    Aborted,
    /// Fetched when a device-TLB invalidation completed wrongly (ICE).
    Completion,
}

/// The slot bookkeeping, as the C driver's `struct q_inval`.
///
/// # Invariants
///
/// The slots from `free_tail` up to `free_head` are the ones not free;
/// `free_cnt` counts the others. `free_cnt` is never zero, so
/// `free_head == free_tail` means the ring is empty. `hw_head` lies from
/// `free_tail` to `free_head`, and every slot the unit has not fetched
/// (from its real head, at or after `hw_head`, up to `free_head`) is
/// `InUse` or `Abandoned`: a slot becomes `Free` only when its batch's wait
/// completed (so the unit fetched it) or once the unit is known to have
/// fetched it.
struct Ring {
    slots: [Slot; QUEUE_LEN],
    errors: [SlotError; QUEUE_LEN],
    /// The next slot to fill; IQT points here.
    free_head: usize,
    /// The oldest slot not yet free.
    free_tail: usize,
    free_cnt: usize,
    /// The unit's head (IQH) when last read. It only moves towards
    /// `free_head`, so an old value is a safe estimate.
    hw_head: usize,
    /// The status data of the last batch (never 0, the "not yet" value).
    seq: u32,
    /// Test hook: the next batches for this domain ID, as many as given,
    /// get an invalid descriptor first.
    inject: Option<(u16, u32)>,
}

impl Ring {
    fn new() -> Self {
        // INVARIANT: All slots are free.
        Self {
            slots: [Slot::Free; QUEUE_LEN],
            errors: [SlotError::None; QUEUE_LEN],
            free_head: 0,
            free_tail: 0,
            free_cnt: QUEUE_LEN,
            hw_head: 0,
            seq: 0,
            inject: None,
        }
    }

    /// Whether the unit has not fetched slot `s` yet.
    fn unfetched(&self, s: usize) -> bool {
        let pending = (self.free_head + QUEUE_LEN - self.hw_head) % QUEUE_LEN;
        (s + QUEUE_LEN - self.hw_head) % QUEUE_LEN < pending
    }

    /// Frees slots from the tail on: those of finished batches, and those
    /// of abandoned ones the unit has fetched.
    fn reclaim(&mut self) {
        while self.free_tail != self.free_head {
            let t = self.free_tail;
            match self.slots[t] {
                Slot::Free => {}
                Slot::Abandoned if !self.unfetched(t) => self.slots[t] = Slot::Free,
                _ => break,
            }
            // INVARIANT: A free slot was fetched: the head is past it.
            if self.hw_head == t {
                self.hw_head = (t + 1) % QUEUE_LEN;
            }
            self.free_tail = (t + 1) % QUEUE_LEN;
            self.free_cnt += 1;
        }
    }

    /// Takes `n` consecutive slots, if that leaves one free.
    #[inline]
    fn reserve(&mut self, n: usize) -> Option<usize> {
        self.reclaim();
        if self.free_cnt < n + 1 {
            return None;
        }
        let index = self.free_head;
        for i in 0..n {
            let s = (index + i) % QUEUE_LEN;
            self.slots[s] = Slot::InUse;
            self.errors[s] = SlotError::None;
        }
        // INVARIANT: `n` slots less are free, and one still is.
        self.free_head = (index + n) % QUEUE_LEN;
        self.free_cnt -= n;
        Some(index)
    }

    /// Status data for a new batch.
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Records that the unit has fetched slot `s` (its wait completed), so
    /// that `hw_head` stays between the tail and the head.
    #[inline]
    fn fetched(&mut self, s: usize) {
        let next = (s + 1) % QUEUE_LEN;
        let pending = (self.free_head + QUEUE_LEN - self.hw_head) % QUEUE_LEN;
        if (next + QUEUE_LEN - self.hw_head) % QUEUE_LEN <= pending {
            self.hw_head = next;
        }
    }

    /// Gives the `n` slots from `index` back: `Free` once their batch
    /// completed, `Abandoned` if it did not.
    #[inline]
    fn finish(&mut self, index: usize, n: usize, state: Slot) {
        for i in 0..n {
            self.slots[(index + i) % QUEUE_LEN] = state;
        }
        self.reclaim();
    }

    /// The first error reported against the `n` slots from `index`.
    #[inline]
    fn batch_error(&self, index: usize, n: usize) -> SlotError {
        for i in 0..n {
            let e = self.errors[(index + i) % QUEUE_LEN];
            if e != SlotError::None {
                return e;
            }
        }
        SlotError::None
    }

    /// Records `e` against every waited-for slot the unit has fetched
    /// (from the tail up to its head).
    fn mark_fetched(&mut self, e: SlotError) {
        let mut s = self.free_tail;
        while s != self.hw_head && s != self.free_head {
            if self.slots[s] == Slot::InUse {
                self.errors[s] = e;
            }
            s = (s + 1) % QUEUE_LEN;
        }
    }
}

/// What the queue counts since it was enabled (the unit's `qi_stats`).
///
/// Readers need no lock. `submissions`, `descriptors` and `devtlb` change
/// only under the ring's lock, through [`QueueStats::add_locked`].
#[derive(Default)]
pub(crate) struct QueueStats {
    /// Batches submitted, each followed by a wait descriptor.
    pub(crate) submissions: AtomicU64,
    /// Descriptors in them, waits not counted (the C driver's `qi_submit`
    /// tracepoint counts the same).
    pub(crate) descriptors: AtomicU64,
    /// Device-TLB invalidations among them.
    pub(crate) devtlb: AtomicU64,
    /// Queue errors (IQE): descriptors the unit rejected.
    pub(crate) invalid: AtomicU64,
    /// Device-TLB invalidation time-outs (ITE).
    pub(crate) aborted: AtomicU64,
    /// Invalidation completion errors (ICE).
    pub(crate) completion: AtomicU64,
    /// Batches that did not complete in time, or found no room in time.
    pub(crate) timeouts: AtomicU64,
}

impl QueueStats {
    /// Adds `n` to `counter`, a counter only batches change. The ring's
    /// lock, which `_ring` shows is held, makes this the only writer, so a
    /// plain load and store do (a locked add would cost every submission
    /// more), and lock-free readers still see whole values.
    fn add_locked(counter: &AtomicU64, n: u64, _ring: &Ring) {
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// Device-TLB invalidations per queue submission, at most: a flush that
/// must reach more ATCs takes several.
pub(crate) const ATC_PER_BATCH: usize = 16;

/// Submits `first` (at most two descriptors) followed by the descriptors
/// of `more`, at most [`ATC_PER_BATCH`] of those in one batch, through
/// `submit`; `first` goes with the first batch. All batches are submitted;
/// fails if one failed.
pub(crate) fn submit_with(
    first: &[[u64; 2]],
    mut more: impl Iterator<Item = [u64; 2]>,
    mut submit: impl FnMut(&[[u64; 2]]) -> Result,
) -> Result {
    let mut descs = [[0u64; 2]; 2 + ATC_PER_BATCH];
    descs[..first.len()].copy_from_slice(first);
    let mut n = first.len();
    let mut res = Ok(());
    loop {
        let mut done = true;
        for d in more.by_ref().take(ATC_PER_BATCH) {
            descs[n] = d;
            n += 1;
            done = false;
        }
        if n > 0 {
            res = res.and(submit(&descs[..n]));
            n = 0;
        }
        if done {
            return res;
        }
    }
}

/// How a wait for a batch ended.
enum Outcome {
    Done,
    Aborted,
    TimedOut,
}

/// A unit's invalidation queue.
///
/// # Invariants
///
/// `queue` is the page IQA points to while queued invalidation is enabled,
/// and IQT holds `ring.free_head`. Descriptors are written only to slots
/// [`Ring::reserve`] handed out, under the ring's lock; the status word of
/// slot `i` is word `i` of `status`, whose physical address is
/// `status_phys`.
#[pin_data]
pub(crate) struct InvQueue {
    /// The unit is `dmar<index>`.
    index: u32,
    queue: TablePage,
    status: TablePage,
    status_phys: PhysAddr,
    timeout: Delta,
    #[pin]
    ring: SpinLockIrq<Ring>,
    /// What the queue has done.
    pub(crate) stats: QueueStats,
}

impl InvQueue {
    /// An empty queue of unit `dmar<index>`; batches may take `timeout`.
    ///
    /// The queue and the status words are never written back from the CPU
    /// caches, whatever the unit's ECAP.C says: ECAP.C (page-walk
    /// coherency) covers the unit's accesses to its translation structures
    /// (root, context, PASID and paging tables), not its descriptor fetches.
    /// The C driver, which runs on units with ECAP.C clear (those of
    /// integrated graphics), writes its queue back neither:
    /// `qi_submit_sync()` copies the descriptors in and writes IQT.
    pub(crate) fn new(index: u32, timeout: Delta) -> Result<impl PinInit<Self, Error>> {
        let queue = TablePage::new(&Walker::Coherent)?;
        let status = TablePage::new(&Walker::Coherent)?;
        let status_phys = status.phys();
        // INVARIANT: `status_phys` is where `status` lies.
        Ok(try_pin_init!(Self {
            index,
            queue,
            status,
            status_phys,
            timeout,
            ring <- new_spinlock_irq!(Ring::new()),
            stats: QueueStats::default(),
        }))
    }

    /// The IQA value: the queue's address, size 2^0 pages, 128-bit
    /// descriptors. IQT must be zero when it is written.
    pub(crate) fn iqa(&self) -> u64 {
        self.queue.phys()
    }

    /// The address of slot `i`'s status word.
    #[inline]
    fn status_addr(&self, i: usize) -> u64 {
        self.status_phys + (i as u64) * 8
    }

    #[inline]
    fn put(&self, slot: usize, desc: [u64; 2]) {
        let i = slot * 2;
        self.queue.write(i + 1, desc[1]);
        self.queue.write(i, desc[0]);
    }

    /// Test hook: the next `batches` batches that invalidate domain `did`
    /// get an invalid descriptor before their own, which the unit must
    /// reject (IQE). Two make one invalidation fail: see [`Self::submit`].
    pub(crate) fn inject_error(&self, did: u16, batches: u32) {
        self.ring.lock().inject = (batches > 0).then_some((did, batches));
    }

    /// Submits `descs` and a wait descriptor, and waits, bounded, until the
    /// unit has carried them out. `did` is the domain the batch concerns,
    /// for the test hook.
    ///
    /// A batch the unit rejected (IQE) is submitted once more: a
    /// descriptor damaged on its way (or by the test hook) does not cost a
    /// confirmed invalidation, while a bad one is rejected again.
    ///
    /// Fails with `EINVAL` if the unit rejected a descriptor of the batch
    /// twice, `EIO` on a completion error, and `ETIMEDOUT` if the batch, or
    /// room for it, did not come in time or the unit kept aborting it. On
    /// failure nothing may rely on the invalidation having happened.
    pub(crate) fn submit(&self, hw: &impl QueueHw, descs: &[[u64; 2]], did: Option<u16>) -> Result {
        // (Room for the test hook's descriptor and the wait.)
        if descs.len() + 3 > QUEUE_LEN {
            return Err(EINVAL);
        }
        let mut tries = 0;
        let mut rejected = false;
        loop {
            match self.submit_once(hw, descs, did) {
                Err(e) if e == EINVAL && !rejected => {
                    rejected = true;
                    pr_warn!(
                        "dmar{}: invalidation batch rejected; submitting it once more\n",
                        self.index
                    );
                }
                Err(e) if e == EAGAIN && tries < ABORT_RETRIES => tries += 1,
                Err(e) if e == EAGAIN => {
                    pr_err!(
                        "dmar{}: invalidation aborted {} times; giving up\n",
                        self.index,
                        tries + 1
                    );
                    return Err(ETIMEDOUT);
                }
                r => return r,
            }
        }
    }

    /// One try of [`Self::submit`]; fails with `EAGAIN` if the unit aborted
    /// the batch (ITE) and `EINVAL` if it rejected it (IQE).
    fn submit_once(&self, hw: &impl QueueHw, descs: &[[u64; 2]], did: Option<u16>) -> Result {
        let mut deadline = Deadline::new(self.timeout);
        let mut ring = self.ring.lock();
        let inject = matches!(ring.inject, Some((d, _)) if Some(d) == did);
        let n = descs.len() + 1 + usize::from(inject);
        let index = loop {
            if let Some(i) = ring.reserve(n) {
                break i;
            }
            // No room: find out how far the unit has fetched, which may
            // free the slots of abandoned batches.
            ring.hw_head = hw.head()?;
            if let Some(i) = ring.reserve(n) {
                break i;
            }
            if deadline.passed() {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                pr_err!(
                    "dmar{}: no room in the invalidation queue for {} ms (head {}, tail {})\n",
                    self.index,
                    self.timeout.as_millis(),
                    ring.hw_head,
                    ring.free_head
                );
                return Err(ETIMEDOUT);
            }
            drop(ring);
            cpu_relax();
            ring = self.ring.lock();
        };
        if let Some((d, n)) = ring.inject.filter(|_| inject) {
            ring.inject = (n > 1).then_some((d, n - 1));
        }
        let seq = ring.next_seq();
        let wait = (index + n - 1) % QUEUE_LEN;
        let mut s = index;
        if inject {
            self.put(s, INVALID_DESCRIPTOR);
            s = (s + 1) % QUEUE_LEN;
        }
        for d in descs {
            self.put(s, *d);
            s = (s + 1) % QUEUE_LEN;
        }
        self.status.write(wait, 0);
        self.put(wait, wait_descriptor(seq, self.status_addr(wait)));
        if let Err(e) = hw.set_tail(ring.free_head) {
            ring.finish(index, n, Slot::Abandoned);
            return Err(e);
        }
        QueueStats::add_locked(&self.stats.submissions, 1, &ring);
        QueueStats::add_locked(&self.stats.descriptors, descs.len() as u64, &ring);

        // Device-TLB invalidations can complete wrongly (ICE) with their
        // wait still writing its status: such a batch checks for errors
        // once more after its wait.
        let mut devtlb = 0;
        for d in descs {
            devtlb += usize::from(is_devtlb(d));
        }
        if devtlb > 0 {
            QueueStats::add_locked(&self.stats.devtlb, devtlb as u64, &ring);
        }
        let devtlb = devtlb > 0;
        // A unit may have carried the batch out by the time the tail write
        // returns (an emulated one does it in the write): then it is
        // finished under the lock still held. Otherwise the lock is
        // dropped while it is waited for.
        let (outcome, mut ring) = if self.status.read(wait) as u32 == seq {
            (Ok(Outcome::Done), ring)
        } else {
            drop(ring);
            let outcome = self.wait_for(hw, wait, seq, &mut deadline);
            (outcome, self.ring.lock())
        };
        let outcome = match outcome {
            Ok(Outcome::Done) if devtlb => {
                self.handle_errors(hw, &mut ring).map(|()| Outcome::Done)
            }
            o => o,
        };
        match outcome {
            Ok(Outcome::Done) => {
                ring.fetched(wait);
                let e = ring.batch_error(index, n);
                ring.finish(index, n, Slot::Free);
                match e {
                    SlotError::Invalid => Err(EINVAL),
                    SlotError::Completion => Err(EIO),
                    // Waits aborted after this one completed.
                    SlotError::None | SlotError::Aborted => Ok(()),
                }
            }
            Ok(Outcome::Aborted) => {
                // The aborted wait was fetched, so were the slots before it.
                ring.fetched(wait);
                ring.finish(index, n, Slot::Free);
                Err(EAGAIN)
            }
            Ok(Outcome::TimedOut) => {
                ring.finish(index, n, Slot::Abandoned);
                drop(ring);
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                pr_err!(
                    "dmar{}: invalidation queue did not complete a batch in {} ms (slots {}-{}, head {})\n",
                    self.index,
                    self.timeout.as_millis(),
                    index,
                    wait,
                    hw.head().unwrap_or(usize::MAX)
                );
                Err(ETIMEDOUT)
            }
            Err(e) => {
                // The registers are gone (the unit is being unbound).
                ring.finish(index, n, Slot::Abandoned);
                Err(e)
            }
        }
    }

    /// Waits, bounded by `deadline`, until the wait in slot `wait` has
    /// written `seq`, or was aborted. Handles the unit's queue errors
    /// meanwhile. The ring is not locked while polling.
    fn wait_for(
        &self,
        hw: &impl QueueHw,
        wait: usize,
        seq: u32,
        deadline: &mut Deadline,
    ) -> Result<Outcome> {
        loop {
            if self.status.read(wait) as u32 == seq {
                return Ok(Outcome::Done);
            }
            let mut ring = self.ring.lock();
            self.handle_errors(hw, &mut ring)?;
            let aborted = ring.errors[wait] == SlotError::Aborted;
            drop(ring);
            // (The wait may have completed before the abort was noticed.)
            if self.status.read(wait) as u32 == seq {
                return Ok(Outcome::Done);
            }
            if aborted {
                return Ok(Outcome::Aborted);
            }
            if deadline.passed() {
                return Ok(Outcome::TimedOut);
            }
            cpu_relax();
        }
    }

    /// Handles the queue errors the unit reports, for whichever batch they
    /// concern; called with the ring locked.
    fn handle_errors(&self, hw: &impl QueueHw, ring: &mut Ring) -> Result {
        let fsts = hw.fault_status()?;
        if fsts & (FSTS_IQE | FSTS_ITE | FSTS_ICE) == 0 {
            return Ok(());
        }
        ring.hw_head = hw.head()?;
        if fsts & FSTS_IQE != 0 {
            // The unit stopped at the bad descriptor. Mark its batch failed,
            // put a harmless status write (to the slot's own word, which no
            // one waits for) in its place, and only then clear the error and
            // let the unit go on (QEMU resumes on the next IQT write).
            let head = ring.hw_head;
            pr_err!(
                "dmar{}: invalidation queue error at slot {}: descriptor {:#x} {:#x} rejected\n",
                self.index,
                head,
                self.queue.read(head * 2),
                self.queue.read(head * 2 + 1)
            );
            ring.errors[head] = SlotError::Invalid;
            self.put(head, wait_descriptor(0, self.status_addr(head)));
            self.stats.invalid.fetch_add(1, Ordering::Relaxed);
            hw.clear_fault_status(FSTS_IQE)?;
            hw.set_tail(ring.free_head)?;
        }
        if fsts & FSTS_ITE != 0 {
            // Every wait the unit had fetched was aborted: their batches
            // are submitted again.
            pr_err!(
                "dmar{}: device-TLB invalidation timed out (head {})\n",
                self.index,
                ring.hw_head
            );
            ring.mark_fetched(SlotError::Aborted);
            self.stats.aborted.fetch_add(1, Ordering::Relaxed);
            hw.clear_fault_status(FSTS_ITE)?;
        }
        if fsts & FSTS_ICE != 0 {
            // Some fetched device-TLB invalidation was not done right, and
            // the unit does not say which: fail every batch it fetched.
            pr_err!(
                "dmar{}: invalidation completion error (head {})\n",
                self.index,
                ring.hw_head
            );
            ring.mark_fetched(SlotError::Completion);
            self.stats.completion.fetch_add(1, Ordering::Relaxed);
            hw.clear_fault_status(FSTS_ICE)?;
        }
        Ok(())
    }

    /// Whether no batch is outstanding (every slot free).
    #[cfg(CONFIG_KUNIT = "y")]
    fn idle(&self) -> bool {
        let ring = self.ring.lock();
        ring.free_cnt == QUEUE_LEN
    }
}

#[kunit_tests(rust_vtd_invalidation)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[test]
    fn context_invalidation_encodings() {
        // The C driver's DMA_CCMD_* register values and qi_flush_context().
        assert_eq!(
            ContextInvalidation::Global.register(),
            (1 << 63) | (1 << 61)
        );
        let dev = ContextInvalidation::Device {
            did: 0x12,
            sid: 0x0110,
        };
        assert_eq!(
            dev.register(),
            (1 << 63) | (3 << 61) | (0x0110 << 16) | 0x12
        );
        assert_eq!(ContextInvalidation::Global.descriptor(), [0x11, 0]);
        assert_eq!(
            dev.descriptor(),
            [(0x0110 << 32) | (0x12 << 16) | (3 << 4) | 1, 0]
        );
    }

    #[test]
    fn iotlb_invalidation_encodings() {
        // DMA_TLB_* register values and qi_desc_iotlb(), drains as given.
        assert_eq!(
            IotlbInvalidation::Global.register(false, true),
            (1 << 63) | (1 << 60) | (1 << 48)
        );
        let dom = IotlbInvalidation::Domain { did: 7 };
        assert_eq!(
            dom.register(true, true),
            (1 << 63) | (2 << 60) | (1 << 49) | (1 << 48) | (7 << 32)
        );
        assert_eq!(
            dom.descriptor(true, true),
            [(7 << 16) | (1 << 7) | (1 << 6) | (2 << 4) | 2, 0]
        );
        assert_eq!(
            IotlbInvalidation::Global.descriptor(false, false),
            [0x12, 0]
        );
    }

    #[test]
    fn page_selective_invalidation() {
        // qi_desc_iotlb() for DMA_TLB_PSI_FLUSH: granularity 3, address
        // and AM in the high word; IVA_REG holds the same word.
        let psi = IotlbInvalidation::Pages {
            did: 3,
            addr: 0x20_0000,
            am: 9,
            ih: false,
        };
        assert_eq!(
            psi.descriptor(false, true),
            [(3 << 16) | (1 << 6) | (3 << 4) | 2, 0x20_0009]
        );
        assert_eq!(
            psi.register(false, false),
            (1 << 63) | (3 << 60) | (3 << 32)
        );
        assert_eq!(psi.address(), Some(0x20_0009));
        // After an unmap that freed no table: IH (bit 6) set.
        assert_eq!(psi.leaves_only(true).address(), Some(0x20_0049));
        assert_eq!(psi.leaves_only(true).leaves_only(false), psi);
        assert_eq!(
            IotlbInvalidation::Domain { did: 3 }.leaves_only(true),
            IotlbInvalidation::Domain { did: 3 }
        );
        // One page; 16 aligned pages; an unaligned range that straddles a
        // 2 MiB boundary needs the 4 MiB block around it.
        assert_eq!(
            IotlbInvalidation::covering(1, 0x5000, 0x5fff, true, 9),
            IotlbInvalidation::Pages {
                did: 1,
                addr: 0x5000,
                am: 0,
                ih: false,
            }
        );
        assert_eq!(
            IotlbInvalidation::covering(1, 0x10000, 0x1ffff, true, 9),
            IotlbInvalidation::Pages {
                did: 1,
                addr: 0x10000,
                am: 4,
                ih: false,
            }
        );
        assert_eq!(
            IotlbInvalidation::covering(1, 0x1ff000, 0x200fff, true, 10),
            IotlbInvalidation::Pages {
                did: 1,
                addr: 0,
                am: 10,
                ih: false,
            }
        );
        // Beyond MAMV, or without CAP.PSI: the whole domain.
        assert_eq!(
            IotlbInvalidation::covering(1, 0x1ff000, 0x200fff, true, 9),
            IotlbInvalidation::Domain { did: 1 }
        );
        assert_eq!(
            IotlbInvalidation::covering(1, 0x5000, 0x5fff, false, 9),
            IotlbInvalidation::Domain { did: 1 }
        );
    }

    #[test]
    fn device_tlb_invalidation_encodings() {
        // As the C driver's qi_desc_dev_iotlb(): SID in 47:32, queue
        // depth in 20:16 (32 written as 0), PFSID split over 15:12 and
        // 63:52, type 3; the size bit and the address's low ones give
        // the range.
        let t = AtcTarget {
            sid: 0x0100,
            pfsid: 0,
            qdep: 32,
        };
        assert_eq!(
            t.descriptor(0, ATC_ALL),
            [0x0000_0100_0000_0003, 0x7fff_ffff_ffff_f001]
        );
        assert_eq!(t.descriptor(0x12000, 0), [0x0000_0100_0000_0003, 0x12000]);
        // Two pages: bit 12 is the lowest 0; four: bit 13.
        assert_eq!(t.descriptor(0x12000, 1)[1], 0x12001);
        assert_eq!(t.descriptor(0x10000, 2)[1], 0x11001);
        let t = AtcTarget {
            sid: 0x0208,
            pfsid: 0x0123,
            qdep: 5,
        };
        assert_eq!(
            t.descriptor(0, 0)[0],
            (0x0208 << 32) | (0x012 << 52) | (5 << 16) | (0x3 << 12) | 3
        );
        assert!(is_devtlb(&t.descriptor(0, 0)));
        // A domain-selective IOTLB invalidation takes the whole ATC with it.
        assert_eq!(
            IotlbInvalidation::Domain { did: 3 }.atc_range(),
            (0, ATC_ALL)
        );
        assert_eq!(
            IotlbInvalidation::covering(3, 0x4000, 0x7fff, true, 9).atc_range(),
            (0x4000, 2)
        );
    }

    #[test]
    fn wait_descriptor_writes_status() {
        // QI_IWD_STATUS_DATA(2) | QI_IWD_STATUS_WRITE | QI_IWD_TYPE; no IF,
        // which QEMU rejects together with SW.
        assert_eq!(
            wait_descriptor(2, 0x1234_5000),
            [(2 << 32) | 0x25, 0x1234_5000]
        );
    }

    /// What the fake unit does with the descriptors it is given.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        /// Carries them out at once, as QEMU does.
        Normal,
        /// Fetches nothing.
        Hung,
        /// Carries out only what it was given before the last IQT write.
        Lagging,
    }

    /// A unit that carries out descriptors from the queue's page: waits
    /// write their status, type 0 is rejected (IQE, the head stays), and
    /// it can be told to abort waits (ITE) or fail completions (ICE).
    struct Fake<'a> {
        q: &'a InvQueue,
        head: Cell<usize>,
        tail: Cell<usize>,
        /// With `Mode::Lagging`: the tail it will fetch up to next time.
        pending: Cell<usize>,
        fsts: Cell<u32>,
        mode: Cell<Mode>,
        /// Waits still to be aborted (each raises ITE).
        abort_waits: Cell<u32>,
        /// Batches still to be given a completion error (ICE).
        fail_completions: Cell<u32>,
        done: Cell<u32>,
    }

    impl<'a> Fake<'a> {
        fn new(q: &'a InvQueue) -> Self {
            Self {
                q,
                head: Cell::new(0),
                tail: Cell::new(0),
                pending: Cell::new(0),
                fsts: Cell::new(0),
                mode: Cell::new(Mode::Normal),
                abort_waits: Cell::new(0),
                fail_completions: Cell::new(0),
                done: Cell::new(0),
            }
        }

        /// Carries out descriptors from the head up to `to`.
        fn run(&self, to: usize) {
            while self.head.get() != to && self.fsts.get() & FSTS_IQE == 0 {
                let h = self.head.get();
                let lo = self.q.queue.read(h * 2);
                let hi = self.q.queue.read(h * 2 + 1);
                match lo & 0xf {
                    0 => {
                        self.fsts.set(self.fsts.get() | FSTS_IQE);
                        return;
                    }
                    5 if self.abort_waits.get() > 0 => {
                        self.abort_waits.set(self.abort_waits.get() - 1);
                        self.fsts.set(self.fsts.get() | FSTS_ITE);
                    }
                    5 => {
                        if self.fail_completions.get() > 0 {
                            self.fail_completions.set(self.fail_completions.get() - 1);
                            self.fsts.set(self.fsts.get() | FSTS_ICE);
                        }
                        let slot = ((hi - self.q.status.phys()) / 8) as usize;
                        let word = self.q.status.read(slot);
                        self.q
                            .status
                            .write(slot, (word & !0xffff_ffff) | (lo >> 32));
                        // (Status data 0 is the driver's harmless stand-in
                        // for a rejected descriptor.)
                        if lo >> 32 != 0 {
                            self.done.set(self.done.get() + 1);
                        }
                    }
                    _ => {}
                }
                self.head.set((h + 1) % QUEUE_LEN);
            }
        }

        /// The contents of every slot the fake has not fetched.
        fn unfetched(&self) -> KVec<(u64, u64)> {
            let mut v = KVec::new();
            let mut s = self.head.get();
            while s != self.tail.get() {
                let _ = v.push(
                    (self.q.queue.read(s * 2), self.q.queue.read(s * 2 + 1)),
                    GFP_KERNEL,
                );
                s = (s + 1) % QUEUE_LEN;
            }
            v
        }
    }

    impl QueueHw for Fake<'_> {
        fn head(&self) -> Result<usize> {
            Ok(self.head.get())
        }

        fn set_tail(&self, tail: usize) -> Result {
            self.tail.set(tail);
            match self.mode.get() {
                Mode::Normal => self.run(tail),
                Mode::Hung => {}
                Mode::Lagging => {
                    self.run(self.pending.get());
                    self.pending.set(tail);
                }
            }
            Ok(())
        }

        fn fault_status(&self) -> Result<u32> {
            Ok(self.fsts.get())
        }

        fn clear_fault_status(&self, bits: u32) -> Result {
            self.fsts.set(self.fsts.get() & !bits);
            Ok(())
        }
    }

    const FLUSH: [u64; 2] = [0x12, 0];

    fn new_queue() -> Result<Pin<KBox<InvQueue>>> {
        KBox::pin_init(InvQueue::new(0, Delta::from_millis(2))?, GFP_KERNEL)
    }

    #[test]
    fn queue_wraps_and_reuses_slots() -> Result {
        let q = new_queue()?;
        let hw = Fake::new(&q);
        // 3 slots a batch: the ring wraps several times.
        for _ in 0..600 {
            q.submit(&hw, &[FLUSH, FLUSH], None)?;
        }
        assert_eq!(hw.done.get(), 600);
        assert_eq!(q.stats.submissions.load(Ordering::Relaxed), 600);
        assert_eq!(q.stats.descriptors.load(Ordering::Relaxed), 1200);
        assert!(q.idle());
        // A batch that can never fit is refused.
        let big = [FLUSH; QUEUE_LEN];
        assert_eq!(q.submit(&hw, &big, None), Err(EINVAL));
        Ok(())
    }

    #[test]
    fn late_completion_does_not_complete_the_next_batch() -> Result {
        let q = new_queue()?;
        let hw = Fake::new(&q);
        hw.mode.set(Mode::Lagging);
        // A's wait comes only when B is submitted, and B's never: B must
        // not be taken for done because A's status arrived meanwhile.
        assert_eq!(q.submit(&hw, &[FLUSH], None), Err(ETIMEDOUT));
        assert_eq!(q.submit(&hw, &[FLUSH], None), Err(ETIMEDOUT));
        assert_eq!(hw.done.get(), 1);
        // Back to normal: the abandoned slots are reclaimed once fetched.
        hw.mode.set(Mode::Normal);
        q.submit(&hw, &[FLUSH], None)?;
        assert_eq!(hw.done.get(), 3);
        assert!(q.idle());
        assert_eq!(q.stats.timeouts.load(Ordering::Relaxed), 2);
        Ok(())
    }

    #[test]
    fn unfetched_slots_are_never_overwritten() -> Result {
        let q = new_queue()?;
        let hw = Fake::new(&q);
        hw.mode.set(Mode::Hung);
        // 31 slots a batch: the ninth finds no room, while eight batches
        // the unit never fetched hold 248 slots.
        let batch = [FLUSH; 30];
        for _ in 0..8 {
            assert_eq!(q.submit(&hw, &batch, None), Err(ETIMEDOUT));
        }
        let before = hw.unfetched();
        assert_eq!(before.len(), 248);
        assert_eq!(q.submit(&hw, &batch, None), Err(ETIMEDOUT));
        let after = hw.unfetched();
        assert!(before[..] == after[..]);
        assert_eq!(q.stats.submissions.load(Ordering::Relaxed), 8);
        // The unit wakes up: it carries out the old batches, and the
        // queue has room again.
        hw.mode.set(Mode::Normal);
        hw.run(hw.tail.get());
        q.submit(&hw, &batch, None)?;
        assert_eq!(hw.done.get(), 9);
        assert!(q.idle());
        Ok(())
    }

    #[test]
    fn rejected_batch_is_retried_once_and_fails_only_itself() -> Result {
        let q = new_queue()?;
        let hw = Fake::new(&q);
        // Through the test hook, for one domain ID only: rejected twice,
        // the batch fails; the unit goes on (each rejected batch's wait
        // still completes, unconfirmed).
        q.inject_error(5, 2);
        q.submit(&hw, &[FLUSH], Some(4))?;
        assert_eq!(q.submit(&hw, &[FLUSH], Some(5)), Err(EINVAL));
        assert_eq!(q.stats.invalid.load(Ordering::Relaxed), 2);
        assert_eq!(hw.fsts.get(), 0);
        q.submit(&hw, &[FLUSH], Some(5))?;
        assert_eq!(hw.done.get(), 4);
        // Rejected once: the second try is confirmed.
        q.inject_error(5, 1);
        q.submit(&hw, &[FLUSH], Some(5))?;
        assert_eq!(q.stats.invalid.load(Ordering::Relaxed), 3);
        assert_eq!(hw.done.get(), 6);
        // A bad descriptor of the batch's own, in its middle: rejected on
        // both tries.
        assert_eq!(
            q.submit(&hw, &[FLUSH, INVALID_DESCRIPTOR, FLUSH], None),
            Err(EINVAL)
        );
        q.submit(&hw, &[FLUSH], None)?;
        assert_eq!(q.stats.invalid.load(Ordering::Relaxed), 5);
        assert_eq!(hw.done.get(), 9);
        assert!(q.idle());
        Ok(())
    }

    #[test]
    fn aborted_batch_is_submitted_again() -> Result {
        let q = new_queue()?;
        let hw = Fake::new(&q);
        hw.abort_waits.set(1);
        q.submit(&hw, &[FLUSH], None)?;
        assert_eq!(q.stats.aborted.load(Ordering::Relaxed), 1);
        assert_eq!(q.stats.submissions.load(Ordering::Relaxed), 2);
        // Aborted every time: the batch fails, bounded.
        hw.abort_waits.set(100);
        assert_eq!(q.submit(&hw, &[FLUSH], None), Err(ETIMEDOUT));
        assert_eq!(
            q.stats.aborted.load(Ordering::Relaxed),
            1 + 1 + u64::from(ABORT_RETRIES)
        );
        hw.abort_waits.set(0);
        q.submit(&hw, &[FLUSH], None)?;
        assert!(q.idle());
        Ok(())
    }

    #[test]
    fn completion_error_fails_the_batch() -> Result {
        let q = new_queue()?;
        let hw = Fake::new(&q);
        // A device-TLB invalidation (type 3) whose completion was wrong:
        // the wait still writes its status, the error is seen after it.
        let devtlb = [0x3, 0];
        hw.fail_completions.set(1);
        assert_eq!(q.submit(&hw, &[devtlb], None), Err(EIO));
        assert_eq!(q.stats.completion.load(Ordering::Relaxed), 1);
        assert_eq!(hw.fsts.get(), 0);
        q.submit(&hw, &[devtlb], None)?;
        assert!(q.idle());
        Ok(())
    }

    #[test]
    fn device_tlb_invalidations_go_in_batches() -> Result {
        // Each batch as its length, first and last descriptor.
        fn record(batches: &mut KVec<(usize, u64, u64)>, d: &[[u64; 2]]) -> Result {
            batches.push((d.len(), d[0][0], d[d.len() - 1][0]), GFP_KERNEL)?;
            Ok(())
        }
        let mut batches = KVec::new();
        // Two first, then one batch more than fits.
        let more = (0..ATC_PER_BATCH as u64 + 1).map(|i| [0x100 + i, 0]);
        submit_with(&[[1, 0], [2, 0]], more, |d| record(&mut batches, d))?;
        let last = 0x100 + ATC_PER_BATCH as u64;
        assert_eq!(
            &batches[..],
            &[(2 + ATC_PER_BATCH, 1, last - 1), (1, last, last)]
        );
        // Nothing first: the device-TLB invalidations alone.
        batches.clear();
        submit_with(&[], (0..3).map(|i| [0x200 + i, 0]), |d| {
            record(&mut batches, d)
        })?;
        assert_eq!(&batches[..], &[(3, 0x200, 0x202)]);
        // A failed batch fails the whole, and the others still go.
        let mut sent = 0;
        let res = submit_with(
            &[[1, 0]],
            (0..ATC_PER_BATCH as u64 + 1).map(|i| [i, 0]),
            |d| {
                sent += d.len();
                if sent == 1 + ATC_PER_BATCH {
                    Err(ETIMEDOUT)
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(res, Err(ETIMEDOUT));
        assert_eq!(sent, 2 + ATC_PER_BATCH);
        Ok(())
    }
}
