// SPDX-License-Identifier: GPL-2.0

//! One DMA-remapping hardware unit (a DRHD): bring-up and shut-down, its
//! root and context tables, invalidation, domain IDs, the identity table,
//! fault polling, and translation on and off.

use crate::{
    context::{
        source_id,
        widest_aw,
        ContextEntry,
        ContextTables,
        TranslationType, //
    },
    domain_id::{
        DomainIds,
        PASS_THROUGH_DID, //
    },
    fault::Faults,
    invalidation::{
        register_invalidate,
        submit_with,
        AtcTarget,
        ContextInvalidation,
        InvQueue,
        IotlbInvalidation,
        QueueHw,
        ATC_ALL,
        QI_TIMEOUT,
        QUEUE_LEN, //
    },
    kdump::take_over,
    pagetable::{
        TableFormat,
        UnitFeatures, //
    },
    regs::{
        check_readable,
        log_decoded,
        poll,
        CAP,
        COMMAND_TIMEOUT,
        ECAP,
        FSTS,
        GCMD,
        GCMD_WBF,
        GSTS,
        IQA,
        IQH,
        IQT,
        REG_SIZE,
        RTADDR,
        VER, //
    },
    scope::UnitScope,
};
use core::fmt::Write;
use core::sync::atomic::{
    AtomicBool,
    AtomicU64,
    Ordering, //
};
use kernel::{
    bitmap::BitmapVec,
    crash_dump,
    device::{
        Core,
        Device, //
    },
    io::{
        mem::{
            DevresExclusiveIoMem,
            ExclusiveIoMem, //
        },
        resource::system_ram_ranges,
        Io, //
    },
    iommu::{
        device::{
            Attribute,
            Attributes,
            HasIommuDevice,
            IommuDevice, //
        },
        domain::dma_api_translated,
        pages::Walker,
        paging::Prot,
        pt::{
            Table,
            Vtdss, //
        },
    },
    new_mutex, new_spinlock_irq, platform,
    prelude::*,
    str::{
        CStr,
        RawFormatter, //
    },
    sync::{
        aref::ARef,
        Arc,
        Mutex,
        SetOnce,
        SpinLockIrq, //
    },
    time::msecs_to_jiffies,
    workqueue::{
        self,
        cancel_delayed_work_sync,
        impl_has_delayed_work,
        new_delayed_work,
        DelayedWork,
        WorkItem, //
    },
};

/// The 1:1 page table of identity domains on a unit that cannot (or, by
/// the module parameter, must not) pass DMA through, and its domain ID.
struct IdentityTable {
    pt: Pin<KBox<Table<Vtdss>>>,
    did: u16,
}

/// Maps `first..=last` (page-aligned) 1:1 in `pt`.
fn map_identity(pt: Pin<&mut Table<Vtdss>>, first: u64, last: u64, prot: Prot) -> Result {
    let len = usize::try_from(last - first + 1).map_err(|_| ERANGE)?;
    pt.map(first as usize, first, len, prot, GFP_KERNEL)?;
    Ok(())
}

/// What a remapping unit shares with the IOMMU core's callbacks.
///
/// # Invariants
///
/// `regs` maps the unit's register page; `cap` and `ecap` were read from
/// it and passed [`check_readable`]; RTADDR holds `tables`' root address
/// from bring-up on.
#[pin_data]
pub(crate) struct UnitState {
    /// Index in the DMAR table; the unit is `dmar<index>`.
    pub(crate) index: u32,
    /// Physical address of the register set.
    reg_base: u64,
    iommu: IommuDevice,
    regs: DevresExclusiveIoMem<REG_SIZE>,
    /// Capability register.
    pub(crate) cap: CAP,
    /// Extended capability register.
    pub(crate) ecap: ECAP,
    /// How the unit reads the tables it walks (ECAP.C); an incoherent
    /// unit's tables are written back for its platform device.
    pub(crate) walker: Walker,
    /// The devices and reserved memory the firmware assigns the unit.
    scope: UnitScope,
    #[pin]
    tables: Mutex<ContextTables>,
    /// The invalidation queue, set once when queued invalidation is
    /// enabled and kept (with its counters) until the unit is dropped.
    /// Invalidations reach it without a lock or a reference count: they
    /// run on every DMA unmap.
    qi: SetOnce<Arc<InvQueue>>,
    /// Whether invalidations go through `qi`: set once it is enabled,
    /// cleared before it is turned off.
    qi_on: AtomicBool,
    /// Serialises read-modify-writes of GCMD and register-based
    /// invalidation, as the C driver's `register_lock`. Taken in atomic
    /// context (IOTLB flushes on DMA unmap).
    #[pin]
    register_lock: SpinLockIrq<()>,
    /// The identity domain's 1:1 page table, built on first use.
    #[pin]
    identity: Mutex<Option<IdentityTable>>,
    /// In a kdump kernel that took the crashed kernel's tables over: the
    /// requester IDs whose copied context entry is still in place (no
    /// attach has replaced it yet).
    #[pin]
    copied: SpinLockIrq<Option<BitmapVec>>,
    /// The devices the IOMMU core has probed on this unit.
    #[pin]
    devices: Mutex<KVec<ARef<Device>>>,
    /// Domain IDs.
    #[pin]
    dids: SpinLockIrq<DomainIds>,
    /// The fault poll (see `fault.rs`).
    #[pin]
    pub(crate) fault_work: DelayedWork<UnitState>,
    #[pin]
    pub(crate) faults: Faults,
    /// Invalidations the unit did not confirm (queued or through the
    /// registers), and the page-table pages kept (leaked) because of them.
    unconfirmed: AtomicU64,
    leaked_tables: AtomicU64,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for UnitState { self.fault_work }
}

