// SPDX-License-Identifier: GPL-2.0

//! Rust DMA sample for QEMU's `edu` device.
//!
//! This driver is an example of using the DMA API from Rust, typically behind an IOMMU. To make it
//! probe, run QEMU with `-device edu` (and, to exercise an IOMMU, for example
//! `-device intel-iommu`).
//!
//! `edu` has a 4096 byte buffer at device address `0x40000` and a DMA engine that copies between
//! that buffer and system memory, one physically (or IOVA-) contiguous range per command. Its DMA
//! addresses are 28 bits wide.
//!
//! On probe, the driver checks the device, sets a 28-bit DMA mask and runs a self-test with both
//! kinds of DMA memory:
//!
//! - Coherent DMA: [`Coherent`] buffers are mapped for the device for their whole lifetime; the
//!   CPU and the device see each other's accesses without further calls.
//! - Streaming DMA: an [`SGTable<Owned<VVec<u8>>>`](SGTable) maps ordinary, page-backed memory
//!   for one direction. The buffer belongs to either the device or the CPU, and ownership moves
//!   with [`SGTable::sync_for_cpu`] and [`SGTable::sync_for_device`]; these are what make the
//!   device's writes visible where caches are not coherent or where the mapping goes through a
//!   bounce buffer (for example because the buffer is above the 28-bit DMA mask and there is no
//!   IOMMU).
//!
//! Each test copies a pattern to the device and back and compares, and logs the DMA addresses it
//! gave the device (IOVAs when an IOMMU translates them):
//!
//! ```text
//! rust_edu 0000:00:10.0: coherent DMA: 4096 bytes to device and back, verified (to-device iova 0xfffff000, from-device iova 0xffffe000)
//! ```
//!
//! A mismatch is logged as `... DMA: mismatch at offset N ...` and fails the probe with [`EIO`]; a
//! transfer that does not finish within a second fails it with [`ETIMEDOUT`].
//!
//! The test can be run again by unbinding and binding the device through
//! `/sys/bus/pci/drivers/rust_edu/`. The two tests use different patterns, so that a transfer
//! into the device that silently did nothing cannot be verified against what a previous run left
//! in the device's buffer.
//!
//! The driver also takes part in resets of the function ([`pci::Driver::reset_prepare`] and
//! [`pci::Driver::reset_done`]), such as one through `/sys/bus/pci/devices/*/reset`: before the
//! reset it waits until `edu` has finished any transfer and stops issuing DMA; after it, it checks
//! that the device answers again and runs both tests once more, with new mappings in the DMA
//! domain the IOMMU core gave back to the function:
//!
//! ```text
//! rust_edu 0000:01:01.0: reset 1: DMA engine idle, DMA stopped for the reset
//! rust_edu 0000:01:01.0: reset 1: DMA restarted after the reset, verified
//! ```
//!
//! `edu` has no reset of its own: only an `edu` alone behind a bridge can be reset (by a reset
//! of the bridge's secondary bus).

use kernel::{
    device::{
        self,
        Bound,
        Core, //
    },
    dma::{
        Coherent,
        DataDirection,
        Device as _,
        DmaAddress,
        DmaMask, //
    },
    io::{
        poll::read_poll_timeout,
        Io, //
    },
    pci,
    prelude::*,
    scatterlist::SGTable,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    time::Delta, //
};

/// PCI vendor ID of QEMU's own devices; it is not in `include/linux/pci_ids.h`.
const EDU_VENDOR_ID: u16 = 0x1234;
/// PCI device ID of `edu`.
const EDU_DEVICE_ID: u16 = 0x11e8;
/// `edu`'s PCI class code: base class 0x00, sub-class 0xff ("unclassified"), any interface.
const EDU_CLASS: u32 = 0x00ff00;
const EDU_CLASS_MASK: u32 = 0xffff00;

