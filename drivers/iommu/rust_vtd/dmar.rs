// SPDX-License-Identifier: GPL-2.0

//! The ACPI DMA Remapping Reporting (DMAR) table.
//!
//! The table describes the remapping hardware units (DRHD), the memory that
//! devices need to keep reaching (RMRR), the root ports that may issue
//! translated requests (ATSR), the devices that must use their ATC (SATC)
//! and a few structures this driver does not use. Its layout is in chapter 8
//! of the VT-d specification ("BIOS Considerations").
//!
//! The parser here is pure logic over the table's bytes. It never reads past
//! the length the table claims nor past the bytes it is given, and it rejects
//! a table whose structure it cannot trust (a zero or oversized length, a
//! record running past the end, a malformed device scope, overlapping
//! register sets) with a [`ParseError`] that says where. Structures of types
//! it does not know, and device scopes of unknown types, are skipped with a
//! warning, as the specification asks of software.

use kernel::{
    alloc::AllocError,
    fmt,
    prelude::*, //
};

/// Size of the fixed part of the DMAR table (ACPI header, width, flags).
pub(crate) const DMAR_HEADER_LEN: usize = 48;

/// Size of the register set of a remapping unit when the DRHD's size field
/// is zero: one 4 KiB page.
const REG_PAGE: u64 = 4096;

/// DMAR table flag: the platform supports interrupt remapping.
pub(crate) const DMAR_INTR_REMAP: u8 = 1 << 0;

/// Remapping structure types (VT-d specification, table 8-2).
mod kind {
    pub(super) const DRHD: u16 = 0;
    pub(super) const RMRR: u16 = 1;
    pub(super) const ATSR: u16 = 2;
    pub(super) const RHSA: u16 = 3;
    pub(super) const ANDD: u16 = 4;
    pub(super) const SATC: u16 = 5;
    pub(super) const SIDP: u16 = 6;
}

/// Why a DMAR table was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// Fewer bytes than the fixed DMAR header.
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// The signature is not `DMAR`.
    BadSignature,
    /// The header's length is smaller than the header or larger than the
    /// bytes available.
    BadLength {
        /// Length the header claims.
        claimed: u32,
        /// Bytes available.
        available: usize,
    },
    /// The host address width is below 12 bits or above 64 bits.
    BadHostAddressWidth(u8),
    /// A remapping structure is shorter than its type needs (or zero long).
    BadStructLength {
        /// Offset of the structure in the table.
        offset: usize,
        /// Its type.
        kind: u16,
        /// Its length.
        len: u16,
    },
    /// A remapping structure runs past the end of the table.
    PastEnd {
        /// Offset of the structure in the table.
        offset: usize,
        /// Its length (0 when even the type and length do not fit).
        len: u16,
    },
    /// A device scope is malformed: too short, an odd or empty path, or it
    /// runs past the structure that holds it.
    BadScope {
        /// Offset of the scope in the table.
        offset: usize,
    },
    /// A DRHD's register base address is zero or not page aligned.
    BadRegisterBase {
        /// Offset of the DRHD in the table.
        offset: usize,
        /// The address it gives.
        addr: u64,
    },
    /// Two DRHDs claim overlapping register sets.
    OverlappingUnits {
        /// Register base of the first unit.
        first: u64,
        /// Register base of the second unit.
        second: u64,
    },
    /// The table describes no remapping unit at all.
    NoUnits,
    /// Out of memory while building the result.
    NoMemory,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { len } => write!(f, "table truncated: {len} bytes"),
            Self::BadSignature => write!(f, "signature is not DMAR"),
            Self::BadLength { claimed, available } => write!(
                f,
                "table length {claimed} is invalid ({available} bytes available)"
            ),
            Self::BadHostAddressWidth(w) => write!(f, "invalid host address width {w}"),
            Self::BadStructLength { offset, kind, len } => write!(
                f,
                "structure type {kind} at offset {offset:#x} has invalid length {len}"
            ),
            Self::PastEnd { offset, len } => write!(
                f,
                "structure at offset {offset:#x} (length {len}) runs past the table end"
            ),
            Self::BadScope { offset } => {
                write!(f, "malformed device scope at offset {offset:#x}")
            }
            Self::BadRegisterBase { offset, addr } => write!(
                f,
                "DRHD at offset {offset:#x} has invalid register base {addr:#x}"
            ),
            Self::OverlappingUnits { first, second } => write!(
                f,
                "DRHDs at {first:#x} and {second:#x} have overlapping register sets"
            ),
            Self::NoUnits => write!(f, "no DRHD structure"),
            Self::NoMemory => write!(f, "out of memory"),
        }
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::NoMemory => ENOMEM,
            ParseError::NoUnits => ENODEV,
            _ => EINVAL,
        }
    }
}