/// The fault poll.
impl WorkItem for UnitState {
    type Pointer = Arc<UnitState>;

    fn run(this: Arc<UnitState>) {
        let found = this.report_faults();
        if this.faults.after_poll(found) {
            this.poll_faults_later();
        }
    }
}

// SAFETY: `OFFSET` is the offset of the `iommu` field.
unsafe impl HasIommuDevice for UnitState {
    const OFFSET: usize = core::mem::offset_of!(UnitState, iommu);
}

impl Attributes for UnitState {
    const GROUP: &'static CStr = c"intel-iommu";
    const ATTRIBUTES: &'static [Attribute<Self>] = &[
        Attribute::new(c"version"),
        Attribute::new(c"address"),
        Attribute::new(c"cap"),
        Attribute::new(c"ecap"),
        Attribute::new(c"domains_supported"),
        Attribute::new(c"domains_used"),
    ];

    /// The C driver's `intel-iommu` attributes, in its formats.
    fn show(&self, name: &CStr, out: &mut RawFormatter) -> Result {
        match name.to_bytes() {
            b"version" => {
                let v = self.with_regs(|io| Ok(io.read(VER)))?;
                writeln!(out, "{}:{}", v.max().get(), v.min().get())
            }
            b"address" => writeln!(out, "{:x}", self.reg_base),
            b"cap" => writeln!(out, "{:x}", u64::from(self.cap)),
            b"ecap" => writeln!(out, "{:x}", u64::from(self.ecap)),
            b"domains_supported" => writeln!(out, "{}", self.cap.domains()),
            b"domains_used" => writeln!(out, "{}", self.dids_in_use()),
            _ => return Err(EINVAL),
        }
        .map_err(|_| EINVAL)
    }
}

impl UnitState {
    /// Queues the next fault poll.
    pub(crate) fn poll_faults_later(self: Arc<Self>) {
        let ms = self.faults.next_poll_ms();
        let _ = workqueue::system_power_efficient().enqueue_delayed(self, msecs_to_jiffies(ms));
    }

    /// Reads, logs, records and clears the unit's fault recording
    /// registers; returns the number of faults found.
    pub(crate) fn report_faults(&self) -> u32 {
        self.faults.refill(self.index);
        match self.with_regs(|io| self.faults.collect(self.index, self.cap, io)) {
            Ok(n) => n,
            Err(e) => {
                if e != ENODEV {
                    pr_err!(
                        "dmar{}: reading the fault registers failed: {:?}\n",
                        self.index,
                        e
                    );
                }
                0
            }
        }
    }

    /// Faults reported since bring-up.
    pub(crate) fn fault_count(&self) -> u64 {
        self.faults.count()
    }

    /// Writes the fault record log (the unit's `fault_log` debugfs file).
    pub(crate) fn show_fault_log(&self, f: &mut impl Write) -> core::fmt::Result {
        self.faults.show(f)
    }