/// Width of the DMA addresses `edu` can generate.
const EDU_DMA_MASK_BITS: u32 = 28;
/// Device address of `edu`'s buffer.
const EDU_BUF_ADDR: u64 = 0x40000;
/// Size of `edu`'s buffer, and of every test buffer.
const EDU_BUF_SIZE: usize = 4096;

/// How long a transfer may take; `edu` finishes one about 100 ms after it was started.
const DMA_TIMEOUT: Delta = Delta::from_secs(1);
/// How long to sleep between two looks at the command register.
const DMA_POLL_INTERVAL: Delta = Delta::from_millis(1);

/// Registers in BAR0.
mod regs {
    /// Identification: `0xRRrr00ed`, major version `RR`, minor version `rr`.
    pub(super) const IDENT: usize = 0x00;
    /// Liveness check: reads back the bitwise inverse of the last value written.
    pub(super) const LIVENESS: usize = 0x04;
    /// DMA source address (64 bits).
    pub(super) const DMA_SRC: usize = 0x80;
    /// DMA destination address (64 bits).
    pub(super) const DMA_DST: usize = 0x88;
    /// DMA transfer size in bytes (64 bits).
    pub(super) const DMA_COUNT: usize = 0x90;
    /// DMA command (64 bits), see `DMA_CMD_*`.
    pub(super) const DMA_CMD: usize = 0x98;
    /// End of the registers this driver uses.
    pub(super) const END: usize = 0xa0;
}

/// Starts a transfer; the device clears it when the transfer is done.
const DMA_CMD_START: u64 = 1 << 0;
/// Direction: set for device to system memory, clear for system memory to device.
const DMA_CMD_TO_RAM: u64 = 1 << 1;

type Bar0<'bound> = pci::Bar<'bound, { regs::END }>;

/// Direction of one `edu` transfer.
#[derive(Clone, Copy)]
enum Transfer {
    /// From system memory into `edu`'s buffer.
    ToDevice,
    /// From `edu`'s buffer into system memory.
    FromDevice,
}

/// Test data; the two patterns differ at every offset and contain no zero byte.
#[derive(Clone, Copy)]
enum Pattern {
    Coherent,
    Streaming,
}

impl Pattern {
    fn byte(self, offset: usize) -> u8 {
        // CAST: `offset % 251` is below 251 and fits in a `u8`. 251 is prime and does not divide
        // the page size, so every page of a buffer holds a different sequence.
        let byte = (offset % 251) as u8 + 1;

        match self {
            Self::Coherent => byte,
            Self::Streaming => !byte,
        }
    }

    fn to_kvec(self) -> Result<KVec<u8>> {
        let mut data = KVec::with_capacity(EDU_BUF_SIZE, GFP_KERNEL)?;

        for offset in 0..EDU_BUF_SIZE {
            data.push(self.byte(offset), GFP_KERNEL)?;
        }

        Ok(data)
    }
}

/// A bound `edu` device with its registers mapped.
struct Edu<'a> {
    pdev: &'a pci::Device<Bound>,
    bar: &'a Bar0<'a>,
}

