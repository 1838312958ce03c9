// SPDX-License-Identifier: GPL-2.0

//! Invalidation requests, and the invalidation queue (VT-d 6.5).
//!
//! Every invalidation the driver issues is a [`ContextInvalidation`] or an
//! [`IotlbInvalidation`]. A unit with queued invalidation (ECAP.QI) gets
//! them as 128-bit descriptors in a ring of 256, each batch followed by a
//! wait descriptor that writes a status word the driver polls; other units
//! get them through the CCMD and IOTLB registers.

use crate::regs::{
    FSTS,
    FSTS_ICE,
    FSTS_IQE,
    FSTS_ITE,
    REG_SIZE, //
};
use kernel::{
    io::{
        mem::ExclusiveIoMem,
        poll::read_poll_timeout_atomic,
        Io, //
    },
    iommu::pages::TablePage,
    prelude::*,
    time::Delta,
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
    },
}

/// CCMD: invalidate context cache; also the busy bit.
pub(crate) const CCMD_ICC: u64 = 1 << 63;
/// IOTLB_REG: invalidate IOTLB; also the busy bit.
pub(crate) const IOTLB_IVT: u64 = 1 << 63;

impl ContextInvalidation {
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
    /// register (VT-d 11.4.8.2), also the descriptor's high word. The
    /// invalidation hint (IH) stays clear: page-structure caches are
    /// invalidated too, so that tables can be reused.
    pub(crate) fn address(self) -> Option<u64> {
        match self {
            Self::Pages { addr, am, .. } => Some((addr & !0xfff) | u64::from(am & 0x3f)),
            _ => None,
        }
    }

    /// The page-selective invalidation of `first..=last` in domain `did`,
    /// as the smallest aligned power-of-two block that covers it (the C
    /// driver's calculate_psi_aligned_address()), or a domain-selective
    /// one where the block's mask exceeds `mamv` (CAP.MAMV) or the unit
    /// cannot invalidate by page (`psi` false).
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

/// The invalidation wait descriptor (VT-d 6.5.2.8): when everything before
/// it is done, write `data` to `status` (SW).
pub(crate) fn wait_descriptor(data: u32, status: u64) -> [u64; 2] {
    [(u64::from(data) << 32) | (1 << 5) | 5, status]
}

/// Register offsets.
const IQH: usize = 0x80;
const IQT: usize = 0x88;
const IQA: usize = 0x90;

/// Descriptors in the queue: one 4 KiB page of 128-bit descriptors.
const QUEUE_LEN: usize = 256;
/// Status word values.
const STATUS_BUSY: u32 = 1;
const STATUS_DONE: u32 = 2;

/// How long a batch may take; the C driver spins forever on a hung queue.
const QI_TIMEOUT_US: usize = 1_000_000;

/// A unit's invalidation queue.
///
/// # Invariants
///
/// `queue` is the page IQA points to while queued invalidation is
/// enabled, and `tail` is the index IQT was last set to. Batches are
/// submitted and waited for one at a time (the caller holds the queue's
/// lock), so when a batch starts the hardware has consumed the whole
/// queue.
pub(crate) struct InvQueue {
    queue: TablePage,
    status: TablePage,
    tail: usize,
}

impl InvQueue {
    /// Allocates an empty queue.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            queue: TablePage::new()?,
            status: TablePage::new()?,
            tail: 0,
        })
    }

    /// The IQA value: the queue's address, size 2^0 pages, 128-bit
    /// descriptors. IQT must be zero when it is written.
    pub(crate) fn iqa(&self) -> u64 {
        self.queue.phys()
    }

    fn put(&mut self, desc: [u64; 2]) {
        let i = self.tail * 2;
        self.queue.write(i + 1, desc[1]);
        self.queue.write(i, desc[0]);
        self.queue.flush(i, 2);
        self.tail = (self.tail + 1) % QUEUE_LEN;
    }

    /// Submits `descs` and a wait descriptor, and waits, bounded, until the
    /// unit has carried them out. A queue error (FSTS.IQE) replaces the bad
    /// descriptor with the wait so the queue moves on, as the C driver does,
    /// and fails with `EINVAL`; a completion or time-out error with `EIO` or
    /// `ETIMEDOUT`.
    pub(crate) fn submit(
        &mut self,
        io: &ExclusiveIoMem<'_, REG_SIZE>,
        index: u32,
        descs: &[[u64; 2]],
    ) -> Result {
        if descs.len() + 1 >= QUEUE_LEN {
            return Err(EINVAL);
        }
        self.status.write(0, u64::from(STATUS_BUSY));
        self.status.flush(0, 1);
        let start = self.tail;
        for d in descs {
            self.put(*d);
        }
        let wait = wait_descriptor(STATUS_DONE, self.status.phys());
        self.put(wait);
        io.try_write64((self.tail as u64) << 4, IQT)?;

        let res = read_poll_timeout_atomic(
            || {
                let fsts = io.try_read32(FSTS)?;
                if fsts & (FSTS_IQE | FSTS_ICE | FSTS_ITE) != 0 {
                    return Ok(Some(fsts));
                }
                Ok((self.status.read(0) as u32 == STATUS_DONE).then_some(0))
            },
            |v: &Option<u32>| v.is_some(),
            Delta::from_micros(1),
            QI_TIMEOUT_US,
        );
        match res {
            Ok(Some(0)) => Ok(()),
            Ok(Some(fsts)) => {
                let head = (io.try_read64(IQH)? >> 4) as usize % QUEUE_LEN;
                io.try_write32(fsts & (FSTS_IQE | FSTS_ICE | FSTS_ITE), FSTS)?;
                if fsts & FSTS_IQE != 0 {
                    pr_err!(
                        "dmar{}: invalidation queue error at descriptor {} (batch from {}): {:#x} {:#x}\n",
                        index,
                        head,
                        start,
                        self.queue.read(head * 2),
                        self.queue.read(head * 2 + 1)
                    );
                    // Let the unit step over the bad descriptor.
                    self.queue.write(head * 2 + 1, wait[1]);
                    self.queue.write(head * 2, wait[0]);
                    self.queue.flush(head * 2, 2);
                    io.try_write64((self.tail as u64) << 4, IQT)?;
                    Err(EINVAL)
                } else if fsts & FSTS_ITE != 0 {
                    pr_err!("dmar{}: device-TLB invalidation timed out\n", index);
                    Err(ETIMEDOUT)
                } else {
                    pr_err!("dmar{}: invalidation completion error\n", index);
                    Err(EIO)
                }
            }
            Ok(None) | Err(_) => {
                pr_err!(
                    "dmar{}: invalidation queue did not complete in {} ms (IQH {:#x} IQT {:#x})\n",
                    index,
                    QI_TIMEOUT_US / 1000,
                    io.try_read64(IQH).unwrap_or(0),
                    io.try_read64(IQT).unwrap_or(0)
                );
                Err(ETIMEDOUT)
            }
        }
    }
}