    /// Writes the invalidation counters, as the unit's `qi_stats` debugfs
    /// file shows them (`make bench` and the tests read it): the queue's
    /// submissions (batches, each with a wait descriptor) and descriptors
    /// (waits not counted, as the C driver's `qi_submit` tracepoint), its
    /// errors, the invalidations not confirmed, and what was kept out of
    /// use because of them.
    pub(crate) fn show_qi_stats(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (sub, desc, devtlb, inv, abrt, comp, tmo) = match self.qi.as_ref() {
            Some(q) => (
                load(&q.stats.submissions),
                load(&q.stats.descriptors),
                load(&q.stats.devtlb),
                load(&q.stats.invalid),
                load(&q.stats.aborted),
                load(&q.stats.completion),
                load(&q.stats.timeouts),
            ),
            None => (0, 0, 0, 0, 0, 0, 0),
        };
        writeln!(f, "submissions: {sub}")?;
        writeln!(f, "descriptors: {desc}")?;
        writeln!(f, "devtlb_descriptors: {devtlb}")?;
        writeln!(f, "queue_errors: {inv}")?;
        writeln!(f, "aborted: {abrt}")?;
        writeln!(f, "completion_errors: {comp}")?;
        writeln!(f, "timeouts: {tmo}")?;
        writeln!(f, "unconfirmed: {}", load(&self.unconfirmed))?;
        writeln!(f, "leaked_tables: {}", load(&self.leaked_tables))?;
        writeln!(f, "kept_domain_ids: {}", self.dids.lock().kept())?;
        // (kdump: the IDs of the crashed kernel's copied entries.)
        writeln!(f, "old_domain_ids: {}", self.dids.lock().old())
    }

    /// The batches the invalidation queue took since the unit came up, and
    /// the device-TLB invalidations in them.
    pub(crate) fn queue_counts(&self) -> (u64, u64) {
        self.qi.as_ref().map_or((0, 0), |q| {
            (
                q.stats.submissions.load(Ordering::Relaxed),
                q.stats.devtlb.load(Ordering::Relaxed),
            )
        })
    }

    /// Test hook (debugfs `inject_queue_error`): the next `batches` queued
    /// batches for the domain that requester `rid`'s context entry names
    /// get an invalid descriptor before their own, which the unit rejects.
    /// A rejected batch is submitted once more, so one leaves the
    /// invalidation confirmed and two make it fail. Fails with `ENODEV`
    /// without a queue or such an entry.
    pub(crate) fn inject_queue_error(&self, rid: u16, batches: u32) -> Result {
        let [_, hi] = self
            .tables
            .lock()
            .get((rid >> 8) as u8, rid as u8)
            .ok_or(ENODEV)?;
        let did = ContextEntry::did_of(hi);
        let q = self.queue().ok_or(ENODEV)?;
        q.inject_error(did, batches);
        pr_info!(
            "dmar{}: test hook: the next {} batch(es) for domain {} get an invalid descriptor\n",
            self.index,
            batches,
            did
        );
        Ok(())
    }

