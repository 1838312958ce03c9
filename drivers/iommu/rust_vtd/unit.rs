// SPDX-License-Identifier: GPL-2.0

//! One DMA-remapping hardware unit (a DRHD): bring-up, its root and
//! context tables, invalidation, and translation on and off.

use crate::{
    context::{
        root_entry,
        root_entry_ctp,
        source_id,
        widest_aw,
        ContextEntry,
        TranslationType, //
    },
    dmar::{
        DeviceScope,
        Dmar,
        ScopeKind, //
    },
    domain::pgsize_bitmap,
    iommu::{
        unit_debugfs,
        RustVtdIommu,
        OPS,
        UNITS, //
    },
    pagetable::PageTable,
    qi::{
        self,
        ContextInvalidation,
        InvQueue,
        IotlbInvalidation,
        CCMD_ICC,
        IOTLB_IVT, //
    },
    regs::{
        CAP,
        ECAP,
        FSTS,
        FSTS_PFO,
        FSTS_PPF,
        FSTS_PRO,
        GCMD,
        GCMD_WBF,
        GSTS,
        REG_SIZE,
        VER, //
    },
};
use core::fmt::Write;
use core::sync::atomic::{
    AtomicBool,
    AtomicU32,
    AtomicU64,
    Ordering, //
};
use kernel::{
    acpi::table::Table,
    debugfs::Scope,
    device::{
        Core,
        Device, //
    },
    io::{
        mem::{
            DevresExclusiveIoMem,
            ExclusiveIoMem, //
        },
        poll::read_poll_timeout_atomic,
        resource::system_ram_ranges,
        Io, //
    },
    iommu::{
        device::{
            Attribute,
            Attributes,
            HasIommuDevice,
            IommuDevice,
            Registration, //
        },
        domain::dma_api_translated,
        pages::TablePage,
    },
    new_mutex, new_spinlock_irq, platform,
    prelude::*,
    str::{
        CStr,
        CString,
        RawFormatter, //
    },
    sync::{
        aref::ARef,
        Arc,
        Mutex,
        SpinLockIrq, //
    },
    time::{
        msecs_to_jiffies,
        Delta,
        Instant,
        Monotonic, //
    },
    workqueue::{
        self,
        cancel_delayed_work_sync,
        impl_has_delayed_work,
        new_delayed_work,
        DelayedWork,
        WorkItem, //
    },
};

/// How long a unit may take to complete a command: the C driver allows
/// about ten seconds (`DMAR_OPERATION_TIMEOUT`) and then panics; we give
/// up after one second with `ETIMEDOUT`.
const COMMAND_TIMEOUT_US: usize = 1_000_000;
/// Poll interval while waiting for a command.
const POLL_US: usize = 1;

/// Domain ID used for pass-through context entries, as the C driver does
/// (`FLPT_DEFAULT_DID`).
const PASS_THROUGH_DID: u16 = 1;

/// Register offsets outside the `register!` definitions: the context
/// command register; the IOTLB registers are at ECAP.IRO.
const CCMD: usize = 0x28;
/// RTADDR register offset.
const RTADDR: usize = 0x20;
/// Fault recording register: fault bit and type (read) in the top dword.
const FRCD_F: u32 = 1 << 31;
const FRCD_T_READ: u32 = 1 << 30;

/// How often the fault recording registers are polled. The fault-event
/// interrupt is an x86 DMAR-MSI that the kernel does not let modules
/// allocate (`dmar_alloc_hwirq()` is not exported), so faults are found by
/// this bounded poll instead, at most this late.
const FAULT_POLL_MS: u32 = 100;
/// After a poll that found faults, the next ones come this soon, for
/// `FAULT_FAST_POLLS` polls: units may have a single fault recording
/// register (QEMU's has), and faults that arrive while it is full are lost.
const FAULT_REPOLL_MS: u32 = 1;
const FAULT_FAST_POLLS: u32 = 200;
/// Fault messages: at most this many in a burst, then one per 100 ms; the
/// others are counted, and the count is logged when the budget refills.
const FAULT_LOG_BURST: u32 = 10;
const FAULT_LOG_REFILL_MS: i64 = 100;

