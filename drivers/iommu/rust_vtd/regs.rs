// SPDX-License-Identifier: GPL-2.0

//! Remapping hardware registers (VT-d specification, chapter 11), named as
//! the specification names them.

use kernel::io::register;

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

/// Fault Status Register offset, and its write-1-to-clear bits: primary
/// fault overflow, primary pending fault (read-only), invalidation queue
/// error, invalidation completion error, invalidation time-out error,
/// page request overflow.
pub(crate) const FSTS: usize = 0x34;
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

    /// Byte offset of the first fault recording register.
    pub(crate) fn fault_reg_offset(self) -> usize {
        self.fro().get() as usize * 16
    }

    /// Number of fault recording registers.
    pub(crate) fn fault_reg_count(self) -> usize {
        self.nfr().get() as usize + 1
    }
}

impl ECAP {
    /// Byte offset of the IOTLB registers.
    pub(crate) fn iotlb_reg_offset(self) -> usize {
        self.iro().get() as usize * 16
    }
}