impl From<AllocError> for ParseError {
    fn from(_: AllocError) -> Self {
        ParseError::NoMemory
    }
}

/// The type of a device scope entry (VT-d specification, table 8-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    /// A PCI endpoint device.
    Endpoint,
    /// A PCI-PCI bridge and every device below it.
    Bridge,
    /// An I/O APIC.
    IoApic,
    /// An MSI-capable HPET.
    Hpet,
    /// An ACPI namespace device (see ANDD).
    Namespace,
}

impl ScopeKind {
    fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Endpoint,
            2 => Self::Bridge,
            3 => Self::IoApic,
            4 => Self::Hpet,
            5 => Self::Namespace,
            _ => return None,
        })
    }
}

/// One hop of a device scope path: the device and function on the current
/// bus; the next hop is on the secondary bus of that bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PciPathEntry {
    /// PCI device number.
    pub(crate) device: u8,
    /// PCI function number.
    pub(crate) function: u8,
}

/// A device scope: which device (or hierarchy) a structure applies to.
///
/// # Invariants
///
/// `path` is never empty.
pub(crate) struct DeviceScope {
    /// What the scope names.
    pub(crate) kind: ScopeKind,
    /// I/O APIC ID, HPET number or ACPI device number, by `kind`.
    pub(crate) enumeration_id: u8,
    /// The bus the path starts on.
    pub(crate) start_bus: u8,
    /// The path from `start_bus` to the device; never empty.
    pub(crate) path: KVec<PciPathEntry>,
}

impl DeviceScope {
    /// The last hop of the path: the device (or bridge) itself.
    pub(crate) fn target(&self) -> PciPathEntry {
        // The type invariant says `path` is not empty, so this cannot panic.
        self.path[self.path.len() - 1]
    }
}

/// A DMA Remapping Hardware Unit Definition.
pub(crate) struct Drhd {
    /// Offset of the structure in the table, for messages.
    pub(crate) offset: usize,
    /// The unit covers every PCI device of its segment not claimed by
    /// another unit (INCLUDE_PCI_ALL).
    pub(crate) include_all: bool,
    /// PCI segment.
    pub(crate) segment: u16,
    /// Physical address of the register set.
    pub(crate) reg_base: u64,
    /// Size of the register set in bytes.
    pub(crate) reg_size: u64,
    /// The devices the unit covers (when not `include_all`), and the I/O
    /// APICs and HPETs behind it.
    pub(crate) scopes: KVec<DeviceScope>,
}

/// A Reserved Memory Region Reporting structure.
pub(crate) struct Rmrr {
    /// PCI segment.
    pub(crate) segment: u16,
    /// First byte of the region.
    pub(crate) base: u64,
    /// Last byte of the region (inclusive).
    pub(crate) limit: u64,
    /// The devices that keep using the region.
    pub(crate) scopes: KVec<DeviceScope>,
}

/// A Root Port ATS Capability Reporting structure.
pub(crate) struct Atsr {
    /// Every root port of the segment supports ATS.
    pub(crate) all_ports: bool,
    /// PCI segment.
    pub(crate) segment: u16,
    /// The root ports that support ATS (when not `all_ports`).
    pub(crate) scopes: KVec<DeviceScope>,
}

/// A SoC Integrated Address Translation Cache structure.
pub(crate) struct Satc {
    /// The devices must have their ATC enabled to work.
    pub(crate) atc_required: bool,
    /// PCI segment.
    pub(crate) segment: u16,
    /// The devices with an integrated ATC.
    pub(crate) scopes: KVec<DeviceScope>,
}