impl Edu<'_> {
    fn check_ident(&self) -> Result {
        let ident = self.bar.read32(regs::IDENT);
        if (ident & 0xff) != 0xed {
            dev_err!(self.pdev, "not an edu device: ident {:#010x}\n", ident);
            return Err(ENODEV);
        }

        let value: u32 = 0x5eed_c0de;
        self.bar.write32(value, regs::LIVENESS);
        let inverse = self.bar.read32(regs::LIVENESS);
        if inverse != !value {
            dev_err!(
                self.pdev,
                "liveness check failed: wrote {:#010x}, read {:#010x}\n",
                value,
                inverse
            );
            return Err(EIO);
        }

        dev_info!(
            self.pdev,
            "edu {}.{} (ident {:#010x}), DMA mask {} bits\n",
            ident >> 24,
            (ident >> 16) & 0xff,
            ident,
            EDU_DMA_MASK_BITS
        );

        Ok(())
    }

    /// Waits until `edu` has no transfer running.
    ///
    /// Returns [`ETIMEDOUT`] if it still has one after [`DMA_TIMEOUT`].
    fn wait_dma_idle(&self) -> Result {
        read_poll_timeout(
            || self.bar.try_read64(regs::DMA_CMD),
            |cmd: &u64| (*cmd & DMA_CMD_START) == 0,
            DMA_POLL_INTERVAL,
            DMA_TIMEOUT,
        )?;

        Ok(())
    }

    /// Copies `len` bytes between the system memory at DMA address `ram` and `edu`'s buffer at
    /// `offset`, and waits for the copy to finish.
    fn dma(&self, ram: DmaAddress, offset: usize, len: usize, dir: Transfer) -> Result {
        match offset.checked_add(len) {
            Some(end) if len > 0 && end <= EDU_BUF_SIZE => {}
            _ => return Err(EINVAL),
        }

        // `DmaAddress` is `u64` or `u32`, depending on the configuration.
        #[allow(clippy::useless_conversion)]
        let ram = u64::from(ram);
        let edu = EDU_BUF_ADDR + u64::try_from(offset)?;
        let (src, dst, cmd) = match dir {
            Transfer::ToDevice => (ram, edu, DMA_CMD_START),
            Transfer::FromDevice => (edu, ram, DMA_CMD_START | DMA_CMD_TO_RAM),
        };

        // `edu` ignores writes to its DMA registers while a transfer is running.
        self.wait_dma_idle()?;

        self.bar.try_write64(src, regs::DMA_SRC)?;
        self.bar.try_write64(dst, regs::DMA_DST)?;
        self.bar.try_write64(u64::try_from(len)?, regs::DMA_COUNT)?;
        // Ordered after the CPU's writes to the buffers: MMIO writes are not reordered before
        // earlier writes to memory.
        self.bar.try_write64(cmd, regs::DMA_CMD)?;

        self.wait_dma_idle()
    }

    /// Runs one `edu` transfer per DMA segment of `sgt`, at consecutive offsets of `edu`'s buffer.
    ///
    /// Returns the number of segments and the DMA address of the first one.
    fn dma_sgtable(&self, what: &str, sgt: &SGTable, dir: Transfer) -> Result<(usize, DmaAddress)> {
        let mut offset = 0;
        let mut first = None;
        let mut count = 0;

        for (i, seg) in sgt.iter().enumerate() {
            let len = usize::try_from(seg.dma_len())?;

            dev_info!(
                self.pdev,
                "{}: segment {}: iova {:#x}, {} bytes\n",
                what,
                i,
                seg.dma_address(),
                len
            );

            self.dma(seg.dma_address(), offset, len, dir)?;

            if first.is_none() {
                first = Some(seg.dma_address());
            }
            offset += len;
            count += 1;
        }

        match first {
            Some(first) if offset == EDU_BUF_SIZE => Ok((count, first)),
            _ => {
                dev_err!(
                    self.pdev,
                    "{}: {} bytes mapped, expected {}\n",
                    what,
                    offset,
                    EDU_BUF_SIZE
                );
                Err(EIO)
            }
        }
    }

    /// Compares what came back from the device with what was sent.
    fn verify(&self, what: &str, expected: &[u8], got: &[u8]) -> Result {
        if let Some(offset) = expected.iter().zip(got).position(|(e, g)| e != g) {
            dev_err!(
                self.pdev,
                "{} DMA: mismatch at offset {}: expected {:#04x}, read {:#04x}\n",
                what,
                offset,
                expected[offset],
                got[offset]
            );
            return Err(EIO);
        }

        Ok(())
    }

    /// Handles a failed transfer.
    ///
    /// If `edu` did not finish in time, it may still write to (or read from) `buffers` later, so
    /// they are leaked instead of being freed; otherwise they are dropped normally.
    fn abandon<T>(&self, what: &str, err: Error, buffers: T) -> Error {
        if err == ETIMEDOUT {
            dev_err!(
                self.pdev,
                "{} DMA: device did not finish within {} ms, leaking its buffers\n",
                what,
                DMA_TIMEOUT.as_millis()
            );
            core::mem::forget(buffers);
        }

        err
    }

    /// Copies a pattern from a coherent buffer into `edu`, then back into a second, zeroed
    /// coherent buffer, and compares.
    fn coherent_selftest(&self) -> Result {
        let dev: &device::Device<Bound> = self.pdev.as_ref();
        let expected = Pattern::Coherent.to_kvec()?;

        // The CPU initializes the buffer before its DMA address is handed out, hence without
        // `unsafe`.
        let src: Coherent<[u8]> = Coherent::from_slice(dev, &expected, GFP_KERNEL)?;
        let dst: Coherent<[u8]> = Coherent::zeroed_slice(dev, EDU_BUF_SIZE, GFP_KERNEL)?;

        if let Err(err) = self
            .dma(src.dma_address(), 0, EDU_BUF_SIZE, Transfer::ToDevice)
            .and_then(|()| self.dma(dst.dma_address(), 0, EDU_BUF_SIZE, Transfer::FromDevice))
        {
            return Err(self.abandon("coherent", err, (src, dst)));
        }

        // `edu` is done with `dst`: the command register read that told us so is ordered before
        // this copy. The copy uses volatile accesses, as the device could write at any time.
        let mut got = KVec::from_elem(0u8, EDU_BUF_SIZE, GFP_KERNEL)?;
        dst.copy_to_slice(&mut got);
        self.verify("coherent", &expected, &got)?;

        dev_info!(
            self.pdev,
            "coherent DMA: {} bytes to device and back, verified (to-device iova {:#x}, from-device iova {:#x})\n",
            EDU_BUF_SIZE,
            src.dma_address(),
            dst.dma_address()
        );

        Ok(())
    }

    /// Copies a pattern from a streaming (scatter-gather) mapping of a `VVec` into `edu`, then
    /// back into a second, zeroed one mapped for the other direction, and compares.
    fn streaming_selftest(&self) -> Result {
        let dev: &device::Device<Bound> = self.pdev.as_ref();
        let expected = Pattern::Streaming.to_kvec()?;

        let src = KBox::pin_init(
            SGTable::new(
                dev,
                VVec::<u8>::zeroed(EDU_BUF_SIZE, GFP_KERNEL)?,
                DataDirection::ToDevice,
                GFP_KERNEL,
            ),
            GFP_KERNEL,
        )?;

        // Once mapped, the buffer belongs to the device. Take it back, fill it in, and give it
        // to the device again, which makes the new contents visible to it.
        src.sync_for_cpu(dev)?;
        src.copy_from_slice(&expected);
        src.sync_for_device(dev)?;

        let (src_segs, src_iova) =
            match self.dma_sgtable("streaming DMA to device", &src, Transfer::ToDevice) {
                Ok(res) => res,
                Err(err) => return Err(self.abandon("streaming", err, src)),
            };

        let dst = KBox::pin_init(
            SGTable::new(
                dev,
                VVec::<u8>::zeroed(EDU_BUF_SIZE, GFP_KERNEL)?,
                DataDirection::FromDevice,
                GFP_KERNEL,
            ),
            GFP_KERNEL,
        )?;

        let (dst_segs, dst_iova) =
            match self.dma_sgtable("streaming DMA from device", &dst, Transfer::FromDevice) {
                Ok(res) => res,
                Err(err) => return Err(self.abandon("streaming", err, dst)),
            };

        // `edu` is done with `dst`; hand the buffer to the CPU before reading what it wrote.
        dst.sync_for_cpu(dev)?;
        let mut got = KVec::from_elem(0u8, EDU_BUF_SIZE, GFP_KERNEL)?;
        dst.copy_to_slice(&mut got);
        self.verify("streaming", &expected, &got)?;

        dev_info!(
            self.pdev,
            "streaming DMA: {} bytes to device and back in {}+{} segment(s), verified (to-device iova {:#x}, from-device iova {:#x})\n",
            EDU_BUF_SIZE,
            src_segs,
            dst_segs,
            src_iova,
            dst_iova
        );

        Ok(())
    }
}

