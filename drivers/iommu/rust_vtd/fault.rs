// SPDX-License-Identifier: GPL-2.0

//! Fault recording (VT-d 7.2): the primary fault recording registers,
//! polled, logged with a rate limit, and kept in a record log.
//!
//! The fault-event interrupt is an x86 DMAR-MSI that the kernel does not
//! let modules allocate (`dmar_alloc_hwirq()` is not exported), so a unit's
//! faults are found by a bounded poll instead: every [`FAULT_POLL_MS`], and
//! every [`FAULT_REPOLL_MS`] for a while after a poll found some.
//!
//! Each fault is logged the way the C driver's `dmar_fault()` logs it, at
//! most [`FAULT_LOG_BURST`] in a burst, then one per
//! [`FAULT_LOG_REFILL_MS`]; those not logged are counted, and the count is
//! logged. Every fault also goes to the unit's record log, unthrottled: the
//! last [`FAULT_RECORDS`] faults, with their source, address and reason,
//! in debugfs (`iommu/intel/dmar<N>/fault_log`), so that a test can check
//! each fault it caused.

use crate::regs::{
    CAP,
    FRCD_HI,
    FRCD_LO,
    FRCD_SID,
    FSTS,
    FSTS_PFO,
    FSTS_PPF,
    FSTS_PRO,
    REG_SIZE, //
};
use core::{
    fmt::Write,
    sync::atomic::{
        AtomicBool,
        AtomicU32,
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    io::{
        mem::ExclusiveIoMem,
        Io, //
    },
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        Mutex,
        SpinLock, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};

/// FRCD_HI.F: writing it frees the record.
const FRCD_F: u32 = 1 << 31;

/// How often the fault recording registers are polled.
pub(crate) const FAULT_POLL_MS: u32 = 100;
/// After a poll that found faults, the next ones come this soon, for
/// `FAULT_FAST_POLLS` polls: units may have a single fault recording
/// register (QEMU's has), and faults that arrive while it is full are lost.
pub(crate) const FAULT_REPOLL_MS: u32 = 1;
pub(crate) const FAULT_FAST_POLLS: u32 = 200;
/// Fault messages: at most this many in a burst, then one per
/// `FAULT_LOG_REFILL_MS`; the others are counted, and the count is logged
/// when the budget refills.
pub(crate) const FAULT_LOG_BURST: u32 = 10;
pub(crate) const FAULT_LOG_REFILL_MS: i64 = 100;
/// Faults kept in the record log.
pub(crate) const FAULT_RECORDS: usize = 2048;

/// What a legacy-mode fault reason code means (VT-d 7.1.3).
fn fault_reason(reason: u8) -> &'static str {
    match reason {
        0x1 => "root entry not present",
        0x2 => "context entry not present",
        0x3 => "invalid context entry",
        0x4 => "address beyond MGAW",
        0x5 => "write not permitted",
        0x6 => "read not permitted",
        0x7 => "invalid next-level table pointer",
        0x8 => "invalid root table address",
        0x9 => "invalid context table pointer",
        0xa => "reserved bits in root entry",
        0xb => "reserved bits in context entry",
        0xc => "reserved bits in page table entry",
        0xd => "translation type blocks the request",
        _ => "unknown",
    }
}

/// One fault, as the record log keeps it.
#[derive(Clone, Copy, Default)]
struct Record {
    /// 1 for the unit's first fault, and so on.
    seq: u64,
    /// Requester (source) ID.
    sid: u16,
    /// The page address that faulted.
    addr: u64,
    reason: u8,
    read: bool,
}

/// The last [`FAULT_RECORDS`] faults, oldest first from `next`.
struct RecordLog {
    records: KVec<Record>,
    next: usize,
}

impl RecordLog {
    fn push(&mut self, r: Record) {
        if self.records.len() < FAULT_RECORDS {
            // (Capacity was reserved up front: this does not allocate.)
            let _ = self.records.push(r, GFP_ATOMIC);
        } else {
            self.records[self.next] = r;
            self.next = (self.next + 1) % FAULT_RECORDS;
        }
    }
}

/// A unit's fault state.
#[pin_data]
pub(crate) struct Faults {
    /// Set when the unit goes down: the poll stops re-arming.
    stopping: AtomicBool,
    /// Faults found since bring-up.
    count: AtomicU64,
    /// Fault messages that may still be printed now (a token bucket).
    log_budget: AtomicU32,
    /// Faults found but not logged since the budget last refilled.
    unlogged: AtomicU32,
    /// When the log budget last refilled.
    #[pin]
    last_refill: Mutex<Instant<Monotonic>>,
    /// How many more polls come early, after faults were found.
    fast_polls: AtomicU32,
    /// The record log; the lock also serialises the polls. Taken with the
    /// registers in hand, under RCU: it must not sleep.
    #[pin]
    log: SpinLock<RecordLog>,
}

