# SPDX-License-Identifier: GPL-2.0
# Print the ACPI DMAR table as hex, for tests and debugging.
od -An -tx1 -v /sys/firmware/acpi/tables/DMAR