/// A parsed DMAR table.
pub(crate) struct Dmar {
    /// Host address width in bits.
    pub(crate) haw: u8,
    /// Table flags (`DMAR_*`).
    pub(crate) flags: u8,
    /// Whether the table's checksum is right (a wrong one is only warned
    /// about, as ACPICA does).
    pub(crate) checksum_ok: bool,
    /// Remapping units, in table order.
    pub(crate) units: KVec<Drhd>,
    /// Reserved memory regions.
    pub(crate) rmrrs: KVec<Rmrr>,
    /// ATS-capable root ports.
    pub(crate) atsrs: KVec<Atsr>,
    /// Devices with an integrated ATC.
    pub(crate) satcs: KVec<Satc>,
    /// Structures and scopes that were skipped (unknown type, bad RMRR).
    pub(crate) skipped: usize,
}

fn u8_at(b: &[u8], off: usize) -> u8 {
    b[off]
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// The smallest valid length of a structure of type `kind`, or `None` for
/// a type this parser does not know.
fn min_struct_len(kind: u16) -> Option<usize> {
    Some(match kind {
        kind::DRHD => 16,
        kind::RMRR => 24,
        kind::ATSR | kind::SATC | kind::SIDP | kind::ANDD => 8,
        kind::RHSA => 20,
        _ => return None,
    })
}

/// Parses the device scopes in `table[start..end]`. `end` is within the
/// table, as checked by the caller.
fn parse_scopes(
    table: &[u8],
    start: usize,
    end: usize,
    skipped: &mut usize,
) -> Result<KVec<DeviceScope>, ParseError> {
    let mut scopes = KVec::new();
    let mut off = start;
    while off < end {
        if end - off < 6 {
            return Err(ParseError::BadScope { offset: off });
        }
        let raw_kind = u8_at(table, off);
        let len = usize::from(u8_at(table, off + 1));
        // Six bytes of header, then at least one (device, function) pair.
        if len < 8 || len % 2 != 0 || len > end - off {
            return Err(ParseError::BadScope { offset: off });
        }
        let Some(kind) = ScopeKind::from_raw(raw_kind) else {
            pr_warn!(
                "DMAR table: skipping device scope of unknown type {} at offset {:#x}\n",
                raw_kind,
                off
            );
            *skipped += 1;
            off += len;
            continue;
        };
        let mut path = KVec::with_capacity((len - 6) / 2, GFP_KERNEL)?;
        let mut p = off + 6;
        while p < off + len {
            path.push(
                PciPathEntry {
                    device: u8_at(table, p),
                    function: u8_at(table, p + 1),
                },
                GFP_KERNEL,
            )?;
            p += 2;
        }
        // INVARIANT: `len >= 8`, so the loop above pushed at least one entry.
        scopes.push(
            DeviceScope {
                kind,
                enumeration_id: u8_at(table, off + 4),
                start_bus: u8_at(table, off + 5),
                path,
            },
            GFP_KERNEL,
        )?;
        off += len;
    }
    Ok(scopes)
}

impl Dmar {
    /// Parses a DMAR table from its bytes, which must start with the ACPI
    /// table header. Bytes past the length in the header are ignored.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Dmar, ParseError> {
        if bytes.len() < DMAR_HEADER_LEN {
            return Err(ParseError::Truncated { len: bytes.len() });
        }
        if &bytes[0..4] != b"DMAR" {
            return Err(ParseError::BadSignature);
        }
        let claimed = u32_at(bytes, 4);
        let len = claimed as usize;
        if len < DMAR_HEADER_LEN || len > bytes.len() {
            return Err(ParseError::BadLength {
                claimed,
                available: bytes.len(),
            });
        }
        let table = &bytes[..len];
        let checksum_ok = table.iter().fold(0u8, |s, b| s.wrapping_add(*b)) == 0;
        let haw = u8_at(table, 36).wrapping_add(1);
        if !(12..=64).contains(&haw) {
            return Err(ParseError::BadHostAddressWidth(haw));
        }

        let mut dmar = Dmar {
            haw,
            flags: u8_at(table, 37),
            checksum_ok,
            units: KVec::new(),
            rmrrs: KVec::new(),
            atsrs: KVec::new(),
            satcs: KVec::new(),
            skipped: 0,
        };

        let mut off = DMAR_HEADER_LEN;
        while off < len {
            if len - off < 4 {
                return Err(ParseError::PastEnd {
                    offset: off,
                    len: 0,
                });
            }
            let kind = u16_at(table, off);
            let slen = u16_at(table, off + 2);
            let end = off + usize::from(slen);
            if end > len {
                return Err(ParseError::PastEnd {
                    offset: off,
                    len: slen,
                });
            }
            // A structure shorter than its own type and length fields can
            // not be stepped over; one of an unknown type can.
            let min = min_struct_len(kind).unwrap_or(4);
            if usize::from(slen) < min {
                return Err(ParseError::BadStructLength {
                    offset: off,
                    kind,
                    len: slen,
                });
            }
            dmar.parse_struct(table, off, kind, end)?;
            off = end;
        }

        if dmar.units.is_empty() {
            return Err(ParseError::NoUnits);
        }
        for (i, a) in dmar.units.iter().enumerate() {
            for b in dmar.units.iter().skip(i + 1) {
                if a.reg_base < b.reg_base + b.reg_size && b.reg_base < a.reg_base + a.reg_size {
                    return Err(ParseError::OverlappingUnits {
                        first: a.reg_base,
                        second: b.reg_base,
                    });
                }
            }
        }
        Ok(dmar)
    }

    /// Parses the structure of type `kind` at `table[off..end]`, whose
    /// length has been checked against the table and the type's minimum.
    fn parse_struct(
        &mut self,
        table: &[u8],
        off: usize,
        kind: u16,
        end: usize,
    ) -> Result<(), ParseError> {
        match kind {
            kind::DRHD => {
                let flags = u8_at(table, off + 4);
                let size = u8_at(table, off + 5) & 0xf;
                let reg_base = u64_at(table, off + 8);
                if reg_base == 0
                    || reg_base % REG_PAGE != 0
                    || reg_base.checked_add(REG_PAGE << size).is_none()
                {
                    return Err(ParseError::BadRegisterBase {
                        offset: off,
                        addr: reg_base,
                    });
                }
                let scopes = parse_scopes(table, off + 16, end, &mut self.skipped)?;
                self.units.push(
                    Drhd {
                        offset: off,
                        include_all: flags & 1 != 0,
                        segment: u16_at(table, off + 6),
                        reg_base,
                        reg_size: REG_PAGE << size,
                        scopes,
                    },
                    GFP_KERNEL,
                )?;
            }
            kind::RMRR => {
                let base = u64_at(table, off + 8);
                let limit = u64_at(table, off + 16);
                let scopes = parse_scopes(table, off + 24, end, &mut self.skipped)?;
                if base % REG_PAGE != 0 || limit < base || limit % REG_PAGE != REG_PAGE - 1 {
                    pr_warn!(
                        "[Firmware Bug]: DMAR table: skipping RMRR [{:#x}-{:#x}] at offset {:#x}: not page aligned or empty\n",
                        base,
                        limit,
                        off
                    );
                    self.skipped += 1;
                    return Ok(());
                }
                self.rmrrs.push(
                    Rmrr {
                        segment: u16_at(table, off + 6),
                        base,
                        limit,
                        scopes,
                    },
                    GFP_KERNEL,
                )?;
            }
            kind::ATSR => {
                let scopes = parse_scopes(table, off + 8, end, &mut self.skipped)?;
                self.atsrs.push(
                    Atsr {
                        all_ports: u8_at(table, off + 4) & 1 != 0,
                        segment: u16_at(table, off + 6),
                        scopes,
                    },
                    GFP_KERNEL,
                )?;
            }
            kind::SATC => {
                let scopes = parse_scopes(table, off + 8, end, &mut self.skipped)?;
                self.satcs.push(
                    Satc {
                        atc_required: u8_at(table, off + 4) & 1 != 0,
                        segment: u16_at(table, off + 6),
                        scopes,
                    },
                    GFP_KERNEL,
                )?;
            }
            kind::SIDP => {
                // Validate its scopes even though nothing here uses them.
                parse_scopes(table, off + 8, end, &mut self.skipped)?;
            }
            kind::RHSA | kind::ANDD => {}
            _ => {
                pr_warn!(
                    "DMAR table: skipping structure of unknown type {} at offset {:#x}\n",
                    kind,
                    off
                );
                self.skipped += 1;
            }
        }
        Ok(())
    }
}