/// What a legacy-mode fault reason code means (VT-d 7.1.3).
fn fault_reason(reason: u32) -> &'static str {
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

/// A PCI device scope of the unit, as a path of device/function hops from
/// a start bus.
struct PciScope {
    bridge: bool,
    start_bus: u8,
    path: KVec<u8>,
}

impl PciScope {
    /// Whether the device whose path from the root bus is `chain` is in
    /// this scope: the scope's device itself, or below it for a bridge.
    fn covers(&self, chain: &[(u8, u8)]) -> bool {
        let n = self.path.len();
        chain.len() >= n
            && (self.bridge || chain.len() == n)
            && chain[0].0 == self.start_bus
            && chain.iter().zip(self.path.iter()).all(|(c, d)| c.1 == *d)
    }
}

/// A reserved memory region (RMRR) of the unit's segment: memory the
/// devices in its scope must keep reaching 1:1, inclusive bounds.
struct ReservedRegion {
    base: u64,
    limit: u64,
    scopes: KVec<PciScope>,
}

/// The 1:1 page table of identity domains on a unit that cannot (or, by
/// the module parameter, must not) pass DMA through, and its domain ID.
struct IdentityTable {
    pt: PageTable,
    did: u16,
}

/// The root table and the context tables it points to.
struct Tables {
    root: TablePage,
    contexts: KVec<Option<TablePage>>,
}

/// What a remapping unit shares with the IOMMU core's callbacks.
///
/// # Invariants
///
/// `regs` maps the unit's register page; `cap` and `ecap` were read from
/// it and passed [`check_readable`]; RTADDR holds `tables.root`'s address
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
    segment: u16,
    include_all: bool,
    scopes: KVec<PciScope>,
    rmrrs: KVec<ReservedRegion>,
    #[pin]
    tables: Mutex<Tables>,
    /// The invalidation queue, while queued invalidation is enabled; the
    /// lock also serialises register-based invalidation. Taken in atomic
    /// context (IOTLB flushes on DMA unmap).
    #[pin]
    qi: SpinLockIrq<Option<InvQueue>>,
    /// The identity domain's 1:1 page table, built on first use.
    #[pin]
    identity: Mutex<Option<IdentityTable>>,
    /// The devices the IOMMU core has probed on this unit.
    #[pin]
    devices: Mutex<KVec<ARef<Device>>>,
    /// Domain IDs in use, one bit each; 0 (reserved in caching mode) and
    /// the pass-through ID are never handed out.
    #[pin]
    dids: SpinLockIrq<KVec<u64>>,
    #[pin]
    fault_work: DelayedWork<UnitState>,
    /// Set when the unit goes down: the fault poll stops re-arming.
    stopping: AtomicBool,
    /// Faults reported since bring-up.
    faults: AtomicU64,
    /// Fault messages that may still be printed now (a token bucket).
    log_budget: AtomicU32,
    /// Faults found but not logged since the budget last refilled.
    unlogged: AtomicU32,
    /// When the log budget last refilled.
    #[pin]
    last_refill: Mutex<Instant<Monotonic>>,
    /// How many more polls come early, after faults were found.
    fast_polls: AtomicU32,
    /// Invalidation queue submissions since bring-up (each one batch and
    /// its wait descriptor), and the descriptors in them, waits not
    /// counted: what the C driver's `qi_submit` tracepoint counts.
    qi_submissions: AtomicU64,
    qi_descriptors: AtomicU64,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for UnitState { self.fault_work }
}

impl WorkItem for UnitState {
    type Pointer = Arc<UnitState>;