struct EduData<'bound> {
    pdev: &'bound pci::Device,
    bar: Bar0<'bound>,
    /// Resets of the function so far.
    resets: Atomic<u32>,
}

impl EduData<'_> {
    /// Runs both DMA tests.
    fn selftest(&self, pdev: &pci::Device<Bound>) -> Result {
        let edu = Edu {
            pdev,
            bar: &self.bar,
        };
        edu.check_ident()?;
        edu.coherent_selftest()?;
        edu.streaming_selftest()
    }
}

struct EduDriver;

// `edu`'s vendor ID has no `pci::Vendor` constant, so match on the class code and check the IDs
// in `probe()`.
kernel::pci_device_table!(
    PCI_TABLE,
    <EduDriver as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_class(EDU_CLASS, EDU_CLASS_MASK), ())]
);

impl pci::Driver for EduDriver {
    type IdInfo = ();
    type Data<'bound> = EduData<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        if pdev.vendor_id().as_raw() != EDU_VENDOR_ID || pdev.device_id() != EDU_DEVICE_ID {
            return Err(ENODEV);
        }

        pdev.enable_device_mem()?;
        pdev.set_master();

        // SAFETY: Nothing allocates or maps DMA memory for `pdev` concurrently: the driver has not
        // done so yet and does so only from this function, below.
        unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<EDU_DMA_MASK_BITS>())? };

        let bar = pdev.iomap_region_sized::<{ regs::END }>(0, c"rust_edu")?;

        let data = EduData {
            pdev,
            bar,
            resets: Atomic::new(0),
        };
        data.selftest(pdev)?;

        Ok(data)
    }

    fn reset_prepare<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&EduData<'bound>>) {
        let n = this.resets.fetch_add(1, Relaxed) + 1;
        // No transfer starts from here until `reset_done()`: the transfers of this driver all
        // run under the device lock, which the PCI core holds until then, so none is running
        // either. Still, make sure the engine is idle before the reset takes the device away.
        let edu = Edu {
            pdev,
            bar: &this.bar,
        };
        match edu.wait_dma_idle() {
            Ok(()) => dev_info!(
                pdev,
                "reset {}: DMA engine idle, DMA stopped for the reset\n",
                n
            ),
            Err(err) => dev_err!(
                pdev,
                "reset {}: DMA engine still busy before the reset ({:?})\n",
                n,
                err
            ),
        }
    }

    fn reset_done<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&EduData<'bound>>) {
        let n = this.resets.load(Relaxed);
        // The PCI core restored the configuration space, bus mastering included; the device's
        // own registers may have lost their state. Check that it answers and that DMA through
        // the function's DMA domain works again.
        match this.selftest(pdev) {
            Ok(()) => dev_info!(
                pdev,
                "reset {}: DMA restarted after the reset, verified\n",
                n
            ),
            Err(err) => dev_err!(
                pdev,
                "reset {}: DMA after the reset failed ({:?})\n",
                n,
                err
            ),
        }
    }
}

impl Drop for EduData<'_> {
    fn drop(&mut self) {
        dev_dbg!(self.pdev, "Remove Rust edu DMA sample.\n");
    }
}

kernel::module_pci_driver! {
    type: EduDriver,
    name: "rust_edu",
    authors: ["rust_vtd developers"],
    description: "Rust DMA sample for QEMU's edu device",
    license: "GPL",
}