#[kunit_tests(rust_vtd_dmar)]
mod tests {
    use super::*;

    /// QEMU 11.1's DMAR table for `-device intel-iommu,device-iotlb=on`
    /// on q35 with the test VM's devices (aw-bits=48, interrupt remapping
    /// on), as read from `/sys/firmware/acpi/tables/DMAR` in the guest.
    const QEMU_DMAR: &[u8] = include_bytes!("testdata/qemu-dmar-devtlb.bin");

    /// Builds a DMAR table: header, then the given structures, with the
    /// length and checksum filled in.
    fn table(haw: u8, structs: &[&[u8]]) -> Result<KVec<u8>> {
        let mut t = KVec::new();
        t.extend_from_slice(b"DMAR", GFP_KERNEL)?;
        t.extend_from_slice(&[0; 4], GFP_KERNEL)?; // length
        t.extend_from_slice(&[1, 0], GFP_KERNEL)?; // revision, checksum
        t.extend_from_slice(b"RVTDTSRVTDTEST", GFP_KERNEL)?; // OEM ID, OEM table ID
        t.extend_from_slice(&[0; 12], GFP_KERNEL)?; // OEM rev, creator
        t.extend_from_slice(&[haw - 1, DMAR_INTR_REMAP], GFP_KERNEL)?;
        t.extend_from_slice(&[0; 10], GFP_KERNEL)?;
        for s in structs {
            t.extend_from_slice(s, GFP_KERNEL)?;
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        t[9] = 0u8.wrapping_sub(sum);
        Ok(t)
    }

    /// A DRHD at `base`, with an I/O APIC scope and an endpoint scope for
    /// 00:03.0.
    fn drhd(base: u64, include_all: bool) -> [u8; 32] {
        let mut s = [0u8; 32];
        s[0..2].copy_from_slice(&0u16.to_le_bytes());
        s[2..4].copy_from_slice(&32u16.to_le_bytes());
        s[4] = u8::from(include_all);
        s[8..16].copy_from_slice(&base.to_le_bytes());
        s[16..24].copy_from_slice(&[3, 8, 0, 0, 2, 0xff, 0x1f, 0]);
        s[24..32].copy_from_slice(&[1, 8, 0, 0, 0, 0, 3, 0]);
        s
    }

    fn rmrr(base: u64, limit: u64) -> [u8; 32] {
        let mut s = [0u8; 32];
        s[0..2].copy_from_slice(&1u16.to_le_bytes());
        s[2..4].copy_from_slice(&32u16.to_le_bytes());
        s[8..16].copy_from_slice(&base.to_le_bytes());
        s[16..24].copy_from_slice(&limit.to_le_bytes());
        s[24..32].copy_from_slice(&[1, 8, 0, 0, 0, 0, 0x1d, 0]);
        s
    }

    #[test]
    fn parses_qemu_table() -> Result {
        let d = Dmar::parse(QEMU_DMAR).map_err(Error::from)?;
        assert!(d.checksum_ok);
        assert_eq!(d.haw, 48);
        assert_eq!(d.flags & DMAR_INTR_REMAP, DMAR_INTR_REMAP);
        assert_eq!(d.units.len(), 1);
        let u = &d.units[0];
        assert_eq!(u.reg_base, 0xfed9_0000);
        assert_eq!(u.reg_size, 4096);
        assert!(!u.include_all);
        assert_eq!(u.segment, 0);
        // The I/O APIC, then every device on the root bus: host bridge,
        // four root ports (bridges), edu and the ICH9 functions.
        assert_eq!(u.scopes.len(), 10);
        assert_eq!(u.scopes[0].kind, ScopeKind::IoApic);
        assert_eq!(u.scopes[0].start_bus, 0xff);
        assert_eq!(u.scopes[1].kind, ScopeKind::Endpoint);
        assert_eq!(u.scopes[2].kind, ScopeKind::Bridge);
        assert_eq!(
            u.scopes[2].target(),
            PciPathEntry {
                device: 1,
                function: 0
            }
        );
        assert_eq!(
            u.scopes[6].target(),
            PciPathEntry {
                device: 0x10,
                function: 0
            }
        );
        assert_eq!(
            u.scopes[9].target(),
            PciPathEntry {
                device: 0x1f,
                function: 3
            }
        );
        assert_eq!(d.atsrs.len(), 1);
        assert!(d.atsrs[0].all_ports);
        assert_eq!(d.rmrrs.len(), 0);
        assert_eq!(d.skipped, 0);
        Ok(())
    }

    #[test]
    fn parses_scopes_and_rmrr() -> Result {
        let t = table(
            39,
            &[&drhd(0xfed9_0000, false), &rmrr(0xe000_0000, 0xe00f_ffff)],
        )?;
        let d = Dmar::parse(&t).map_err(Error::from)?;
        assert_eq!(d.haw, 39);
        let u = &d.units[0];
        assert!(!u.include_all);
        assert_eq!(u.scopes.len(), 2);
        assert_eq!(u.scopes[0].kind, ScopeKind::IoApic);
        assert_eq!(u.scopes[0].enumeration_id, 2);
        assert_eq!(u.scopes[0].start_bus, 0xff);
        assert_eq!(u.scopes[1].kind, ScopeKind::Endpoint);
        assert_eq!(
            u.scopes[1].target(),
            PciPathEntry {
                device: 3,
                function: 0
            }
        );
        assert_eq!(d.rmrrs.len(), 1);
        assert_eq!(d.rmrrs[0].base, 0xe000_0000);
        assert_eq!(d.rmrrs[0].limit, 0xe00f_ffff);
        Ok(())
    }

    #[test]
    fn rejects_short_and_foreign_tables() -> Result {
        let t = table(48, &[&drhd(0xfed9_0000, true)])?;
        assert_eq!(
            Dmar::parse(&t[..20]).err(),
            Some(ParseError::Truncated { len: 20 })
        );
        let mut bad = KVec::new();
        bad.extend_from_slice(&t, GFP_KERNEL)?;
        bad[0] = b'X';
        assert_eq!(Dmar::parse(&bad).err(), Some(ParseError::BadSignature));
        // The header claims more than there is: truncated in transit.
        let n = t.len();
        assert_eq!(
            Dmar::parse(&t[..n - 1]).err(),
            Some(ParseError::BadLength {
                claimed: n as u32,
                available: n - 1
            })
        );
        Ok(())
    }

    #[test]
    fn rejects_bad_lengths() -> Result {
        let mut t = table(48, &[&drhd(0xfed9_0000, true)])?;
        // Header length of zero and one larger than the buffer.
        let n = t.len();
        t[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            Dmar::parse(&t),
            Err(ParseError::BadLength { claimed: 0, .. })
        ));
        t[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Dmar::parse(&t), Err(ParseError::BadLength { .. })));
        t[4..8].copy_from_slice(&(n as u32).to_le_bytes());