/// Writes IQA for `queue` with IQT at zero (before GCMD.QIE).
pub(crate) fn program(io: &ExclusiveIoMem<'_, REG_SIZE>, queue: &InvQueue) -> Result {
    io.try_write64(0, IQT)?;
    io.try_write64(queue.iqa(), IQA)
}

/// Whether the unit has consumed its whole queue (IQH == IQT).
pub(crate) fn drained(io: &ExclusiveIoMem<'_, REG_SIZE>) -> Result<bool> {
    Ok(io.try_read64(IQH)? == io.try_read64(IQT)?)
}

#[kunit_tests(rust_vtd_qi)]
mod tests {
    use super::*;

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
        // One page; 16 aligned pages; an unaligned range that straddles a
        // 2 MiB boundary needs the 4 MiB block around it.
        assert_eq!(
            IotlbInvalidation::covering(1, 0x5000, 0x5fff, true, 9),
            IotlbInvalidation::Pages {
                did: 1,
                addr: 0x5000,
                am: 0
            }
        );
        assert_eq!(
            IotlbInvalidation::covering(1, 0x10000, 0x1ffff, true, 9),
            IotlbInvalidation::Pages {
                did: 1,
                addr: 0x10000,
                am: 4
            }
        );
        assert_eq!(
            IotlbInvalidation::covering(1, 0x1ff000, 0x200fff, true, 10),
            IotlbInvalidation::Pages {
                did: 1,
                addr: 0,
                am: 10
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
    fn wait_descriptor_writes_status() {
        // QI_IWD_STATUS_DATA(2) | QI_IWD_STATUS_WRITE | QI_IWD_TYPE; no IF,
        // which QEMU rejects together with SW.
        assert_eq!(
            wait_descriptor(2, 0x1234_5000),
            [(2 << 32) | 0x25, 0x1234_5000]
        );
    }
}