impl Faults {
    /// The state of a unit that has seen no fault.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            stopping: AtomicBool::new(false),
            count: AtomicU64::new(0),
            log_budget: AtomicU32::new(FAULT_LOG_BURST),
            unlogged: AtomicU32::new(0),
            last_refill <- new_mutex!(Instant::now()),
            fast_polls: AtomicU32::new(0),
            log <- new_spinlock!(RecordLog {
                records: KVec::with_capacity(FAULT_RECORDS, GFP_KERNEL)?,
                next: 0,
            }),
        }? Error)
    }

    /// Faults found since bring-up.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Refills the log budget by one message per `FAULT_LOG_REFILL_MS`
    /// since it last did, and logs how many faults were not logged. May
    /// sleep.
    pub(crate) fn refill(&self, index: u32) {
        let mut last = self.last_refill.lock();
        let tokens = last.elapsed().as_millis() / FAULT_LOG_REFILL_MS;
        if tokens > 0 {
            *last = Instant::now();
            let budget = self.log_budget.load(Ordering::Relaxed);
            let add = tokens.min(i64::from(FAULT_LOG_BURST)) as u32;
            self.log_budget
                .store((budget + add).min(FAULT_LOG_BURST), Ordering::Relaxed);
            let n = self.unlogged.swap(0, Ordering::Relaxed);
            if n > 0 {
                pr_err!("dmar{}: {} more faults not logged\n", index, n);
            }
        }
    }

    /// Takes one message from the budget, if there is one left.
    fn may_log(&self) -> bool {
        let budget = self.log_budget.load(Ordering::Relaxed);
        if budget == 0 {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.log_budget.store(budget - 1, Ordering::Relaxed);
        true
    }

    /// Whether the poll should come back soon, and for how many more
    /// polls, after one that found `found` faults.
    pub(crate) fn after_poll(&self, found: u32) -> bool {
        let fast = self.fast_polls.load(Ordering::Relaxed);
        let next = if found > 0 {
            FAULT_FAST_POLLS
        } else {
            fast.saturating_sub(1)
        };
        self.fast_polls.store(next, Ordering::Relaxed);
        !self.stopping.load(Ordering::Acquire)
    }

    /// The delay before the next poll, in milliseconds.
    pub(crate) fn next_poll_ms(&self) -> u32 {
        if self.fast_polls.load(Ordering::Relaxed) > 0 {
            FAULT_REPOLL_MS
        } else {
            FAULT_POLL_MS
        }
    }

    /// Stops the poll from re-arming; the caller then cancels it.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Reads, logs, records and clears the primary fault recording
    /// registers (VT-d 7.2.1) of unit `dmar<index>`, the way the C driver's
    /// `dmar_fault()` does. Returns the number of faults found. Does not
    /// sleep.
    pub(crate) fn collect(
        &self,
        index: u32,
        cap: CAP,
        io: &ExclusiveIoMem<'_, REG_SIZE>,
    ) -> Result<u32> {
        let mut log = self.log.lock();
        let fsts = u32::from(io.read(FSTS));
        if fsts & (FSTS_PPF | FSTS_PFO) == 0 {
            return Ok(0);
        }
        let records = cap.fault_records();
        let count = records.count();
        let mut idx = ((fsts >> 8) & 0xff) as usize % count;
        let mut found = 0;
        for _ in 0..count {
            let hi: FRCD_HI = io.try_read(records.at::<FRCD_HI>(idx).ok_or(EINVAL)?)?;
            if !hi.f() {
                break;
            }
            let sid: FRCD_SID = io.try_read(records.at::<FRCD_SID>(idx).ok_or(EINVAL)?)?;
            let lo: FRCD_LO = io.try_read(records.at::<FRCD_LO>(idx).ok_or(EINVAL)?)?;
            let sid = sid.sid().get() as u16;
            let addr = u64::from(lo) & !0xfff;
            io.try_write(
                records.at::<FRCD_HI>(idx).ok_or(EINVAL)?,
                FRCD_HI::from(FRCD_F),
            )?;
            found += 1;
            let r = Record {
                seq: self.count.fetch_add(1, Ordering::Relaxed) + 1,
                sid,
                addr,
                reason: hi.fr().get() as u8,
                read: hi.t(),
            };
            log.push(r);
            if self.may_log() {
                pr_err!(
                    "dmar{}: DMA {} fault: source {:02x}:{:02x}.{} address {:#x} reason {:#04x}: {}\n",
                    index,
                    if r.read { "read" } else { "write" },
                    sid >> 8,
                    (sid >> 3) & 0x1f,
                    sid & 7,
                    addr,
                    r.reason,
                    fault_reason(r.reason)
                );
            }
            idx = (idx + 1) % count;
        }
        if fsts & FSTS_PFO != 0 {
            pr_err!(
                "dmar{}: fault recording overflowed; faults were lost\n",
                index
            );
        }
        io.write_reg(FSTS::from(FSTS_PFO | FSTS_PPF | FSTS_PRO));
        Ok(found)
    }

    /// Writes the record log, oldest first, one fault a line: sequence
    /// number, source, page address, reason, read or write. The unit's
    /// `fault_log` debugfs file shows it.
    pub(crate) fn show(&self, f: &mut impl Write) -> core::fmt::Result {
        let log = self.log.lock();
        let n = log.records.len();
        for i in 0..n {
            let r = log.records[(log.next + i) % n];
            writeln!(
                f,
                "{} {:02x}:{:02x}.{} {:#x} {:#04x} {}",
                r.seq,
                r.sid >> 8,
                (r.sid >> 3) & 0x1f,
                r.sid & 7,
                r.addr,
                r.reason,
                if r.read { "read" } else { "write" }
            )?;
        }
        Ok(())
    }
}