    fn run(this: Arc<UnitState>) {
        let fast = this.fast_polls.load(Ordering::Relaxed);
        let found = this.report_faults();
        let next = if found > 0 {
            FAULT_FAST_POLLS
        } else {
            fast.saturating_sub(1)
        };
        this.fast_polls.store(next, Ordering::Relaxed);
        if !this.stopping.load(Ordering::Acquire) {
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

/// The platform driver's data for a bound unit.
///
/// Dropping it (on unbind) unregisters the unit from the IOMMU core, which
/// moves every device to the blocking domain and releases it, then turns
/// translation off, so that devices fall back to direct DMA.
pub(crate) struct Unit {
    registration: Option<Registration<RustVtdIommu, UnitState>>,
    state: Arc<UnitState>,
    /// Its debugfs directory (`qi_stats`), removed with it.
    _debugfs: Option<Pin<KBox<Scope<Arc<UnitState>>>>>,
}

impl Drop for Unit {
    fn drop(&mut self) {
        let s = &self.state;
        // A driver doing DMA through a translated DMA-API domain holds
        // IOVAs that mean nothing once translation is off: unbind it
        // while the unit still translates, and offer the device a driver
        // again once it does direct DMA.
        let translated = s.translated_bound_devices();
        for dev in translated.iter() {
            dev_info!(
                dev,
                "dmar{}: going away; unbinding the driver of this translated device\n",
                s.index
            );
            dev.release_driver();
        }
        drop(self.registration.take());
        if s.disable_translation().is_err() {
            pr_err!("dmar{}: could not turn translation off\n", s.index);
        }
        for dev in translated.iter() {
            match dev.attach_driver() {
                Ok(true) => dev_info!(dev, "driver bound again, with direct DMA\n"),
                Ok(false) => {}
                Err(e) => dev_warn!(dev, "binding a driver again failed: {:?}\n", e),
            }
        }
        s.stopping.store(true, Ordering::Release);
        cancel_delayed_work_sync(s);
        s.report_faults();
        if s.disable_qi().is_err() {
            pr_err!("dmar{}: could not turn queued invalidation off\n", s.index);
        }
        let mut units = UNITS.lock();
        units.retain(|u| !Arc::ptr_eq(u, s));
        if units.is_empty() {
            // The registry is a static, never dropped: free its buffer so
            // that nothing is left once the module goes.
            *units = KVec::new();
            *crate::iommu::DEBUGFS.lock() = None;
        }
        drop(units);
        pr_info!(
            "dmar{}: released; {} faults reported\n",
            s.index,
            s.fault_count()
        );
    }
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
fn log_decoded(index: u32, c: CAP, e: ECAP) {
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
        index,
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

/// The PCI scopes of DRHD `index`, read again from the DMAR table.
/// The PCI scopes in `scopes`.
fn pci_scopes(scopes: &[DeviceScope]) -> Result<KVec<PciScope>> {
    let mut out = KVec::new();
    for s in scopes.iter() {
        let bridge = match s.kind {
            ScopeKind::Endpoint => false,
            ScopeKind::Bridge => true,
            _ => continue,
        };
        out.push(pci_scope(s, bridge)?, GFP_KERNEL)?;
    }
    Ok(out)
}

/// DRHD `index`'s segment, INCLUDE_PCI_ALL flag and PCI scopes, and the
/// reserved memory regions of its segment.
#[allow(clippy::type_complexity)]
fn drhd_scopes(index: usize) -> Result<(u16, bool, KVec<PciScope>, KVec<ReservedRegion>)> {
    let table = Table::get(b"DMAR", 1)?;
    let dmar = Dmar::parse(table.as_bytes()).map_err(Error::from)?;
    let drhd = dmar.units.get(index).ok_or(ENODEV)?;
    let scopes = pci_scopes(&drhd.scopes)?;
    let mut rmrrs = KVec::new();
    for r in dmar.rmrrs.iter().filter(|r| r.segment == drhd.segment) {
        rmrrs.push(
            ReservedRegion {
                base: r.base,
                limit: r.limit,
                scopes: pci_scopes(&r.scopes)?,
            },
            GFP_KERNEL,
        )?;
    }
    Ok((drhd.segment, drhd.include_all, scopes, rmrrs))
}

fn pci_scope(s: &DeviceScope, bridge: bool) -> Result<PciScope> {
    let mut path = KVec::with_capacity(s.path.len(), GFP_KERNEL)?;
    for hop in s.path.iter() {
        path.push((hop.device << 3) | (hop.function & 7), GFP_KERNEL)?;
    }
    Ok(PciScope {
        bridge,
        start_bus: s.start_bus,
        path,
    })
}

impl UnitState {
    /// Queues the next fault poll.
    fn poll_faults_later(self: Arc<Self>) {
        let ms = if self.fast_polls.load(Ordering::Relaxed) > 0 {
            FAULT_REPOLL_MS
        } else {
            FAULT_POLL_MS
        };
        let _ = workqueue::system_power_efficient().enqueue_delayed(self, msecs_to_jiffies(ms));
    }

    /// Reads, logs and clears the primary fault recording registers
    /// (VT-d 7.2.1), the way the C driver's `dmar_fault()` does.
    /// Refills the log budget by one message per 100 ms since it last did,
    /// and then logs how many faults were not logged.
    /// Returns the number of faults found.
    fn report_faults(&self) -> u32 {
        {
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
                    pr_err!("dmar{}: {} more faults not logged\n", self.index, n);
                }
            }
        }
        let mut found = 0u32;
        let res = self.with_regs(|io| {
            let fsts = io.try_read32(FSTS)?;
            if fsts & (FSTS_PPF | FSTS_PFO) == 0 {
                return Ok(());
            }
            let count = self.cap.fault_reg_count();
            let mut idx = ((fsts >> 8) & 0xff) as usize % count;
            let mut suppressed = 0u32;
            let found = &mut found;
            for _ in 0..count {
                let off = self.cap.fault_reg_offset() + idx * 16;
                let hi = io.try_read32(off + 12)?;
                if hi & FRCD_F == 0 {
                    break;
                }
                let sid = io.try_read32(off + 8)? & 0xffff;
                let addr = io.try_read64(off)? & !0xfff;
                io.try_write32(FRCD_F, off + 12)?;
                self.faults.fetch_add(1, Ordering::Relaxed);
                *found += 1;
                let reason = hi & 0xff;
                let budget = self.log_budget.load(Ordering::Relaxed);
                if budget > 0 {
                    self.log_budget.store(budget - 1, Ordering::Relaxed);
                    let kind = if hi & FRCD_T_READ != 0 {
                        "read"
                    } else {
                        "write"
                    };
                    pr_err!(
                        "dmar{}: DMA {} fault: source {:02x}:{:02x}.{} address {:#x} reason {:#04x}: {}\n",
                        self.index,
                        kind,
                        sid >> 8,
                        (sid >> 3) & 0x1f,
                        sid & 7,
                        addr,
                        reason,
                        fault_reason(reason)
                    );
                } else {
                    suppressed += 1;
                }
                idx = (idx + 1) % count;
            }
            if fsts & FSTS_PFO != 0 {
                pr_err!("dmar{}: fault recording overflowed; faults were lost\n", self.index);
            }
            if suppressed > 0 {
                self.unlogged.fetch_add(suppressed, Ordering::Relaxed);
            }
            io.try_write32(FSTS_PFO | FSTS_PPF | FSTS_PRO, FSTS)
        });
        if let Err(e) = res {
            if e != ENODEV {
                pr_err!(
                    "dmar{}: reading the fault registers failed: {:?}\n",
                    self.index,
                    e
                );
            }
        }
        found
    }

    /// Faults reported since bring-up.
    pub(crate) fn fault_count(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// Writes the invalidation queue counters, as the unit's `qi_stats`
    /// debugfs file shows them (`make bench` reads it).
    pub(crate) fn show_qi_stats(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "submissions: {}",
            self.qi_submissions.load(Ordering::Relaxed)
        )?;
        writeln!(
            f,
            "descriptors: {}",
            self.qi_descriptors.load(Ordering::Relaxed)
        )
    }

    /// Whether one of the unit's device scopes names the device whose
    /// path from the root bus is `chain` (bus, devfn of each hop, the
    /// device last): an endpoint scope naming it exactly, or a bridge scope
    /// naming it or a bridge above it.
    pub(crate) fn scope_covers(&self, segment: u16, chain: &[(u8, u8)]) -> bool {
        segment == self.segment && self.scopes.iter().any(|s| s.covers(chain))
    }

    /// The reserved memory regions (first and last byte) of the device
    /// whose path from the root bus is `chain`.
    pub(crate) fn reserved_regions(&self, chain: &[(u8, u8)]) -> Result<KVec<(u64, u64)>> {
        let mut out = KVec::new();
        for r in self.rmrrs.iter() {
            if r.scopes.iter().any(|s| s.covers(chain)) {
                out.push((r.base, r.limit), GFP_KERNEL)?;
            }
        }
        Ok(out)
    }

    /// Whether this is the catch-all unit of `segment`.
    pub(crate) fn includes_all(&self, segment: u16) -> bool {
        self.include_all && self.segment == segment
    }

    /// Runs `f` on the registers, or fails with `ENODEV` once the unit's
    /// device is unbound. `f` runs under RCU: it must not sleep.
    fn with_regs<R>(
        &self,
        f: impl FnOnce(&ExclusiveIoMem<'_, REG_SIZE>) -> Result<R>,
    ) -> Result<R> {
        let regs = self.regs.try_access().ok_or(ENODEV)?;
        f(&regs)
    }

    /// Waits, bounded, until `done` holds for the 64-bit register at `off`.
    fn wait64(
        &self,
        io: &ExclusiveIoMem<'_, REG_SIZE>,
        what: &str,
        off: usize,
        done: impl Fn(u64) -> bool,
    ) -> Result<u64> {
        read_poll_timeout_atomic(
            || io.try_read64(off),
            |v: &u64| done(*v),
            Delta::from_micros(POLL_US as i64),
            COMMAND_TIMEOUT_US / POLL_US,
        )
        .inspect_err(|_| {
            pr_err!(
                "dmar{}: hardware did not complete '{}' in {} ms\n",
                self.index,
                what,
                COMMAND_TIMEOUT_US / 1000
            )
        })
    }

    /// Issues a global command that changes one persistent setting, and
    /// waits, bounded, until the status register reports it.
    fn global_command(
        &self,
        what: &str,
        cmd: impl FnOnce(GCMD) -> GCMD,
        done: impl Fn(GSTS) -> bool,
    ) -> Result {
        self.with_regs(|io| {
            io.write_reg(cmd(io.read(GSTS).persistent_command()));
            read_poll_timeout_atomic(
                || Ok(io.read(GSTS)),
                |s: &GSTS| done(*s),
                Delta::from_micros(POLL_US as i64),
                COMMAND_TIMEOUT_US / POLL_US,
            )
            .map(|_| ())
            .inspect_err(|_| {
                pr_err!(
                    "dmar{}: hardware did not complete '{}' in {} ms (gsts {:#x})\n",
                    self.index,
                    what,
                    COMMAND_TIMEOUT_US / 1000,
                    u32::from(io.read(GSTS))
                )
            })
        })
    }

    /// Turns DMA translation on.
    fn enable_translation(&self) -> Result {
        self.global_command("enable translation", |c| c.with_te(true), |s| s.tes())
    }

    /// Turns DMA translation off.
    pub(crate) fn disable_translation(&self) -> Result {
        self.global_command("disable translation", |c| c.with_te(false), |s| !s.tes())
    }

    /// Points the unit at the root table (RTADDR, then GCMD.SRTP) and
    /// invalidates everything cached from any earlier table.
    fn set_root_table(&self, root: u64) -> Result {
        self.with_regs(|io| io.try_write64(root, RTADDR))?;
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
    /// queue a previous user left enabled. Units without ECAP.QI keep
    /// register-based invalidation.
    fn enable_qi(&self) -> Result {
        if !self.ecap.qi() {
            return Ok(());
        }
        if self.with_regs(|io| Ok(io.read(GSTS).qies()))? {
            self.disable_qi_hw()?;
        }
        let queue = InvQueue::new()?;
        self.with_regs(|io| qi::program(io, &queue))?;
        self.global_command(
            "enable queued invalidation",
            |c| c.with_qie(true),
            |s| s.qies(),
        )?;
        *self.qi.lock() = Some(queue);
        Ok(())
    }

    /// Waits until the unit has consumed its queue, then turns it off.
    fn disable_qi_hw(&self) -> Result {
        self.with_regs(|io| {
            read_poll_timeout_atomic(
                || qi::drained(io),
                |d: &bool| *d,
                Delta::from_micros(POLL_US as i64),
                COMMAND_TIMEOUT_US / POLL_US,
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
        let mut qi = self.qi.lock();
        if qi.is_some() {
            self.disable_qi_hw()?;
            *qi = None;
        }
        Ok(())
    }

    /// Issues a context-cache and/or an IOTLB invalidation, in that
    /// order, and waits (bounded) for both: one queue submission with
    /// queued invalidation, else through the registers (VT-d 6.5.1).
    fn invalidate(
        &self,
        ctx: Option<ContextInvalidation>,
        iotlb: Option<IotlbInvalidation>,
    ) -> Result {
        let (dr, dw) = (self.cap.drd(), self.cap.dwd());
        let mut qi = self.qi.lock();
        if let Some(queue) = (*qi).as_mut() {
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
            self.qi_submissions.fetch_add(1, Ordering::Relaxed);
            self.qi_descriptors.fetch_add(n as u64, Ordering::Relaxed);
            return self.with_regs(|io| queue.submit(io, self.index, &descs[..n]));
        }
        let iva_reg = self.ecap.iotlb_reg_offset();
        let iotlb_reg = iva_reg + 8;
        self.with_regs(|io| {
            if let Some(c) = ctx {
                io.try_write64(c.register(), CCMD)?;
                self.wait64(io, "context-cache invalidation", CCMD, |v| {
                    v & CCMD_ICC == 0
                })?;
            }
            if let Some(t) = iotlb {
                if let Some(iva) = t.address() {
                    io.try_write64(iva, iva_reg)?;
                }
                io.try_write64(t.register(dr, dw), iotlb_reg)?;
                self.wait64(io, "IOTLB invalidation", iotlb_reg, |v| v & IOTLB_IVT == 0)?;
            }
            Ok(())
        })
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

    /// Issues IOTLB invalidation `inv` and waits for it, bounded. Does not
    /// sleep. A unit that does not complete it is reported.
    pub(crate) fn flush_iotlb(&self, inv: IotlbInvalidation) {
        if self.invalidate(None, Some(inv)).is_err() {
            pr_err!(
                "dmar{}: IOTLB invalidation {:?} not confirmed\n",
                self.index,
                inv
            );
        }
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
    fn translated_bound_devices(&self) -> KVec<ARef<Device>> {
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
    pub(crate) fn flush_iotlb_range(&self, did: u16, first: u64, last: u64) {
        let mamv = self.cap.mamv().get() as u8;
        let inv = IotlbInvalidation::covering(did, first, last, self.cap.psi(), mamv);
        self.flush_iotlb(inv);
    }

    /// Allocates a domain ID.
    pub(crate) fn alloc_did(&self) -> Result<u16> {
        let ndoms = self.cap.domains().min(1 << 16) as usize;
        let mut dids = self.dids.lock();
        for (w, word) in dids.iter_mut().enumerate() {
            if *word == u64::MAX {
                continue;
            }
            let bit = (!*word).trailing_zeros() as usize;
            let did = w * 64 + bit;
            if did >= ndoms {
                break;
            }
            *word |= 1 << bit;
            return Ok(did as u16);
        }
        pr_warn!("dmar{}: all {} domain IDs in use\n", self.index, ndoms);
        Err(ENOSPC)
    }

    /// Gives back domain ID `did`.
    pub(crate) fn free_did(&self, did: u16) {
        let did = usize::from(did);
        if did <= usize::from(PASS_THROUGH_DID) {
            return;
        }
        if let Some(word) = self.dids.lock().get_mut(did / 64) {
            *word &= !(1 << (did % 64));
        }
    }

    /// The number of domain IDs handed out (reserved ones excluded).
    pub(crate) fn dids_in_use(&self) -> u32 {
        let dids = self.dids.lock();
        dids.iter().map(|w| w.count_ones()).sum::<u32>() - 2
    }

    /// Makes the context entry of `bus:devfn` not present and invalidates
    /// it: the device can reach no memory. Never fails: a unit that does
    /// not complete the invalidation is reported, and the entry stays
    /// cleared.
    pub(crate) fn block(&self, bus: u8, devfn: u8) {
        let tables = self.tables.lock();
        let Some(ctx) = tables.contexts[usize::from(bus)].as_ref() else {
            return;
        };
        let i = usize::from(devfn) * 2;
        let lo = ctx.read(i);
        if lo & ContextEntry::PRESENT == 0 {
            return;
        }
        let did = ContextEntry::did_of(ctx.read(i + 1));
        ctx.write(i, lo & !ContextEntry::PRESENT);
        ctx.flush(i, 1);
        if self.flush_device(did, source_id(bus, devfn)).is_err() {
            pr_err!(
                "dmar{}: {:02x}:{:02x}.{}: blocked, but the unit did not confirm the invalidation\n",
                self.index,
                bus,
                devfn >> 3,
                devfn & 7
            );
        }
        ctx.write(i + 1, 0);
        ctx.write(i, 0);
        ctx.flush(i, 2);
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
            slptptr: t.pt.root_phys(),
        })
    }

    fn build_identity(&self, aw: u8) -> Result<IdentityTable> {
        let pt = PageTable::new(u32::from(aw) + 2, self.ecap.c(), self.ecap.sc())?;
        let sizes = pgsize_bitmap(self.cap.sllps().get());
        let mut bytes = 0;
        for (first, last) in system_ram_ranges()?.iter() {
            pt.map_identity(*first, *last, sizes)?;
            bytes += last - first + 1;
        }
        for r in self.rmrrs.iter() {
            pt.map_identity(r.base, r.limit, sizes)?;
        }
        let did = self.alloc_did()?;
        pr_info!(
            "dmar{}: identity domain: 1:1 page table of {} MiB of RAM, {} table pages, domain {}\n",
            self.index,
            bytes >> 20,
            pt.table_count(),
            did
        );
        Ok(IdentityTable { pt, did })
    }

    /// Gives `bus:devfn` context entry `entry`, replacing (and
    /// invalidating) whatever entry it had.
    pub(crate) fn set_context(&self, bus: u8, devfn: u8, entry: ContextEntry) -> Result {
        self.block(bus, devfn);
        let mut tables = self.tables.lock();
        let b = usize::from(bus);
        if tables.contexts[b].is_none() {
            let ctx = TablePage::new()?;
            let [lo, hi] = root_entry(ctx.phys());
            tables.root.write(b * 2 + 1, hi);
            tables.root.write(b * 2, lo);
            tables.root.flush(b * 2, 2);
            tables.contexts[b] = Some(ctx);
        }
        let ctx = tables.contexts[b].as_ref().ok_or(ENOMEM)?;
        let [lo, hi] = entry.encode();
        let i = usize::from(devfn) * 2;
        ctx.write(i + 1, hi);
        ctx.write(i, lo);
        ctx.flush(i, 2);
        drop(tables);
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
        let Some(ctx) = tables.contexts[usize::from(bus)].as_ref() else {
            return Ok(());
        };
        let i = usize::from(devfn) * 2;
        let (lo, hi) = (ctx.read(i), ctx.read(i + 1));
        if lo & ContextEntry::PRESENT == 0 || (lo >> 2) & 3 > 1 {
            return Ok(());
        }
        let pgd = lo & !0xfff;
        writeln!(
            f,
            "Device {:04x}:{:02x}:{:02x}.{:x} @{:#x}",
            self.segment,
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
        // SAFETY: The entry points to the live table tree of the domain
        // (or identity table) the device is attached to, which stays
        // attached, and so allocated, while `tables` is held.
        unsafe { crate::pagetable::dump(pgd, (hi & 7) as u32 + 2, f) }
    }

    /// The number of buses whose root entry points to a context table.
    pub(crate) fn context_tables(&self) -> usize {
        let tables = self.tables.lock();
        (0..256)
            .filter(|b| root_entry_ctp(tables.root.read(b * 2)).is_some())
            .count()
    }
}

impl Unit {
    /// Brings up the unit behind platform device `pdev`: maps and checks
    /// its registers, turns off translation left on by a previous kernel,
    /// installs an empty root table (every device blocked), registers it
    /// with the IOMMU core, which gives every device it translates a
    /// domain, then turns translation on.
    pub(crate) fn probe(pdev: &platform::Device<Core<'_>>) -> Result<Self> {
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

        let (segment, include_all, scopes, rmrrs) = drhd_scopes(index as usize)?;
        let mut contexts = KVec::with_capacity(256, GFP_KERNEL)?;
        for _ in 0..256 {
            contexts.push(None, GFP_KERNEL)?;
        }
        let root = TablePage::new()?;
        let root_phys = root.phys();
        let ndoms = cap.domains().min(1 << 16) as usize;
        let mut dids = KVec::from_elem(0u64, ndoms.div_ceil(64), GFP_KERNEL)?;
        dids[0] |= 1 | (1 << PASS_THROUGH_DID);
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
                segment,
                include_all,
                scopes,
                rmrrs,
                tables <- new_mutex!(Tables { root, contexts }),
                qi <- new_spinlock_irq!(None),
                dids <- new_spinlock_irq!(dids),
                devices <- new_mutex!(KVec::new()),
                identity <- new_mutex!(None),
                fault_work <- new_delayed_work!("rust_vtd::fault_work"),
                stopping: AtomicBool::new(false),
                faults: AtomicU64::new(0),
                log_budget: AtomicU32::new(FAULT_LOG_BURST),
                unlogged: AtomicU32::new(0),
                last_refill <- new_mutex!(Instant::now()),
                fast_polls: AtomicU32::new(0),
                qi_submissions: AtomicU64::new(0),
                qi_descriptors: AtomicU64::new(0),
            }),
            GFP_KERNEL,
        )?;

        if gsts.tes() {
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

        UNITS.lock().push(state.clone(), GFP_KERNEL)?;
        let name = CString::try_from_fmt(fmt!("dmar{index}"))?;
        let registration =
            match Registration::register_with_attributes(state.clone(), pdev.as_ref(), &name, &OPS)
            {
                Ok(r) => r,
                Err(e) => {
                    pr_err!(
                        "dmar{}: registration with the IOMMU core failed: {:?}\n",
                        index,
                        e
                    );
                    UNITS.lock().retain(|u| !Arc::ptr_eq(u, &state));
                    return Err(e);
                }
            };
        let debugfs = unit_debugfs(&state, &name);
        let unit = Unit {
            registration: Some(registration),
            state,
            _debugfs: debugfs,
        };
        // From here on `unit`'s drop stops the poll.
        unit.state.clone().poll_faults_later();
        // Every device the unit translates has its context entry now.
        unit.state.enable_translation()?;
        pr_info!(
            "dmar{}: translation enabled; {} bus(es) with context tables\n",
            index,
            unit.state.context_tables()
        );
        Ok(unit)
    }
}