    /// Counts `n` page-table pages kept because their flush was not
    /// confirmed.
    pub(crate) fn tables_leaked(&self, n: usize) {
        self.leaked_tables.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The devices and reserved memory the firmware assigns the unit.
    pub(crate) fn scope(&self) -> &UnitScope {
        &self.scope
    }

    /// Runs `f` on the registers, or fails with `ENODEV` once the unit's
    /// device is unbound. `f` runs under RCU: it must not sleep.
    pub(crate) fn with_regs<R>(
        &self,
        f: impl FnOnce(&ExclusiveIoMem<'_, REG_SIZE>) -> Result<R>,
    ) -> Result<R> {
        let regs = self.regs.try_access().ok_or(ENODEV)?;
        f(&regs)
    }

    /// Issues a global command that changes one persistent setting, and
    /// waits, bounded, until the status register reports it.
    fn global_command(
        &self,
        what: &str,
        cmd: impl FnOnce(GCMD) -> GCMD,
        done: impl Fn(GSTS) -> bool,
    ) -> Result {
        let _guard = self.register_lock.lock();
        self.with_regs(|io| {
            io.write_reg(cmd(io.read(GSTS).persistent_command()));
            poll(COMMAND_TIMEOUT, || Ok(io.read(GSTS)), |s| done(*s))
                .map(|_| ())
                .inspect_err(|_| {
                    pr_err!(
                        "dmar{}: hardware did not complete '{}' in {} ms (gsts {:#x})\n",
                        self.index,
                        what,
                        COMMAND_TIMEOUT.as_millis(),
                        u32::from(io.read(GSTS))
                    )
                })
        })
    }

    /// Turns DMA translation on.
    pub(crate) fn enable_translation(&self) -> Result {
        self.global_command("enable translation", |c| c.with_te(true), |s| s.tes())
    }

    /// Turns DMA translation off.
    pub(crate) fn disable_translation(&self) -> Result {
        self.global_command("disable translation", |c| c.with_te(false), |s| !s.tes())
    }

    /// Points the unit at the root table (RTADDR, then GCMD.SRTP) and
    /// invalidates everything cached from any earlier table.
    fn set_root_table(&self, root: u64) -> Result {
        self.with_regs(|io| io.try_write_reg(RTADDR::from(root)))?;
        self.global_command(
            "set root table pointer",
            |c| c.with_srtp(true),
            |s| s.rtps(),
        )?;
        self.invalidate(
            Some(ContextInvalidation::Global),
            Some(IotlbInvalidation::Global),
        )
    }

    /// Turns queued invalidation on (VT-d 6.5.2), after turning off a
    /// queue a previous user left enabled. Units without ECAP.QI, and every
    /// unit with `queued_invalidation=0`, keep register-based invalidation.
    fn enable_qi(&self) -> Result {
        if !self.ecap.qi() {
            return Ok(());
        }
        if self.with_regs(|io| Ok(io.read(GSTS).qies()))? {
            self.disable_qi_hw()?;
        }
        if !crate::queued_invalidation() {
            pr_info!(
                "dmar{}: invalidation through the registers (queued_invalidation=0)\n",
                self.index
            );
            return Ok(());
        }
        let queue = Arc::pin_init(InvQueue::new(self.index, QI_TIMEOUT)?, GFP_KERNEL)?;
        // IQT must be zero when IQA is written.
        self.with_regs(|io| {
            io.try_write_reg(IQT::from(0))?;
            io.try_write_reg(IQA::from(queue.iqa()))
        })?;
        self.global_command(
            "enable queued invalidation",
            |c| c.with_qie(true),
            |s| s.qies(),
        )?;
        if !self.qi.populate(queue) {
            // (Units enable their queue once, when they come up.)
            return Err(EBUSY);
        }
        self.qi_on.store(true, Ordering::Release);
        Ok(())
    }

    /// The invalidation queue, if invalidations go through it.
    #[inline]
    fn queue(&self) -> Option<&InvQueue> {
        if self.qi_on.load(Ordering::Acquire) {
            self.qi.as_ref().map(|q| &**q)
        } else {
            None
        }
    }

    /// Waits until the unit has consumed its queue, then turns it off.
    fn disable_qi_hw(&self) -> Result {
        self.with_regs(|io| {
            poll(
                COMMAND_TIMEOUT,
                || Ok(io.try_read(IQH)?.qh() == io.try_read(IQT)?.qt()),
                |d| *d,
            )
            .map(|_| ())
        })?;
        self.global_command(
            "disable queued invalidation",
            |c| c.with_qie(false),
            |s| !s.qies(),
        )
    }

    /// Turns queued invalidation off, if it is on.
    fn disable_qi(&self) -> Result {
        if self.qi_on.load(Ordering::Acquire) {
            self.disable_qi_hw()?;
            self.qi_on.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Issues a context-cache and/or an IOTLB invalidation, in that
    /// order, and waits (bounded) for both: one queue submission with
    /// queued invalidation, else through the registers (VT-d 6.5.1).
    ///
    /// An invalidation the unit does not confirm is counted, and the
    /// domain ID it concerned is kept out of use for good: the unit may
    /// still cache translations tagged with it.
    fn invalidate(
        &self,
        ctx: Option<ContextInvalidation>,
        iotlb: Option<IotlbInvalidation>,
    ) -> Result {
        self.invalidate_with_atc(ctx, iotlb, &[])
    }

    /// [`Self::invalidate`], with a device-TLB invalidation of the same
    /// range (everything, for a domain or context invalidation) for each
    /// ATC in `atc`, in the same submission as far as it goes. Devices get
    /// ATS only on a unit whose queue is on: device-TLB invalidations
    /// cannot go through the registers.
    fn invalidate_with_atc(
        &self,
        ctx: Option<ContextInvalidation>,
        iotlb: Option<IotlbInvalidation>,
        atc: &[AtcTarget],
    ) -> Result {
        let (dr, dw) = (self.cap.drd(), self.cap.dwd());
        let did = iotlb
            .and_then(IotlbInvalidation::domain)
            .or(ctx.and_then(ContextInvalidation::domain));
        let (atc_addr, atc_order) = iotlb.map_or((0, ATC_ALL), IotlbInvalidation::atc_range);
        let res = match self.queue() {
            Some(queue) => {
                let submit = |descs: &[[u64; 2]]| {
                    self.with_regs(|io| queue.submit(&UnitQueueRegs(io), descs, did))
                };
                let mut descs = [[0u64; 2]; 2];
                let mut n = 0;
                if let Some(c) = ctx {
                    descs[n] = c.descriptor();
                    n += 1;
                }
                if let Some(t) = iotlb {
                    descs[n] = t.descriptor(dr, dw);
                    n += 1;
                }
                if !atc.is_empty() {
                    let atc = atc.iter().map(|t| t.descriptor(atc_addr, atc_order));
                    submit_with(&descs[..n], atc, submit)
                } else if n > 0 {
                    submit(&descs[..n])
                } else {
                    Ok(())
                }
            }
            None if !atc.is_empty() => Err(EOPNOTSUPP),
            None => {
                let _guard = self.register_lock.lock();
                let regs = self.ecap.iotlb_regs();
                self.with_regs(|io| register_invalidate(io, regs, ctx, iotlb, dr, dw))
            }
        };
        if let Err(e) = res {
            self.unconfirmed.fetch_add(1, Ordering::Relaxed);
            if let Some(did) = did {
                self.dids.lock().keep(did);
            }
            pr_err!(
                "dmar{}: invalidation {:?} {:?} not confirmed ({:?}); domain {:?} is kept out of use\n",
                self.index,
                ctx,
                iotlb,
                e,
                did
            );
        }
        res
    }

    /// Flushes the write buffer where the unit requires it (CAP.RWBF).
    /// Does not sleep.
    pub(crate) fn flush_write_buffer(&self) -> Result {
        if !self.cap.rwbf() {
            return Ok(());
        }
        self.global_command(
            "flush write buffer",
            |c| GCMD::from(u32::from(c) | GCMD_WBF),
            |s| !s.wbfs(),
        )
    }

    /// Invalidates what the unit caches for one device whose context
    /// entry had domain `did` (device-selective context cache, then the
    /// domain's IOTLB entries).
    fn flush_device(&self, did: u16, sid: u16) -> Result {
        self.invalidate(
            Some(ContextInvalidation::Device { did, sid }),
            Some(IotlbInvalidation::Domain { did }),
        )
    }

    /// Issues IOTLB invalidation `inv`, and the same for the ATCs in
    /// `atc`, and waits for them, bounded. Does not sleep.
    pub(crate) fn flush_iotlb_atc(&self, inv: IotlbInvalidation, atc: &[AtcTarget]) -> Result {
        self.invalidate_with_atc(None, Some(inv), atc)
    }

    /// Invalidates all of a device's ATC, and waits, bounded.
    pub(crate) fn flush_atc(&self, atc: AtcTarget) -> Result {
        self.invalidate_with_atc(None, None, &[atc])
    }

    /// Whether devices on this unit may use ATS: the unit takes
    /// device-TLB invalidations (ECAP.DT) and its queue is on.
    pub(crate) fn ats_capable(&self) -> bool {
        self.ecap.dt() && self.queue().is_some()
    }

    /// Records that the core probed `dev` on this unit.
    pub(crate) fn add_device(&self, dev: &Device) -> Result {
        self.devices.lock().push(dev.into(), GFP_KERNEL)?;
        Ok(())
    }

    /// Forgets `dev`, released by the core.
    pub(crate) fn remove_device(&self, dev: &Device) {
        self.devices
            .lock()
            .retain(|d| !core::ptr::eq::<Device>(&**d, dev));
    }

    /// The devices with a driver bound whose DMA goes through a
    /// translated DMA-API domain.
    pub(crate) fn translated_bound_devices(&self) -> KVec<ARef<Device>> {
        let mut out = KVec::new();
        for d in self.devices.lock().iter() {
            if d.has_driver() && dma_api_translated(d) && out.push(d.clone(), GFP_KERNEL).is_err() {
                dev_err!(d, "out of memory; its driver is not unbound\n");
            }
        }
        out
    }

    /// Invalidates domain `did`'s IOTLB entries for `first..=last`: the
    /// smallest aligned page-selective block that covers them, or the
    /// whole domain where the unit cannot invalidate that block by page.
    /// The ATCs in `atc` get the same range invalidated.
    pub(crate) fn flush_iotlb_range(
        &self,
        did: u16,
        first: u64,
        last: u64,
        leaves_only: bool,
        atc: &[AtcTarget],
    ) -> Result {
        let mamv = self.cap.mamv().get() as u8;
        let inv = IotlbInvalidation::covering(did, first, last, self.cap.psi(), mamv)
            .leaves_only(leaves_only);
        self.flush_iotlb_atc(inv, atc)
    }

    /// Allocates a domain ID.
    pub(crate) fn alloc_did(&self) -> Result<u16> {
        self.dids.lock().alloc().ok_or_else(|| {
            pr_warn!(
                "dmar{}: all {} domain IDs in use\n",
                self.index,
                self.cap.domains().min(1 << 16)
            );
            ENOSPC
        })
    }

    /// Gives back domain ID `did` (unless it is kept out of use).
    pub(crate) fn free_did(&self, did: u16) {
        self.dids.lock().free(did);
    }

    /// The number of domain IDs handed out (reserved ones excluded).
    pub(crate) fn dids_in_use(&self) -> u32 {
        self.dids.lock().in_use()
    }

    /// Makes the context entry of `bus:devfn` not present and invalidates
    /// it: the device can reach no memory. Never fails: a unit that does
    /// not complete the invalidation is reported, and the entry stays
    /// cleared.
    pub(crate) fn block(&self, bus: u8, devfn: u8) {
        let tables = self.tables.lock();
        let Some(did) = tables.clear_present(bus, devfn) else {
            return;
        };
        if self.flush_device(did, source_id(bus, devfn)).is_err() {
            pr_err!(
                "dmar{}: {:02x}:{:02x}.{}: blocked, but the unit did not confirm the invalidation\n",
                self.index,
                bus,
                devfn >> 3,
                devfn & 7
            );
        }
        tables.erase(bus, devfn);
        if let Some(c) = Option::as_mut(&mut *self.copied.lock()) {
            // The crashed kernel's entry is gone: a later probe of the
            // device is not deferred.
            c.clear_bit(usize::from(source_id(bus, devfn)));
        }
    }

    /// Whether the unit kept translating through the crashed kernel's
    /// tables, copied (kdump).
    pub(crate) fn took_over(&self) -> bool {
        self.copied.lock().is_some()
    }

    /// Whether requester ID `rid` still has the context entry copied from
    /// the crashed kernel: its DMA is still translated as that kernel set
    /// it up, until a first attach replaces the entry.
    pub(crate) fn is_copied(&self, rid: u16) -> bool {
        self.copied
            .lock()
            .as_ref()
            .is_some_and(|c| c.next_bit(usize::from(rid)) == Some(usize::from(rid)))
    }

    /// The context entry of the identity domain: pass-through where the
    /// unit has it (ECAP.PT), else a 1:1 page table of system RAM and of
    /// the unit's reserved memory regions.
    pub(crate) fn identity_entry(&self) -> Result<ContextEntry> {
        let aw = widest_aw(self.cap.sagaw().get()).ok_or(ENODEV)?;
        if self.ecap.pt() && !crate::identity_page_tables() {
            return Ok(ContextEntry {
                did: PASS_THROUGH_DID,
                aw,
                tt: TranslationType::PassThrough,
                slptptr: 0,
            });
        }
        let mut id = self.identity.lock();
        if id.is_none() {
            *id = Some(self.build_identity(aw)?);
        }
        let t = id.as_ref().ok_or(ENOMEM)?;
        Ok(ContextEntry {
            did: t.did,
            aw,
            tt: TranslationType::MultiLevel,
            slptptr: t.pt.hw_info().root,
        })
    }

    fn build_identity(&self, aw: u8) -> Result<IdentityTable> {
        let format = TableFormat::for_unit(&UnitFeatures::of(self.cap, self.ecap))?;
        let cfg = format.config(&self.walker);
        let mut pt = KBox::pin_init(Table::<Vtdss>::new(&cfg, GFP_KERNEL), GFP_KERNEL)?;
        pt.as_mut().restrict_page_sizes(format.pgsizes)?;
        debug_assert_eq!(pt.hw_info().aw, aw);
        // System RAM and the reserved memory regions, page-aligned, sorted
        // and merged (an RMRR may overlap RAM), each mapped once.
        let mut ranges = KVec::new();
        let mut bytes = 0;
        for &(first, last) in system_ram_ranges()?.iter() {
            ranges.push((first, last), GFP_KERNEL)?;
            bytes += last - first + 1;
        }
        for r in self.scope.rmrrs() {
            ranges.push(r, GFP_KERNEL)?;
        }
        ranges.sort_unstable();
        let rw = Prot::READ.union(Prot::WRITE);
        let mut merged: Option<(u64, u64)> = None;
        for (first, last) in ranges.iter().map(|&(f, l)| (f & !0xfff, l | 0xfff)) {
            merged = match merged {
                Some((f, l)) if first <= l.saturating_add(1) => Some((f, l.max(last))),
                Some((f, l)) => {
                    map_identity(pt.as_mut(), f, l, rw)?;
                    Some((first, last))
                }
                None => Some((first, last)),
            };
        }
        if let Some((f, l)) = merged {
            map_identity(pt.as_mut(), f, l, rw)?;
        }
        let did = self.alloc_did()?;
        pr_info!(
            "dmar{}: identity domain: 1:1 page table of {} MiB of RAM, {} levels, domain {}\n",
            self.index,
            bytes >> 20,
            u32::from(aw) + 2,
            did
        );
        Ok(IdentityTable { pt, did })
    }

    /// Gives `bus:devfn` context entry `entry`, replacing (and
    /// invalidating) whatever entry it had.
    pub(crate) fn set_context(&self, bus: u8, devfn: u8, entry: ContextEntry) -> Result {
        self.block(bus, devfn);
        self.tables.lock().set(bus, devfn, entry)?;
        // Not present to present: only units that cache not-present
        // entries (caching mode) need an invalidation, of the context
        // cache under domain 0 and of the new domain's IOTLB entries.
        if self.cap.cm() {
            self.invalidate(
                Some(ContextInvalidation::Device {
                    did: 0,
                    sid: source_id(bus, devfn),
                }),
                Some(IotlbInvalidation::Domain { did: entry.did }),
            )
        } else {
            self.flush_write_buffer()
        }
    }

    /// Writes the translation structure of `bus:devfn` in the format of
    /// the C driver's `domain_translation_struct` debugfs file: nothing
    /// unless its context entry is present and translates.
    pub(crate) fn dump_translation(
        &self,
        bus: u8,
        devfn: u8,
        f: &mut impl core::fmt::Write,
    ) -> core::fmt::Result {
        // Holding the lock keeps the entry, and so the domain and its
        // tables, in place: detaching rewrites the entry under it first.
        let tables = self.tables.lock();
        let Some([lo, hi]) = tables.get(bus, devfn) else {
            return Ok(());
        };
        if (lo >> 2) & 3 > 1 {
            return Ok(());
        }
        let pgd = lo & !0xfff;
        if self.is_copied(source_id(bus, devfn)) {
            // Its tables are the crashed kernel's, in memory this kernel
            // does not map: not walked.
            return writeln!(
                f,
                "Device {:04x}:{:02x}:{:02x}.{:x} @{:#x}: copied from the crashed kernel, not walked",
                self.scope.segment,
                bus,
                devfn >> 3,
                devfn & 7,
                pgd
            );
        }
        writeln!(
            f,
            "Device {:04x}:{:02x}:{:02x}.{:x} @{:#x}",
            self.scope.segment,
            bus,
            devfn >> 3,
            devfn & 7,
            pgd
        )?;
        writeln!(
            f,
            "{:<17}\t{:<18}\t{:<18}\t{:<18}\t{:<18}\tPTE",
            "IOVA_PFN", "PML5E", "PML4E", "PDPE", "PDE"
        )?;
        // SAFETY: The entry is not a copied one (checked above, under
        // `tables`, which a first attach takes to replace it), so it
        // points to the root table of the domain (or
        // identity table) the device is attached to, which stays attached,
        // and so allocated, while `tables` is held: detaching clears the
        // entry under that lock before the domain can be freed. Tables
        // below the root that an unmap unlinks are freed only under the walk
        // lock (`PagingOps::free_tables`), which `dump` holds while it walks.
        unsafe { crate::pagetable::dump(pgd, (hi & 7) as u32 + 2, f) }
    }

    /// The number of buses whose root entry points to a context table.
    pub(crate) fn context_tables(&self) -> usize {
        self.tables.lock().buses()
    }
}

impl UnitState {
    /// Brings up the unit behind platform device `pdev`: maps and checks
    /// its registers, turns off translation left on by a previous kernel,
    /// turns queued invalidation on and installs an empty root table
    /// (every device blocked). Translation stays off.
    pub(crate) fn bring_up(pdev: &platform::Device<Core<'_>>) -> Result<Arc<Self>> {
        let index = pdev.id().ok_or(EINVAL)?;
        let req = pdev.io_request_by_index(0).ok_or(ENODEV)?;
        let regs = req.iomap_exclusive_sized::<REG_SIZE>().inspect_err(|e| {
            pr_err!("dmar{}: cannot map the register page: {:?}\n", index, e);
        })?;
        let reg_base = pdev.resource_by_index(0).ok_or(ENODEV)?.start();
        let (ver, cap, ecap, gsts) = {
            let io = &regs;
            // `Region` only promises 4-byte alignment, so 64-bit registers
            // are read with the run-time checked accessor; the mapping is
            // page aligned and the check cannot fail.
            (
                io.read(VER),
                io.try_read(CAP)?,
                io.try_read(ECAP)?,
                io.read(GSTS),
            )
        };
        check_readable(index, reg_base, ver, cap, ecap)?;
        pr_info!(
            "dmar{}: reg_base_addr {:x} ver {}:{} cap {:x} ecap {:x}\n",
            index,
            reg_base,
            ver.max().get(),
            ver.min().get(),
            u64::from(cap),
            u64::from(ecap)
        );
        log_decoded(index, cap, ecap);

        let scope = UnitScope::of_drhd(index as usize)?;
        let walker = if ecap.c() {
            Walker::Coherent
        } else {
            Walker::Incoherent(pdev.as_ref().into())
        };
        // A kdump kernel keeps translation on and takes the crashed
        // kernel's context tables over; anything else starts empty.
        let rtaddr = regs.try_read(RTADDR)?;
        let old = (gsts.tes() && crash_dump::is_kdump_kernel())
            .then(|| take_over(index, &walker, cap, ecap, rtaddr));
        let (tables, copied) = match old {
            Some(Ok((tables, copied))) => (tables, Some(copied)),
            Some(Err(why)) => {
                pr_warn!(
                    "dmar{}: kdump: cannot take over the crashed kernel's tables: {}\n",
                    index,
                    why
                );
                (ContextTables::new(walker.clone())?, None)
            }
            None => (ContextTables::new(walker.clone())?, None),
        };
        let root_phys = tables.root_phys();
        let mut dids = DomainIds::new(cap.domains())?;
        if let Some(c) = &copied {
            let mut did = c.dids.next_bit(0);
            while let Some(d) = did {
                // (IDs the driver reserves itself, 0 and pass-through, are
                // in use already.)
                dids.reserve_old(d as u16);
                did = c.dids.next_bit(d + 1);
            }
            pr_info!(
                "dmar{}: kdump: took over the crashed kernel's tables at {:#x}: {} context entries copied, {} refused, {} domain IDs reserved; translation stays on\n",
                index,
                rtaddr.rta().get() << 12,
                c.copied,
                c.refused,
                dids.old()
            );
        }
        // INVARIANT: `check_readable` passed; RTADDR is set below, before
        // anything else uses the state.
        let state = Arc::pin_init(
            try_pin_init!(UnitState {
                index,
                reg_base,
                iommu: IommuDevice::new(),
                regs: regs.into_devres()?,
                cap,
                ecap,
                walker,
                scope,
                tables <- new_mutex!(tables),
                qi: SetOnce::new(),
                qi_on: AtomicBool::new(false),
                register_lock <- new_spinlock_irq!(()),
                dids <- new_spinlock_irq!(dids),
                devices <- new_mutex!(KVec::new()),
                identity <- new_mutex!(None),
                copied <- new_spinlock_irq!(copied.map(|c| c.sources)),
                fault_work <- new_delayed_work!("rust_vtd::fault_work"),
                faults <- Faults::new(),
                unconfirmed: AtomicU64::new(0),
                leaked_tables: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;

        if gsts.tes() && !state.took_over() {
            // Outside kdump nothing can rely on the old tables: like the C
            // driver, turn translation off before anything else.
            pr_warn!(
                "dmar{}: translation was left enabled by a previous kernel; disabling it\n",
                index
            );
            state.disable_translation()?;
        }
        state.enable_qi()?;
        state.set_root_table(root_phys)?;
        // Report and clear what an earlier user left in the fault registers.
        state.report_faults();

        Ok(state)
    }

    /// Takes the unit down once no device uses it any more: translation
    /// and queued invalidation off, the fault poll stopped, and the last
    /// faults reported.
    pub(crate) fn shut_down(self: &Arc<Self>) {
        if self.disable_translation().is_err() {
            pr_err!("dmar{}: could not turn translation off\n", self.index);
        }
        self.faults.stop();
        cancel_delayed_work_sync(self);
        self.report_faults();
        if self.disable_qi().is_err() {
            pr_err!(
                "dmar{}: could not turn queued invalidation off\n",
                self.index
            );
        }
    }
}

/// The unit's queue registers, as [`InvQueue`] drives them.
struct UnitQueueRegs<'a, 'b>(&'a ExclusiveIoMem<'b, REG_SIZE>);

impl QueueHw for UnitQueueRegs<'_, '_> {
    fn head(&self) -> Result<usize> {
        Ok(self.0.try_read(IQH)?.qh().get() as usize % QUEUE_LEN)
    }

    fn set_tail(&self, tail: usize) -> Result {
        self.0.try_write_reg(IQT::from((tail as u64) << 4))
    }

    fn fault_status(&self) -> Result<u32> {
        Ok(u32::from(self.0.read(FSTS)))
    }

    fn clear_fault_status(&self, bits: u32) -> Result {
        self.0.write_reg(FSTS::from(bits));
        Ok(())
    }
}
