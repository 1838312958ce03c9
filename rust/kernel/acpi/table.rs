// SPDX-License-Identifier: GPL-2.0

//! Firmware ACPI tables.
//!
//! C header: [`include/acpi/acpixf.h`](srctree/include/acpi/acpixf.h)

use crate::{
    bindings,
    prelude::*, //
};
use core::ptr::{
    null_mut,
    NonNull, //
};

/// A firmware ACPI table, mapped until this object is dropped.
///
/// # Invariants
///
/// `header` was returned by a successful `acpi_get_table()` that has not yet been balanced by
/// `acpi_put_table()`, so the whole table, `len` bytes from `header`, is mapped and readable, and
/// `len` is at least the size of `struct acpi_table_header`.
///
/// # Examples
///
/// ```
/// use kernel::acpi::table::Table;
///
/// // Not every machine has an ACPI DMAR table: absence is an error, not a panic.
/// match Table::get(b"DMAR", 1) {
///     Ok(dmar) => {
///         assert_eq!(dmar.signature(), b"DMAR");
///         assert!(dmar.as_bytes().len() >= 36);
///     }
///     Err(e) => assert_eq!(e, ENODEV),
/// }
/// assert_eq!(Table::get(b"XYZ0", 1).err(), Some(ENODEV));
/// ```
pub struct Table {
    header: NonNull<bindings::acpi_table_header>,
    len: usize,
}

// SAFETY: The table is a read-only mapping owned by ACPICA; it can be read from any thread, and
// `acpi_put_table()` may be called from any thread.
unsafe impl Send for Table {}

// SAFETY: `Table` only allows reading the table, which is safe from several threads at once.
unsafe impl Sync for Table {}

impl Table {
    /// Finds instance `instance` (counting from 1) of the table with `signature` and maps it.
    ///
    /// Returns `ENODEV` when the firmware has no such table (or ACPI is disabled).
    pub fn get(signature: &[u8; 4], instance: u32) -> Result<Self> {
        let mut sig = [0u8; 5];
        sig[..4].copy_from_slice(signature);
        let mut header: *mut bindings::acpi_table_header = null_mut();
        // SAFETY: `sig` is a NUL-terminated string that `acpi_get_table()` only reads during the
        // call, and `header` is a valid location for it to store the table's address in.
        let status =
            unsafe { bindings::acpi_get_table(sig.as_mut_ptr().cast(), instance, &mut header) };
        // `AE_OK` is zero.
        if status != 0 {
            return Err(ENODEV);
        }
        let header = NonNull::new(header).ok_or(ENODEV)?;
        // SAFETY: `acpi_get_table()` succeeded, so `header` points to a mapped table header.
        let len = unsafe { (*header.as_ptr()).length } as usize;
        if len < core::mem::size_of::<bindings::acpi_table_header>() {
            // SAFETY: `header` came from the successful `acpi_get_table()` above.
            unsafe { bindings::acpi_put_table(header.as_ptr()) };
            return Err(EINVAL);
        }
        // INVARIANT: `acpi_get_table()` succeeded and maps the whole table, whose length, as
        // checked above, covers at least the header.
        Ok(Self { header, len })
    }

    /// The table's signature.
    pub fn signature(&self) -> &[u8; 4] {
        // SAFETY: By the type invariant the header is mapped; `signature` is a `[c_char; 4]`,
        // which has the layout of `[u8; 4]`.
        unsafe { &*(&raw const (*self.header.as_ptr()).signature).cast::<[u8; 4]>() }
    }

    /// The table's revision.
    pub fn revision(&self) -> u8 {
        // SAFETY: By the type invariant the header is mapped.
        unsafe { (*self.header.as_ptr()).revision }
    }

    /// The whole table, header included, as its length field gives it.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: By the type invariant `len` bytes from `header` are mapped and readable for as
        // long as `self` lives; ACPICA never writes to them.
        unsafe { core::slice::from_raw_parts(self.header.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `header` came from `acpi_get_table()` and has not been put.
        unsafe { bindings::acpi_put_table(self.header.as_ptr()) };
    }
}