        // A zero-length structure would make a walker loop forever.
        let mut z = drhd(0xfed9_0000, true);
        z[2..4].copy_from_slice(&0u16.to_le_bytes());
        let t = table(48, &[&z])?;
        assert_eq!(
            Dmar::parse(&t).err(),
            Some(ParseError::BadStructLength {
                offset: 48,
                kind: 0,
                len: 0
            })
        );
        // An oversized one runs past the table end.
        let mut o = drhd(0xfed9_0000, true);
        o[2..4].copy_from_slice(&0x1000u16.to_le_bytes());
        let t = table(48, &[&o])?;
        assert_eq!(
            Dmar::parse(&t).err(),
            Some(ParseError::PastEnd {
                offset: 48,
                len: 0x1000
            })
        );
        // Three stray bytes after the last structure.
        let t = table(48, &[&drhd(0xfed9_0000, true), &[0, 0, 0]])?;
        assert!(matches!(
            Dmar::parse(&t),
            Err(ParseError::PastEnd { offset: 80, .. })
        ));
        // A DRHD too short for its fixed fields.
        let t = table(48, &[&[0, 0, 8, 0, 0, 0, 0, 0]])?;
        assert!(matches!(
            Dmar::parse(&t),
            Err(ParseError::BadStructLength { len: 8, .. })
        ));
        // Bad host address width.
        let t = table(5, &[&drhd(0xfed9_0000, true)])?;
        assert_eq!(
            Dmar::parse(&t).err(),
            Some(ParseError::BadHostAddressWidth(5))
        );
        Ok(())
    }

    #[test]
    fn rejects_bad_scopes() -> Result {
        // Too short, an empty path, odd, odd and long, past the DRHD's end.
        for len in [0u8, 6, 7, 9, 16] {
            let mut d = drhd(0xfed9_0000, false);
            d[25] = len;
            let t = table(48, &[&d])?;
            assert_eq!(
                Dmar::parse(&t).err(),
                Some(ParseError::BadScope { offset: 72 })
            );
        }
        Ok(())
    }

    #[test]
    fn skips_unknown_types() -> Result {
        let mut unknown = [0u8; 12];
        unknown[0..2].copy_from_slice(&99u16.to_le_bytes());
        unknown[2..4].copy_from_slice(&12u16.to_le_bytes());
        let mut d = drhd(0xfed9_0000, false);
        d[24] = 42; // unknown scope type
        let t = table(48, &[&unknown, &d])?;
        let p = Dmar::parse(&t).map_err(Error::from)?;
        assert_eq!(p.units.len(), 1);
        assert_eq!(p.units[0].scopes.len(), 1);
        assert_eq!(p.skipped, 2);
        Ok(())
    }

    #[test]
    fn rejects_bad_units() -> Result {
        let t = table(48, &[&drhd(0, true)])?;
        assert!(matches!(
            Dmar::parse(&t),
            Err(ParseError::BadRegisterBase { addr: 0, .. })
        ));
        let t = table(48, &[&drhd(0xfed9_0800, true)])?;
        assert!(matches!(
            Dmar::parse(&t),
            Err(ParseError::BadRegisterBase { .. })
        ));
        let t = table(48, &[&drhd(0xfed9_0000, false), &drhd(0xfed9_0000, true)])?;
        assert_eq!(
            Dmar::parse(&t).err(),
            Some(ParseError::OverlappingUnits {
                first: 0xfed9_0000,
                second: 0xfed9_0000
            })
        );
        // A 2-page register set overlapping the next unit's page.
        let mut big = drhd(0xfed9_0000, false);
        big[5] = 1;
        let t = table(48, &[&big, &drhd(0xfed9_1000, true)])?;
        assert!(matches!(
            Dmar::parse(&t),
            Err(ParseError::OverlappingUnits { .. })
        ));
        let t = table(48, &[&drhd(0xfed9_0000, false), &drhd(0xfed9_1000, true)])?;
        assert_eq!(Dmar::parse(&t).map_err(Error::from)?.units.len(), 2);
        let t = table(48, &[&rmrr(0xe000_0000, 0xe00f_ffff)])?;
        assert_eq!(Dmar::parse(&t).err(), Some(ParseError::NoUnits));
        Ok(())
    }

    #[test]
    fn skips_bad_rmrr() -> Result {
        let t = table(
            48,
            &[
                &drhd(0xfed9_0000, true),
                &rmrr(0xe000_0000, 0xdfff_ffff),
                &rmrr(0xe000_0800, 0xe00f_ffff),
            ],
        )?;
        let p = Dmar::parse(&t).map_err(Error::from)?;
        assert_eq!(p.rmrrs.len(), 0);
        assert_eq!(p.skipped, 2);
        Ok(())
    }

    #[test]
    fn never_reads_past_the_end() -> Result {
        // Every prefix of a valid table, with the header length left as it
        // is (so it claims more than there is) or cut to match: the parser
        // must return an error or a result, never read out of bounds.
        let t = table(
            48,
            &[&drhd(0xfed9_0000, false), &rmrr(0xe000_0000, 0xe00f_ffff)],
        )?;
        for n in 0..t.len() {
            let mut c = KVec::new();
            c.extend_from_slice(&t[..n], GFP_KERNEL)?;
            assert!(Dmar::parse(&c).is_err());
            if n >= 8 {
                c[4..8].copy_from_slice(&(n as u32).to_le_bytes());
                let _ = Dmar::parse(&c);
            }
        }
        Ok(())
    }
}
