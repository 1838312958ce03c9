// SPDX-License-Identifier: GPL-2.0

//! One DMA-remapping hardware unit (a DRHD): its registers and state.

use crate::regs::{
    CAP,
    ECAP,
    GCMD,
    GSTS,
    REG_SIZE,
    VER, //
};
use kernel::{
    device::Core,
    io::{
        mem::ExclusiveIoMem,
        poll::read_poll_timeout,
        Io, //
    },
    platform,
    prelude::*,
    time::Delta,
};

/// How long a unit may take to complete a global command. The C driver
/// uses one second (`DMAR_OPERATION_TIMEOUT`) and panics past it; we give
/// up with `ETIMEDOUT`.
const COMMAND_TIMEOUT: Delta = Delta::from_secs(1);

/// A remapping unit whose registers are mapped and have been read.
///
/// # Invariants
///
/// `regs` maps the unit's register page exclusively; `ver`, `cap` and
/// `ecap` hold values read from it that passed [`Unit::check_readable`],
/// and the fault-recording and IOTLB registers they locate lie within the
/// mapped page.
pub(crate) struct Unit<'a> {
    /// Index of the unit in the DMAR table; the unit is called `dmar<index>`.
    pub(crate) index: u32,
    regs: ExclusiveIoMem<'a, REG_SIZE>,
    /// Capability register.
    pub(crate) cap: CAP,
    /// Extended capability register.
    pub(crate) ecap: ECAP,
}

impl<'a> Unit<'a> {
    /// Maps and identifies the unit behind platform device `pdev`, and
    /// turns off translation left enabled by a previous kernel.
    pub(crate) fn probe(pdev: &'a platform::Device<Core<'_>>) -> Result<Self> {
        let index = pdev.id().ok_or(EINVAL)?;
        let req = pdev.io_request_by_index(0).ok_or(ENODEV)?;
        let regs = req.iomap_exclusive_sized::<REG_SIZE>().inspect_err(|e| {
            pr_err!("dmar{}: cannot map the register page: {:?}\n", index, e);
        })?;
        let reg_base = pdev.resource_by_index(0).ok_or(ENODEV)?.start();
        let (ver, cap, ecap) = {
            let io = &regs;
            // `Region` only promises 4-byte alignment, so 64-bit registers
            // are read with the run-time checked accessor; the mapping is
            // page aligned and the check cannot fail.
            (io.read(VER), io.try_read(CAP)?, io.try_read(ECAP)?)
        };
        Self::check_readable(index, reg_base, ver, cap, ecap)?;

        // INVARIANT: the register values passed `check_readable`.
        let unit = Unit {
            index,
            regs,
            cap,
            ecap,
        };
        pr_info!(
            "dmar{}: reg_base_addr {:x} ver {}:{} cap {:x} ecap {:x}\n",
            index,
            reg_base,
            ver.max().get(),
            ver.min().get(),
            u64::from(cap),
            u64::from(ecap)
        );
        unit.log_decoded();

        if unit.gsts().tes() {
            // Outside kdump nothing can rely on the old tables: like the C
            // driver, turn translation off before anything else.
            pr_warn!(
                "dmar{}: translation was left enabled by a previous kernel; disabling it\n",
                index
            );
            unit.disable_translation()?;
        }
        Ok(unit)
    }

    /// Rejects register values that show the unit is not there: reads that
    /// return all ones (nothing decodes the address) or zero, a version of
    /// zero, or capability offsets that point outside the register page.
    fn check_readable(index: u32, base: u64, ver: VER, cap: CAP, ecap: ECAP) -> Result {
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
        let fault_end = cap.fault_reg_offset() + cap.fault_reg_count() * 16;
        let iotlb_end = ecap.iotlb_reg_offset() + 16;
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
    fn log_decoded(&self) {
        let (c, e) = (self.cap, self.ecap);
        pr_info!(
            "dmar{}: cap: nd={} domains={} afl={} rwbf={} plmr={} phmr={} cm={} sagaw={:#x} mgaw={} zlr={} fro={:#x} sllps={:#x} psi={} nfr={} mamv={} dwd={} drd={} fs1gp={} pi={} fl5lp={} esirtps={} esrtps={}\n",
            self.index,
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
            c.fault_reg_offset(),
            c.sllps().get(),
            u8::from(c.psi()),
            c.fault_reg_count(),
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
            self.index,
            u8::from(e.c()),
            u8::from(e.qi()),
            u8::from(e.dt()),
            u8::from(e.ir()),
            u8::from(e.eim()),
            u8::from(e.pt()),
            u8::from(e.sc()),
            e.iotlb_reg_offset(),
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

    /// Reads the global status register.
    pub(crate) fn gsts(&self) -> GSTS {
        (&self.regs).read(GSTS)
    }

    /// Issues a global command that changes one persistent setting, and
    /// waits, bounded, until the status register reports it.
    fn global_command(
        &self,
        what: &str,
        cmd: impl FnOnce(GCMD) -> GCMD,
        done: impl Fn(GSTS) -> bool,
    ) -> Result {
        let io = &self.regs;
        io.write_reg(cmd(self.gsts().persistent_command()));
        read_poll_timeout(
            || Ok(io.read(GSTS)),
            |s: &GSTS| done(*s),
            Delta::from_micros(10),
            COMMAND_TIMEOUT,
        )
        .map(|_| ())
        .inspect_err(|_| {
            pr_err!(
                "dmar{}: hardware did not complete '{}' in {} ms (gsts {:#x})\n",
                self.index,
                what,
                COMMAND_TIMEOUT.as_millis(),
                u32::from(self.gsts())
            );
        })
    }

    /// Turns DMA translation off.
    pub(crate) fn disable_translation(&self) -> Result {
        self.global_command("disable translation", |c| c.with_te(false), |s| !s.tes())
    }
}
