// SPDX-License-Identifier: GPL-2.0

//! Remapping hardware registers (VT-d specification, chapter 11), named as
//! the specification names them.

use core::marker::PhantomData;

use kernel::{
    io::{
        register,
        register::{
            Register,
            RelativeRegister,
            RelativeRegisterArray,
            WithBase, //
        },
        IoLoc,
        Region, //
    },
    prelude::*,
    processor::cpu_relax,
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

/// Size of the register set this driver maps: the first 4 KiB page, which
/// holds every register it uses (the fault recording and IOTLB registers
/// are checked to lie within it).
pub(crate) const REG_SIZE: usize = 4096;

register! {
    /// Version Register.
    pub(crate) VER(u32) @ 0x00 {
        /// Major version number.
        7:4 max;
        /// Minor version number.
        3:0 min;
    }

    /// Capability Register.
    pub(crate) CAP(u64) @ 0x08 {
        /// Enhanced Set Root Table Pointer Support.
        63:63 esrtps => bool;
        /// Enhanced Set Interrupt Root Table Pointer Support.
        62:62 esirtps => bool;
        /// First-stage 5-level paging support.
        60:60 fl5lp => bool;
        /// Posted Interrupts support.
        59:59 pi => bool;
        /// First-stage 1-GByte page support.
        56:56 fs1gp => bool;
        /// DMA Read Draining.
        55:55 drd => bool;
        /// DMA Write Draining.
        54:54 dwd => bool;
        /// Maximum Address Mask Value for page-selective invalidation.
        53:48 mamv;
        /// Number of Fault-recording Registers, minus one.
        47:40 nfr;
        /// Page Selective Invalidation support.
        39:39 psi => bool;
        /// Second-stage Large Page Support: bit 0 2 MiB, bit 1 1 GiB.
        37:34 sllps;
        /// Fault-recording Register offset, in 16-byte units.
        33:24 fro;
        /// Zero Length Read.
        22:22 zlr => bool;
        /// Maximum Guest Address Width, minus one.
        21:16 mgaw;
        /// Supported Adjusted Guest Address Widths: bit 1 39-bit (3-level),
        /// bit 2 48-bit (4-level), bit 3 57-bit (5-level).
        12:8 sagaw;
        /// Caching Mode: not-present entries may be cached.
        7:7 cm => bool;
        /// Protected High-Memory Region.
        6:6 phmr => bool;
        /// Protected Low-Memory Region.
        5:5 plmr => bool;
        /// Required Write-Buffer Flushing.
        4:4 rwbf => bool;
        /// Advanced Fault Logging.
        3:3 afl => bool;
        /// Number of domains supported: 2^(4 + 2 * nd).
        2:0 nd;
    }

    /// Extended Capability Register.
    pub(crate) ECAP(u64) @ 0x10 {
        /// Performance Monitoring Support.
        51:51 pms => bool;
        /// RID-PASID Support.
        49:49 rps => bool;
        /// Scalable Mode Page-walk Coherency.
        48:48 smpwc => bool;
        /// First-stage Translation Support.
        47:47 flts => bool;
        /// Second-stage Translation Support.
        46:46 slts => bool;
        /// Second-stage Accessed/Dirty Support.
        45:45 slads => bool;
        /// Scalable Mode Translation Support.
        43:43 smts => bool;
        /// Page-request Drain Support.
        42:42 pds => bool;
        /// Device-TLB Invalidation Throttle.
        41:41 dit => bool;
        /// Process Address Space ID support.
        40:40 pasid => bool;
        /// PASID Size Supported, minus one.
        39:35 pss;
        /// Extended Accessed Flag Support.
        34:34 eafs => bool;
        /// No Write Flag Support.
        33:33 nwfs => bool;
        /// Supervisor Request Support.
        31:31 srs => bool;
        /// Execute Request Support.
        30:30 ers => bool;
        /// Page Request Support.
        29:29 prs => bool;
        /// Nested Translation Support.
        26:26 nest => bool;
        /// Memory Type Support.
        25:25 mts => bool;
        /// Maximum Handle Mask Value.
        23:20 mhmv;
        /// IOTLB Register Offset, in 16-byte units.
        17:8 iro;
        /// Snoop Control.
        7:7 sc => bool;
        /// Pass Through.
        6:6 pt => bool;
        /// Extended Interrupt Mode (x2APIC).
        4:4 eim => bool;
        /// Interrupt Remapping support.
        3:3 ir => bool;
        /// Device-TLB support.
        2:2 dt => bool;
        /// Queued Invalidation support.
        1:1 qi => bool;
        /// Page-walk Coherency.
        0:0 c => bool;
    }

    /// Global Command Register.
    pub(crate) GCMD(u32) @ 0x18 {
        /// Translation Enable.
        31:31 te => bool;
        /// Set Root Table Pointer (one-shot).
        30:30 srtp => bool;
        /// Queued Invalidation Enable.
        26:26 qie => bool;
        /// Interrupt Remapping Enable.
        25:25 ire => bool;
    }

    /// Root Table Address Register.
    pub(crate) RTADDR(u64) @ 0x20 {
        /// Root table address, 4 KiB aligned.
        63:12 rta;
        /// Translation Table Mode: 0 legacy, 1 scalable, 3 abort DMA.
        11:10 ttm;
    }

    /// Context Command Register.
    pub(crate) CCMD(u64) @ 0x28 {
        /// Invalidate Context-Cache; reads 1 while busy.
        63:63 icc => bool;
        /// Context Invalidation Request Granularity.
        62:61 cirg;
        /// Context Actual Invalidation Granularity.
        60:59 caig;
        /// Function Mask.
        33:32 fm;
        /// Source-ID.
        31:16 sid;
        /// Domain-ID.
        15:0 did;
    }

    /// Fault Status Register (write 1 to clear the error bits).
    pub(crate) FSTS(u32) @ 0x34 {
        /// Fault Record Index.
        15:8 fri;
        /// Page Request Overflow.
        7:7 pro => bool;
        /// Invalidation Time-out Error.
        6:6 ite => bool;
        /// Invalidation Completion Error.
        5:5 ice => bool;
        /// Invalidation Queue Error.
        4:4 iqe => bool;
        /// Primary Pending Fault.
        1:1 ppf => bool;
        /// Primary Fault Overflow.
        0:0 pfo => bool;
    }

    /// Invalidation Queue Head Register: the slot the unit fetches next.
    pub(crate) IQH(u64) @ 0x80 {
        /// Queue Head, in 128-bit descriptors.
        18:4 qh;
    }

    /// Invalidation Queue Tail Register: the slot software fills next.
    pub(crate) IQT(u64) @ 0x88 {
        /// Queue Tail, in 128-bit descriptors.
        18:4 qt;
    }

    /// Invalidation Queue Address Register.
    pub(crate) IQA(u64) @ 0x90 {
        /// Invalidation Queue Base Address, 4 KiB aligned.
        63:12 iqa;
        /// Descriptor Width: 256-bit descriptors.
        11:11 dw => bool;
        /// Queue Size: 2^qs pages.
        2:0 qs;
    }

    /// Global Status Register.
    pub(crate) GSTS(u32) @ 0x1c {
        /// Translation Enable Status.
        31:31 tes => bool;
        /// Root Table Pointer Status.
        30:30 rtps => bool;
        /// Fault Log Status.
        29:29 fls => bool;
        /// Advanced Fault Logging Status.
        28:28 afls => bool;
        /// Write Buffer Flush Status.
        27:27 wbfs => bool;
        /// Queued Invalidation Enable Status.
        26:26 qies => bool;
        /// Interrupt Remapping Enable Status.
        25:25 ires => bool;
        /// Interrupt Remapping Table Pointer Status.
        24:24 irtps => bool;
        /// Compatibility Format Interrupt Status.
        23:23 cfis => bool;
    }
}

/// The family of the IOTLB registers: they start at the offset ECAP.IRO
/// gives, which is known only at run time (see [`Block`]).
pub(crate) struct IotlbRegs;

/// The family of the fault recording registers: record 0 starts at the
/// offset CAP.FRO gives, and there are CAP.NFR + 1 of them (see [`Block`]).
pub(crate) struct FaultRecords;

register! {
    /// Invalidate Address Register (VT-d 11.4.8.2), at ECAP.IRO.
    pub(crate) IVA(u64) @ IotlbRegs + 0x00 {
        /// Address, 4 KiB aligned.
        63:12 addr;
        /// Invalidation Hint: only leaf entries changed.
        6:6 ih => bool;
        /// Address Mask: 2^am pages.
        5:0 am;
    }

    /// IOTLB Invalidate Register (VT-d 11.4.8.1), at ECAP.IRO + 8.
    pub(crate) IOTLB(u64) @ IotlbRegs + 0x08 {
        /// Invalidate IOTLB; reads 1 while busy.
        63:63 ivt => bool;
        /// IOTLB Invalidation Request Granularity.
        61:60 iirg;
        /// IOTLB Actual Invalidation Granularity.
        58:57 iaig;
        /// Drain Reads.
        49:49 dr => bool;
        /// Drain Writes.
        48:48 dw => bool;
        /// Domain-ID.
        47:32 did;
    }

    /// Fault Recording Register, bits 63:0 (VT-d 11.4.14): the faulting
    /// page. One every 16 bytes from CAP.FRO.
    pub(crate) FRCD_LO(u64)[256, stride = 16] @ FaultRecords + 0x00 {
        /// Fault Information: the page address.
        63:12 fi;
    }

    /// Fault Recording Register, bits 95:64: the requester.
    pub(crate) FRCD_SID(u32)[256, stride = 16] @ FaultRecords + 0x08 {
        /// Source Identifier.
        15:0 sid;
    }

    /// Fault Recording Register, bits 127:96: status and reason. Written
    /// with `f` set to free the record.
    pub(crate) FRCD_HI(u32)[256, stride = 16] @ FaultRecords + 0x0c {
        /// Fault: the record holds a fault (write 1 to clear).
        31:31 f => bool;
        /// Type: 1 for a read, 0 for a write.
        30:30 t => bool;
        /// Fault Reason.
        7:0 fr;
    }
}

/// A block of registers of family `F` whose offset the unit reports at run
/// time, where `register!`'s [`RegisterBase`](kernel::io::register::RegisterBase)
/// wants a constant.
///
/// # Invariants
///
/// `base` plus the extent of the family's registers was checked to lie
/// within the [`REG_SIZE`] page ([`check_readable`]); accesses still go
/// through `try_read`/`try_write`, which check bounds at run time.
pub(crate) struct Block<F> {
    base: usize,
    count: usize,
    _family: PhantomData<F>,
}

impl<F> Clone for Block<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for Block<F> {}

/// The location of register `T` in a [`Block`].
pub(crate) struct At<T>(usize, PhantomData<T>);

impl<const SIZE: usize, T: Register> IoLoc<Region<SIZE>, T> for At<T> {
    type IoType = T::Storage;

    fn offset(self) -> usize {
        self.0
    }
}

impl<F> Block<F> {
    /// Register `T` of the block.
    pub(crate) fn reg<T: RelativeRegister + WithBase<BaseFamily = F>>(self) -> At<T> {
        At(self.base + T::OFFSET, PhantomData)
    }

    /// Entry `idx` of register array `T`, if the unit has that many.
    pub(crate) fn at<T: RelativeRegisterArray + WithBase<BaseFamily = F>>(
        self,
        idx: usize,
    ) -> Option<At<T>> {
        (idx < self.count.min(T::SIZE))
            .then(|| At(self.base + T::OFFSET + idx * T::STRIDE, PhantomData))
    }

    /// The number of entries the unit has in each of the block's arrays.
    pub(crate) fn count(self) -> usize {
        self.count
    }

    /// Where the block ends.
    fn end(self, size: usize) -> usize {
        self.base + self.count * size
    }
}

/// How long a unit may take to complete a command: the C driver allows
/// about ten seconds (`DMAR_OPERATION_TIMEOUT`) and then panics; rust_vtd
/// gives up after one second with `ETIMEDOUT`.
pub(crate) const COMMAND_TIMEOUT: Delta = Delta::from_millis(1000);

/// Calls `op` until `done` holds for what it returns, for at most
/// `timeout`, and returns that value; `ETIMEDOUT` if it never holds, or
/// `op`'s error. Does not sleep: callable in atomic context, and so under
/// the register lock.
pub(crate) fn poll<T>(
    timeout: Delta,
    mut op: impl FnMut() -> Result<T>,
    mut done: impl FnMut(&T) -> bool,
) -> Result<T> {
    let start = Instant::<Monotonic>::now();
    loop {
        let v = op()?;
        if done(&v) {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            // One more look: the wait may have been preempted right after
            // its last read.
            let v = op()?;
            return if done(&v) { Ok(v) } else { Err(ETIMEDOUT) };
        }
        cpu_relax();
    }
}

/// FSTS's write-1-to-clear bits, for masks: primary
/// fault overflow, primary pending fault (read-only), invalidation queue
/// error, invalidation completion error, invalidation time-out error,
/// page request overflow.
pub(crate) const FSTS_PFO: u32 = 1 << 0;
pub(crate) const FSTS_PPF: u32 = 1 << 1;
pub(crate) const FSTS_IQE: u32 = 1 << 4;
pub(crate) const FSTS_ICE: u32 = 1 << 5;
pub(crate) const FSTS_ITE: u32 = 1 << 6;
pub(crate) const FSTS_PRO: u32 = 1 << 7;

/// GCMD: write buffer flush (one-shot).
pub(crate) const GCMD_WBF: u32 = 1 << 27;

/// The GSTS bits that report one-shot commands; they must be cleared from
/// a status value before it is written back to GCMD (VT-d 11.4.4).
pub(crate) const GSTS_ONE_SHOT_MASK: u32 = (1 << 30) | (1 << 29) | (1 << 27) | (1 << 24);

impl GSTS {
    /// The GCMD value that keeps every persistent setting as it is now.
    pub(crate) fn persistent_command(self) -> GCMD {
        GCMD::from(u32::from(self) & !GSTS_ONE_SHOT_MASK)
    }
}

impl CAP {
    /// Number of domain IDs the unit supports.
    pub(crate) fn domains(self) -> u64 {
        1u64 << (4 + 2 * self.nd().get())
    }

    /// Maximum guest address width in bits.
    pub(crate) fn mgaw_bits(self) -> u32 {
        self.mgaw().get() as u32 + 1
    }

    /// The fault recording registers: CAP.NFR + 1 records of 16 bytes
    /// from CAP.FRO.
    pub(crate) fn fault_records(self) -> Block<FaultRecords> {
        Block {
            base: self.fro().get() as usize * 16,
            count: self.nfr().get() as usize + 1,
            _family: PhantomData,
        }
    }
}

impl ECAP {
    /// The IOTLB registers: IVA and IOTLB, 16 bytes from ECAP.IRO.
    pub(crate) fn iotlb_regs(self) -> Block<IotlbRegs> {
        Block {
            base: self.iro().get() as usize * 16,
            count: 1,
            _family: PhantomData,
        }
    }
}

/// Rejects register values that show the unit is not there: reads that
/// return all ones (nothing decodes the address) or zero, a version of
/// zero, or capability offsets that point outside the register page.
pub(crate) fn check_readable(index: u32, base: u64, ver: VER, cap: CAP, ecap: ECAP) -> Result {
    let (v, c, e) = (u32::from(ver), u64::from(cap), u64::from(ecap));
    let gone = v == u32::MAX
        || c == u64::MAX
        || e == u64::MAX
        || ver.max().get() == 0
        || (c == 0 && e == 0);
    if gone {
        pr_err!(
            "dmar{}: [Firmware Bug]: no remapping unit answers at {:#x} (ver {:#x} cap {:#x} ecap {:#x})\n",
            index,
            base,
            v,
            c,
            e
        );
        return Err(ENODEV);
    }
    let fault_end = cap.fault_records().end(16);
    let iotlb_end = ecap.iotlb_regs().end(16);
    if fault_end > REG_SIZE || iotlb_end > REG_SIZE {
        pr_err!(
            "dmar{}: registers beyond the first page are not supported (fault regs end {:#x}, IOTLB regs end {:#x})\n",
            index,
            fault_end,
            iotlb_end
        );
        return Err(ENODEV);
    }
    Ok(())
}

/// Logs the decoded capabilities, one `key=value` pair per field.
pub(crate) fn log_decoded(index: u32, c: CAP, e: ECAP) {
    pr_info!(
        "dmar{}: cap: nd={} domains={} afl={} rwbf={} plmr={} phmr={} cm={} sagaw={:#x} mgaw={} zlr={} fro={:#x} sllps={:#x} psi={} nfr={} mamv={} dwd={} drd={} fs1gp={} pi={} fl5lp={} esirtps={} esrtps={}\n",
        index,
        c.nd().get(),
        c.domains(),
        u8::from(c.afl()),
        u8::from(c.rwbf()),
        u8::from(c.plmr()),
        u8::from(c.phmr()),
        u8::from(c.cm()),
        c.sagaw().get(),
        c.mgaw_bits(),
        u8::from(c.zlr()),
        c.fault_records().base,
        c.sllps().get(),
        u8::from(c.psi()),
        c.fault_records().count(),
        c.mamv().get(),
        u8::from(c.dwd()),
        u8::from(c.drd()),
        u8::from(c.fs1gp()),
        u8::from(c.pi()),
        u8::from(c.fl5lp()),
        u8::from(c.esirtps()),
        u8::from(c.esrtps())
    );
    pr_info!(
        "dmar{}: ecap: c={} qi={} dt={} ir={} eim={} pt={} sc={} iro={:#x} mhmv={} mts={} nest={} prs={} ers={} srs={} nwfs={} eafs={} pss={} pasid={} dit={} pds={} smts={} slads={} slts={} flts={} smpwc={} rps={} pms={}\n",
        index,
        u8::from(e.c()),
        u8::from(e.qi()),
        u8::from(e.dt()),
        u8::from(e.ir()),
        u8::from(e.eim()),
        u8::from(e.pt()),
        u8::from(e.sc()),
        e.iotlb_regs().base,
        e.mhmv().get(),
        u8::from(e.mts()),
        u8::from(e.nest()),
        u8::from(e.prs()),
        u8::from(e.ers()),
        u8::from(e.srs()),
        u8::from(e.nwfs()),
        u8::from(e.eafs()),
        e.pss().get(),
        u8::from(e.pasid()),
        u8::from(e.dit()),
        u8::from(e.pds()),
        u8::from(e.smts()),
        u8::from(e.slads()),
        u8::from(e.slts()),
        u8::from(e.flts()),
        u8::from(e.smpwc()),
        u8::from(e.rps()),
        u8::from(e.pms())
    );
}
