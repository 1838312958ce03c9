#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write a DMAR table for QEMU's -acpitable file=..., to test how rust_vtd
handles firmware it must not trust.  Usage: mkdmar.py VARIANT OUTPUT

Variants:
  unreadable   a well-formed table whose only DRHD points at an address
               where no remapping unit answers
  zero-length  a DRHD followed by a structure of length 0
  bad-scope    a DRHD whose device scope runs past the DRHD's end
  overlap      two DRHDs with the same register page
  past-end     a structure whose length runs past the table's end
  rmrr         a valid table for QEMU's unit (INCLUDE_PCI_ALL) with an RMRR
               for edu (00:10.0) at RMRR_BASE, carrying QEMU's OEM IDs so
               that it can replace QEMU's own table through the kernel's
               ACPI table upgrade (kernel/firmware/acpi/ in the initrd)
"""
import struct
import sys

UNIT = 0xFED90000
RMRR_BASE = 0x7006000
RMRR_LIMIT = 0x7006FFF


def header(body, oem=(b"RVTDTS", b"RVTDTEST", 1)):
    length = 48 + len(body)
    hdr = struct.pack("<4sIBB6s8sI4sI", b"DMAR", length, 1, 0, oem[0],
                      oem[1], oem[2], b"RVTD", 1)
    hdr += struct.pack("<BB10x", 47, 1)  # 48-bit HAW, INTR_REMAP
    t = bytearray(hdr + body)
    t[9] = (-sum(t)) & 0xFF
    return bytes(t)


def scope(kind, dev, fn, bus=0, length=8):
    return struct.pack("<BBBBBBBB", kind, length, 0, 0, 0, bus, dev, fn)


def drhd(base, scopes=b"", include_all=True, length=None):
    n = 16 + len(scopes) if length is None else length
    return struct.pack("<HHBBHQ", 0, n, 1 if include_all else 0, 0, 0, base) + scopes


def rmrr(base, limit, scopes):
    return struct.pack("<HHHHQQ", 1, 24 + len(scopes), 0, 0, base, limit) + scopes


def variant(name):
    ioapic = scope(3, 0, 0, bus=0xFF)
    if name == "unreadable":
        return header(drhd(UNIT, ioapic))
    if name == "zero-length":
        return header(drhd(UNIT, ioapic) + struct.pack("<HH", 1, 0) + bytes(20))
    if name == "bad-scope":
        return header(drhd(UNIT, scope(1, 3, 0, length=24)))
    if name == "overlap":
        return header(drhd(UNIT, ioapic, include_all=False) + drhd(UNIT, ioapic))
    if name == "past-end":
        return header(drhd(UNIT, ioapic, length=0x200))
    if name == "rmrr":
        return header(drhd(UNIT, ioapic) + rmrr(RMRR_BASE, RMRR_LIMIT, scope(1, 0x10, 0)),
                      oem=(b"BOCHS ", b"BXPC    ", 2))  # an upgrade: newer revision
    raise SystemExit("unknown variant " + name)


if __name__ == "__main__":
    with open(sys.argv[2], "wb") as f:
        f.write(variant(sys.argv[1]))
