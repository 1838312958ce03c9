// SPDX-License-Identifier: GPL-2.0
/*
 * edu_iommufd BDF ATTEMPTS [PAUSE_MS]: drive QEMU's edu device through VFIO (cdev) and
 * iommufd, so that its DMA is translated by a paging domain of the IOMMU
 * driver.  Prints one line per check, "ok NAME" or "not ok NAME: why":
 *
 *   translated_dma_lands     edu copies buffer A (IOVA 0x100000) to its own
 *                            memory and back to buffer B (IOVA 0x101000)
 *   unmapped_dma_never_lands after IOMMU_IOAS_UNMAP of B, ATTEMPTS DMAs to
 *                            B's IOVA, PAUSE_MS (150) apart, leave B
 *                            unchanged (the driver reports each as a
 *                            fault; the caller counts them)
 *   hwpt_replace_retargets   a second IOAS with the same IOVA mapped to
 *                            buffer C, attached by replacing the first
 *                            domain: the DMA now lands in C, not in B
 *   large_mapping_translates a 4 MiB buffer mapped at a 2 MiB aligned IOVA
 *                            (2 MiB leaves where the unit has them) is read
 *                            back through the device at several offsets
 *   unmap_frees_page_tables  64 MiB of a 1 GiB hugetlb page mapped at 4 GiB
 *                            + 4 KiB (so in 4 KiB pages) takes 34 table
 *                            pages (SecPageTables in /proc/meminfo): one
 *                            level-2 table and 33 level-1 tables.  One
 *                            contiguous range, so iommufd unmaps it in one
 *                            call, which covers 31 of the level-1 tables
 *                            whole: at most 3 tables may be left.  Needs a
 *                            1 GiB hugepage (hugepagesz=1G hugepages=1).
 *
 * edu_iommufd BDF qi-error DMAR BATCHES: the same 64 MiB mapping, but
 * before its unmap the IOMMU driver's test hook (debugfs iommu/intel/DMAR/
 * inject_queue_error) is told to put an invalid descriptor in front of the
 * next BATCHES queue batches for this device's domain.  The unit rejects
 * each (IQE); the driver submits a rejected batch once more.  So:
 *
 *   retried_flush_frees_tables  (BATCHES 1) the second try of the unmap's
 *                            flush is confirmed, and the unmap frees the
 *                            tables it emptied, as without the error
 *   unconfirmed_flush_keeps_tables  (BATCHES 2) both tries are rejected,
 *                            the flush of the unmap is not confirmed, and
 *                            the 31 level-1 tables the unmap covered whole
 *                            must stay allocated (SecPageTables does not
 *                            drop)
 *   retried_flush_unpins_pages  (BATCHES 1) iommufd unpins the 16384
 *                            pages of the mapping after the unmap
 *                            (nr_foll_pin_acquired - nr_foll_pin_released
 *                            in /proc/vmstat is back where it was)
 *   unconfirmed_flush_keeps_pages_pinned  (BATCHES 2) the unit may still
 *                            translate the range, so iommufd must keep all
 *                            16384 pages pinned, never to be reused
 *   translation_works_after_queue_error  the next map and flush are
 *                            confirmed: edu copies A to B through them
 *
 * edu_iommufd BDF qi-error-type1 DMAR BATCHES: the same through VFIO's type1
 * container (vfio_iommu_type1.c) instead of iommufd, with 64 MiB of
 * ordinary anonymous memory:
 *
 *   type1_retried_flush_unpins_pages  (BATCHES 1) as above
 *   type1_unconfirmed_flush_keeps_pages_pinned  (BATCHES 2) as above
 *   type1_translation_works_after_queue_error  as above
 *
 * edu_iommufd BDF fault-hwpt: a fault-capable HWPT (IOMMU_HWPT_FAULT_ID_VALID,
 * with a fault queue), which an IOMMU driver without I/O page faults must
 * refuse at attach:
 *
 *   fault_capable_hwpt_replace_refused  with edu on a paging HWPT, the
 *                            replace by the fault-capable one (allocated
 *                            fine) fails with ENODEV
 *   old_domain_kept_after_refused_replace  edu's DMA still lands through
 *                            the paging HWPT
 *   fault_capable_hwpt_attach_refused  after a detach, attaching it fails
 *                            with ENODEV too
 *   paging_hwpt_attaches_after_refusal  the paging HWPT attaches again and
 *                            DMA lands
 *
 * edu_iommufd BDF reset RESETS: edu on a paging HWPT with buffers A and B
 * mapped, reset RESETS times by VFIO_DEVICE_RESET (edu has no reset of its
 * own: the bridged edu, alone on the bridge's secondary bus, is reset with
 * that bus), each followed by a DMA of a new pattern from A to B:
 *
 *   vfio_device_reset_supported  VFIO reports the device resettable
 *                            (VFIO_DEVICE_FLAGS_RESET)
 *   vfio_reset_keeps_mappings_dma_lands  every reset succeeds, and the
 *                            DMA after each lands in B: the HWPT and its
 *                            mappings survived the reset
 *
 * The kdump test (plan-kdump.sh), with the 64-byte patterns P and Q:
 *
 * edu_iommufd BDF kdump-hold: in the kernel that will crash, maps buffer A
 * (P) at IOVA 0x100000 and buffer B (0xee) at IOVA 0x101000, copies A into
 * edu's own buffer by DMA, prints "phys_b ADDR" (B's physical address) and
 * stays alive, its mappings in place, until the crash:
 *
 *   kdump_dma_set_up         the DMA from A landed in the device
 *
 * edu_iommufd BDF kdump-old-dma ADDR: in the capture kernel, with edu
 * driverless (its attach deferred), programs edu through sysfs resource0 to
 * copy its buffer to IOVA 0x101000, as DMA the crashed kernel set up:
 *
 *   crashed_kernels_dma_lands_in_its_buffer  /proc/vmcore at ADDR held
 *                            0xee before and holds P after: the copied
 *                            tables still translate the old IOVA
 *
 * edu_iommufd BDF kdump-old-dma ADDR blocked: the same where the capture
 * kernel could not take the old tables over (edu is on a new domain):
 *
 *   crashed_kernels_dma_blocked  the buffer at ADDR still holds 0xee
 *
 * edu_iommufd BDF kdump-new ADDR [blocked]: in the capture kernel, edu
 * bound to vfio-pci, maps a new A (Q) and a new buffer C at the same IOVAs,
 * and copies A to 0x101000 through edu:
 *
 *   new_domain_replaces_crashed_kernels_translation  C holds Q, and the
 *                            old buffer in /proc/vmcore still holds P (a
 *                            stale IOTLB entry of the old domain would
 *                            have sent Q there); with "blocked" (the old
 *                            DMA was blocked), still 0xee
 */
#include <elf.h>
#include <sys/mman.h>
#include <time.h>

#include "edu_util.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define IOVA_A 0x100000ULL
#define IOVA_B 0x101000ULL
#define IOVA_L 0x400000ULL
#define LSIZE (4UL << 20)
#define IOVA_T ((4ULL << 30) + 4096)
#define TSIZE (64UL << 20)

static int failures;

static void check(int ok, const char *name, const char *why)
{
	if (ok) {
		printf("ok %s\n", name);
	} else {
		printf("not ok %s: %s\n", name, why);
		failures++;
	}
	fflush(stdout);
}

/*
 * Binds BDF to a new iommufd and attaches it to a paging HWPT over a new
 * IOAS with A mapped at IOVA_A and B at IOVA_B.  Returns the HWPT, and the
 * IOAS in *ioas.
 */
static uint32_t attach_a_b(const char *bdf, void *a, void *b, uint32_t *ioas)
{
	uint32_t hwpt;

	open_device(bdf, 0);
	*ioas = ioas_alloc();
	if (ioas_map(*ioas, a, 4096, IOVA_A) || ioas_map(*ioas, b, 4096, IOVA_B)) {
		perror("IOMMU_IOAS_MAP");
		exit(1);
	}
	hwpt = hwpt_alloc(*ioas);
	if (attach(hwpt)) {
		perror("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
		exit(1);
	}
	return hwpt;
}

/*
 * Arms rust_vtd's test hook: an invalid descriptor in front of the next
 * BATCHES queue batches for BDF's domain on unit DMAR.
 */
static int inject(const char *bdf, const char *dmar, int batches)
{
	unsigned int bus, dev, fn;
	char path[128], rid[24];
	int fd;

	if (sscanf(bdf, "%*x:%x:%x.%x", &bus, &dev, &fn) != 3) {
		fprintf(stderr, "bad BDF %s\n", bdf);
		return 1;
	}
	snprintf(path, sizeof(path), "/sys/kernel/debug/iommu/intel/%s/inject_queue_error", dmar);
	snprintf(rid, sizeof(rid), "0x%04x %d\n", (bus << 8) | (dev << 3) | fn, batches);
	fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, rid, strlen(rid)) != (ssize_t)strlen(rid)) {
		perror(path);
		return 1;
	}
	close(fd);
	return 0;
}

/* The queue error scenario through VFIO's type1 container. */
static int qi_error_type1(const char *bdf, const char *dmar, int batches)
{
	const char *pinned = batches == 1 ? "type1_retried_flush_unpins_pages" :
					    "type1_unconfirmed_flush_keeps_pages_pinned";
	unsigned char *a, *b, *t, want[64];
	long pins0, pins;
	char why[128];
	int i, ok;

	open_device(bdf, 1);
	a = buffer(4096, 0);
	b = buffer(4096, 0xee);
	for (i = 0; i < 64; i++)
		a[i] = want[i] = (unsigned char)(i * 7 + 1);
	if (type1_map(a, 4096, IOVA_A)) {
		perror("VFIO_IOMMU_MAP_DMA");
		return 1;
	}
	t = buffer(TSIZE, 1);
	pins0 = pins_held();
	if (type1_map(t, TSIZE, IOVA_T)) {
		check(0, pinned, strerror(errno));
		return 1;
	}
	if (inject(bdf, dmar, batches))
		return 1;
	if (type1_unmap(IOVA_T, TSIZE))
		perror("VFIO_IOMMU_UNMAP_DMA");
	pins = pins_held();
	printf("# pages pinned: %ld before the map, %ld after the unmap\n", pins0, pins);
	snprintf(why, sizeof(why), "%ld of the mapping's %lu pages still pinned after the unmap",
		 pins - pins0, TSIZE / 4096);
	check(pins0 >= 0 && pins >= 0 &&
	      pins - pins0 == (batches == 1 ? 0 : (long)(TSIZE / 4096)), pinned, why);

	ok = !type1_map(b, 4096, IOVA_B) && !edu_dma(IOVA_A, EDU_BUF, 64, 0) &&
	     !edu_dma(EDU_BUF, IOVA_B, 64, 1) && !memcmp(b, want, 64) &&
	     !type1_unmap(IOVA_B, 4096);
	snprintf(why, sizeof(why), "B holds %02x %02x, want %02x %02x", b[0], b[1], want[0],
		 want[1]);
	check(ok, "type1_translation_works_after_queue_error", why);
	return failures ? 1 : 0;
}

/* A fault-capable HWPT, refused (see the top of the file). */
static int fault_hwpt(const char *bdf)
{
	unsigned char *a = buffer(4096, 0), *b = buffer(4096, 0xee), want[64];
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	struct iommu_hwpt_alloc h = {
		.size = sizeof(h), .flags = IOMMU_HWPT_FAULT_ID_VALID,
	};
	uint32_t ioas, hwpt;
	char why[160];
	int i, r, e, ok;

	for (i = 0; i < 64; i++)
		a[i] = want[i] = (unsigned char)(i * 13 + 5);
	hwpt = attach_a_b(bdf, a, b, &ioas);
	ok = !ioctl(iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fa);
	h.dev_id = devid;
	h.pt_id = ioas;
	h.fault_id = fa.out_fault_id;
	ok = ok && !ioctl(iommufd, IOMMU_HWPT_ALLOC, &h);
	snprintf(why, sizeof(why), "fault queue or HWPT allocation failed: %s", strerror(errno));
	if (ok) {
		r = attach(h.out_hwpt_id);
		e = errno;
		snprintf(why, sizeof(why), "replace returned %d (%s), want ENODEV", r,
			 r ? strerror(e) : "no error");
		ok = r && e == ENODEV;
	}
	check(ok, "fault_capable_hwpt_replace_refused", why);

	ok = !edu_dma(IOVA_A, EDU_BUF, 64, 0) && !edu_dma(EDU_BUF, IOVA_B, 64, 1) &&
	     !memcmp(b, want, 64);
	snprintf(why, sizeof(why), "B holds %02x %02x, want %02x %02x", b[0], b[1], want[0],
		 want[1]);
	check(ok, "old_domain_kept_after_refused_replace", why);

	r = detach() ? -2 : attach(h.out_hwpt_id);
	e = errno;
	snprintf(why, sizeof(why), "attach returned %d (%s), want ENODEV", r,
		 r ? strerror(e) : "no error");
	check(h.out_hwpt_id && r == -1 && e == ENODEV, "fault_capable_hwpt_attach_refused", why);

	memset(b, 0xee, 64);
	ok = !attach(hwpt) && !edu_dma(IOVA_A, EDU_BUF, 64, 0) &&
	     !edu_dma(EDU_BUF, IOVA_B, 64, 1) && !memcmp(b, want, 64);
	snprintf(why, sizeof(why), "B holds %02x %02x, want %02x %02x", b[0], b[1], want[0],
		 want[1]);
	check(ok, "paging_hwpt_attaches_after_refusal", why);
	return failures ? 1 : 0;
}

static int reset(const char *bdf, int resets)
{
	unsigned char *a = buffer(4096, 0), *b = buffer(4096, 0xee);
	struct vfio_device_info info = { .argsz = sizeof(info) };
	uint32_t ioas;
	char why[160];
	int i, j, done = 0, ok = 1;

	attach_a_b(bdf, a, b, &ioas);
	if (ioctl(devfd, VFIO_DEVICE_GET_INFO, &info)) {
		perror("VFIO_DEVICE_GET_INFO");
		return 1;
	}
	check(info.flags & VFIO_DEVICE_FLAGS_RESET, "vfio_device_reset_supported",
	      "VFIO_DEVICE_FLAGS_RESET not set");

	snprintf(why, sizeof(why), "no reset");
	for (i = 1; i <= resets && ok; i++) {
		for (j = 0; j < 64; j++)
			a[j] = (unsigned char)(j * 11 + i);
		memset(b, 0xee, 64);
		if (ioctl(devfd, VFIO_DEVICE_RESET)) {
			snprintf(why, sizeof(why), "reset %d: VFIO_DEVICE_RESET: %s", i,
				 strerror(errno));
			ok = 0;
		} else if (edu_dma(IOVA_A, EDU_BUF, 64, 0) || edu_dma(EDU_BUF, IOVA_B, 64, 1)) {
			snprintf(why, sizeof(why), "reset %d: edu did not finish its DMA", i);
			ok = 0;
		} else if (memcmp(a, b, 64)) {
			snprintf(why, sizeof(why), "reset %d: B holds %02x %02x, want %02x %02x",
				 i, b[0], b[1], a[0], a[1]);
			ok = 0;
		} else {
			done++;
		}
	}
	printf("# %d of %d reset(s) followed by DMA that landed\n", done, resets);
	check(ok && done == resets, "vfio_reset_keeps_mappings_dma_lands", why);
	return failures ? 1 : 0;
}

/* The kdump test's patterns: P (0) and Q (1). */
static unsigned char kdump_pattern(int i, int q)
{
	return (unsigned char)(q ? i * 11 + 7 : i * 3 + 0x41);
}

/* The physical address of VA (root reads PFNs in /proc/self/pagemap), or 0. */
static uint64_t phys_of(void *va)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	if (fd < 0 || pread(fd, &e, 8, (uintptr_t)va / 4096 * 8) != 8)
		e = 0;
	if (fd >= 0)
		close(fd);
	if (!(e >> 63) || !(e & ((1ULL << 55) - 1)))
		return 0;
	return (e & ((1ULL << 55) - 1)) * 4096 + (uintptr_t)va % 4096;
}

/* Reads LEN bytes of the crashed kernel's memory at PHYS from /proc/vmcore. */
static int vmcore_read(uint64_t phys, void *buf, size_t len)
{
	int fd = open("/proc/vmcore", O_RDONLY), i, ret = -1;
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	if (fd < 0)
		return -1;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
		goto out;
	for (i = 0; i < eh.e_phnum; i++) {
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (uint64_t)i * eh.e_phentsize) !=
		    sizeof(ph))
			break;
		if (ph.p_type != PT_LOAD || phys < ph.p_paddr ||
		    phys + len > ph.p_paddr + ph.p_filesz)
			continue;
		if (pread(fd, buf, len, ph.p_offset + (phys - ph.p_paddr)) == (ssize_t)len)
			ret = 0;
		break;
	}
out:
	close(fd);
	return ret;
}

/* Sets up DMA in the kernel that will crash, then waits for the crash. */
static int kdump_hold(const char *bdf)
{
	unsigned char *a = buffer(4096, 0), *b = buffer(4096, 0xee);
	uint32_t ioas;
	int i, ok;

	for (i = 0; i < 64; i++)
		a[i] = kdump_pattern(i, 0);
	open_device(bdf, 0);
	ioas = ioas_alloc();
	ok = !ioas_map(ioas, a, 4096, IOVA_A) && !ioas_map(ioas, b, 4096, IOVA_B) &&
	     !attach(hwpt_alloc(ioas)) && !edu_dma(IOVA_A, EDU_BUF, 64, 0);
	check(ok && phys_of(b), "kdump_dma_set_up", "map, attach or DMA failed");
	printf("phys_b %#llx\n", (unsigned long long)phys_of(b));
	fflush(stdout);
	if (!ok)
		return 1;
	for (;;)
		pause();
}

/* DMA the crashed kernel set up, started in the capture kernel. */
static int kdump_old_dma(const char *bdf, uint64_t phys_b, int blocked)
{
	unsigned char before[64] = { 0 }, after[64] = { 0 }, want[64];
	char path[128], why[160];
	int fd, i, ok;
	void *m;

	for (i = 0; i < 64; i++)
		want[i] = blocked ? 0xee : kdump_pattern(i, 0);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC);
	m = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		perror(path);
		return 1;
	}
	bar = m;
	ok = !vmcore_read(phys_b, before, 64);
	ok = ok && !edu_dma(EDU_BUF, IOVA_B, 64, 1);
	ok = ok && !vmcore_read(phys_b, after, 64);
	printf("# old buffer at %#llx in /proc/vmcore: %02x %02x before the DMA, %02x %02x after\n",
	       (unsigned long long)phys_b, before[0], before[1], after[0], after[1]);
	snprintf(why, sizeof(why), "old buffer holds %02x %02x, want %02x %02x (was %02x)",
		 after[0], after[1], want[0], want[1], before[0]);
	for (i = 0; i < 64; i++)
		ok = ok && before[i] == 0xee;
	check(ok && !memcmp(after, want, 64),
	      blocked ? "crashed_kernels_dma_blocked" : "crashed_kernels_dma_lands_in_its_buffer",
	      why);
	return failures ? 1 : 0;
}

/* The capture kernel's own mapping of the same IOVAs, through a new domain. */
static int kdump_new(const char *bdf, uint64_t phys_b, int blocked)
{
	unsigned char *a = buffer(4096, 0), *c = buffer(4096, 0xcc), old[64] = { 0 };
	unsigned char p[64], q[64];
	char why[160];
	uint32_t ioas;
	int i, ok;

	for (i = 0; i < 64; i++) {
		a[i] = q[i] = kdump_pattern(i, 1);
		p[i] = blocked ? 0xee : kdump_pattern(i, 0);
	}
	open_device(bdf, 0);
	ioas = ioas_alloc();
	ok = !ioas_map(ioas, a, 4096, IOVA_A) && !ioas_map(ioas, c, 4096, IOVA_B) &&
	     !attach(hwpt_alloc(ioas)) && !edu_dma(IOVA_A, EDU_BUF, 64, 0) &&
	     !edu_dma(EDU_BUF, IOVA_B, 64, 1);
	ok = !vmcore_read(phys_b, old, 64) && ok;
	printf("# new buffer: %02x %02x; old buffer at %#llx: %02x %02x\n", c[0], c[1],
	       (unsigned long long)phys_b, old[0], old[1]);
	snprintf(why, sizeof(why), "new buffer holds %02x %02x, old %02x %02x; want %02x %02x, %02x %02x",
		 c[0], c[1], old[0], old[1], q[0], q[1], p[0], p[1]);
	check(ok && !memcmp(c, q, 64) && !memcmp(old, p, 64),
	      "new_domain_replaces_crashed_kernels_translation", why);
	return failures ? 1 : 0;
}

/* The invalidation queue error scenario (see the top of the file). */
static int qi_error(const char *bdf, const char *dmar, int batches)
{
	unsigned char *a, *b, *t, want[64];
	long before, mapped, after, pins0, pins;
	uint32_t ioas, hwpt;
	const char *tables = batches == 1 ? "retried_flush_frees_tables" :
					    "unconfirmed_flush_keeps_tables";
	const char *pinned = batches == 1 ? "retried_flush_unpins_pages" :
					    "unconfirmed_flush_keeps_pages_pinned";
	char why[128];
	int i, ok;

	open_device(bdf, 0);
	a = buffer(4096, 0);
	b = buffer(4096, 0xee);
	for (i = 0; i < 64; i++)
		a[i] = want[i] = (unsigned char)(i * 5 + 3);
	ioas = ioas_alloc();
	if (ioas_map(ioas, a, 4096, IOVA_A)) {
		perror("IOMMU_IOAS_MAP");
		return 1;
	}
	hwpt = hwpt_alloc(ioas);
	if (attach(hwpt)) {
		perror("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
		return 1;
	}
	t = mmap(NULL, 1UL << 30, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (30 << MAP_HUGE_SHIFT), -1, 0);
	if (t == MAP_FAILED) {
		check(0, tables, "no 1 GiB hugepage");
		return 1;
	}
	memset(t, 1, TSIZE);
	before = pagetables_kb();
	pins0 = pins_held();
	if (ioas_map(ioas, t, TSIZE, IOVA_T)) {
		check(0, tables, strerror(errno));
		return 1;
	}
	mapped = pagetables_kb();
	if (inject(bdf, dmar, batches))
		return 1;
	if (ioas_unmap(ioas, IOVA_T, TSIZE))
		perror("IOMMU_IOAS_UNMAP");
	after = pagetables_kb();
	pins = pins_held();
	printf("# page tables: %ld KiB, %ld KiB with 64 MiB mapped, %ld KiB after the unmap\n",
	       before, mapped, after);
	printf("# pages pinned: %ld before the map, %ld after the unmap\n", pins0, pins);
	snprintf(why, sizeof(why), "%ld KiB mapped, %ld KiB left after the unmap",
		 mapped - before, after - before);
	if (batches == 1)
		check(mapped - before >= 34 * 4 && after - before <= 3 * 4, tables, why);
	else
		check(mapped - before >= 34 * 4 && after - before >= 34 * 4, tables, why);
	snprintf(why, sizeof(why), "%ld of the mapping's %lu pages still pinned after the unmap",
		 pins - pins0, TSIZE / 4096);
	check(pins0 >= 0 && pins >= 0 &&
	      pins - pins0 == (batches == 1 ? 0 : (long)(TSIZE / 4096)), pinned, why);

	ok = !ioas_map(ioas, b, 4096, IOVA_B) && !edu_dma(IOVA_A, EDU_BUF, 64, 0) &&
	     !edu_dma(EDU_BUF, IOVA_B, 64, 1) && !memcmp(b, want, 64) &&
	     !ioas_unmap(ioas, IOVA_B, 4096);
	snprintf(why, sizeof(why), "B holds %02x %02x, want %02x %02x", b[0], b[1], want[0],
		 want[1]);
	check(ok, "translation_works_after_queue_error", why);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	unsigned char *a, *b, *c, *l, *t, want[64];
	long before, mapped, after;
	struct timespec pause = { 0, 150000000 };
	int attempts, landed = 0, i, ok;
	uint32_t ioas1, ioas2, hwpt1, hwpt2;
	char why[128];

	if (argc == 5 && !strcmp(argv[2], "qi-error") && atoi(argv[4]) > 0)
		return qi_error(argv[1], argv[3], atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[2], "qi-error-type1") && atoi(argv[4]) > 0)
		return qi_error_type1(argv[1], argv[3], atoi(argv[4]));
	if (argc == 3 && !strcmp(argv[2], "fault-hwpt"))
		return fault_hwpt(argv[1]);
	if (argc == 4 && !strcmp(argv[2], "reset") && atoi(argv[3]) > 0)
		return reset(argv[1], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[2], "kdump-hold"))
		return kdump_hold(argv[1]);
	if ((argc == 4 || (argc == 5 && !strcmp(argv[4], "blocked"))) &&
	    !strcmp(argv[2], "kdump-old-dma"))
		return kdump_old_dma(argv[1], strtoull(argv[3], NULL, 0), argc == 5);
	if ((argc == 4 || (argc == 5 && !strcmp(argv[4], "blocked"))) &&
	    !strcmp(argv[2], "kdump-new"))
		return kdump_new(argv[1], strtoull(argv[3], NULL, 0), argc == 5);
	if (argc != 3 && argc != 4) {
		fprintf(stderr,
			"usage: %s BDF ATTEMPTS [PAUSE_MS] | %s BDF qi-error[-type1] DMAR BATCHES |\n"
			"       %s BDF fault-hwpt | %s BDF reset RESETS | %s BDF kdump-hold | %s BDF kdump-old-dma PHYS [blocked] | kdump-new PHYS [blocked]\n",
			argv[0], argv[0], argv[0], argv[0], argv[0], argv[0]);
		return 2;
	}
	attempts = atoi(argv[2]);
	if (argc == 4)
		pause.tv_nsec = atoi(argv[3]) * 1000000L;
	a = buffer(4096, 0);
	b = buffer(4096, 0xee);
	c = buffer(4096, 0xcc);
	for (i = 0; i < 64; i++)
		a[i] = want[i] = (unsigned char)(i * 7 + 1);

	hwpt1 = attach_a_b(argv[1], a, b, &ioas1);
	printf("# attached to hwpt %u (IOAS %u)\n", hwpt1, ioas1);

	ok = !edu_dma(IOVA_A, EDU_BUF, 64, 0) && !edu_dma(EDU_BUF, IOVA_B, 64, 1) &&
	     !memcmp(b, want, 64);
	snprintf(why, sizeof(why), "B holds %02x %02x %02x, want %02x %02x %02x",
		 b[0], b[1], b[2], want[0], want[1], want[2]);
	check(ok, "translated_dma_lands", why);

	memset(b, 0xee, 4096);
	if (ioas_unmap(ioas1, IOVA_B, 4096)) {
		perror("IOMMU_IOAS_UNMAP");
		return 1;
	}
	printf("# unmapped IOVA %#llx\n", IOVA_B);
	fflush(stdout);
	for (i = 0; i < attempts; i++) {
		if (edu_dma(EDU_BUF, IOVA_B, 64, 1)) {
			check(0, "unmapped_dma_never_lands", "edu did not finish");
			break;
		}
		if (b[0] != 0xee || memcmp(b, b + 1, 63))
			landed++;
		/* The first fault may wait for the driver's regular poll. */
		if (i == 0)
			usleep(150000);
		nanosleep(&pause, NULL);
	}
	snprintf(why, sizeof(why), "%d of %d landed", landed, attempts);
	check(!landed && i == attempts, "unmapped_dma_never_lands", why);
	printf("# unmapped attempts %d landed %d\n", i, landed);

	ioas2 = ioas_alloc();
	if (ioas_map(ioas2, a, 4096, IOVA_A) || ioas_map(ioas2, c, 4096, IOVA_B)) {
		perror("IOMMU_IOAS_MAP");
		return 1;
	}
	hwpt2 = hwpt_alloc(ioas2);
	if (attach(hwpt2)) {
		check(0, "hwpt_replace_retargets", strerror(errno));
	} else {
		ok = !edu_dma(EDU_BUF, IOVA_B, 64, 1) && !memcmp(c, want, 64) &&
		     b[0] == 0xee;
		snprintf(why, sizeof(why), "C holds %02x, B holds %02x", c[0], b[0]);
		check(ok, "hwpt_replace_retargets", why);
	}

	l = mmap(NULL, LSIZE * 2, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (l == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* 2 MiB aligned, so that 2 MiB leaves can be used if THP backs it. */
	l = (unsigned char *)(((uintptr_t)l + (2UL << 20) - 1) & ~((2UL << 20) - 1));
	madvise(l, LSIZE, MADV_HUGEPAGE);
	for (i = 0; i < (int)(LSIZE / 4096); i++)
		memset(l + i * 4096UL, i & 0xff, 64);
	if (ioas_map(ioas2, l, LSIZE, IOVA_L)) {
		check(0, "large_mapping_translates", strerror(errno));
	} else {
		ok = 1;
		for (i = 0; i < (int)(LSIZE / 4096); i += 97) {
			memset(c, 0, 64);
			if (edu_dma(IOVA_L + i * 4096UL, EDU_BUF, 64, 0) ||
			    edu_dma(EDU_BUF, IOVA_B, 64, 1) || c[0] != (i & 0xff) ||
			    c[63] != (i & 0xff)) {
				snprintf(why, sizeof(why), "page %d: read %02x", i, c[0]);
				ok = 0;
				break;
			}
		}
		check(ok, "large_mapping_translates", why);
	}

	/* Physically contiguous: iommufd cuts its unmaps where the PFNs are not. */
	t = mmap(NULL, 1UL << 30, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (30 << MAP_HUGE_SHIFT), -1, 0);
	before = pagetables_kb();
	if (t == MAP_FAILED) {
		check(0, "unmap_frees_page_tables", "no 1 GiB hugepage");
	} else if (memset(t, 1, TSIZE), ioas_map(ioas2, t, TSIZE, IOVA_T)) {
		check(0, "unmap_frees_page_tables", strerror(errno));
	} else {
		mapped = pagetables_kb();
		if (ioas_unmap(ioas2, IOVA_T, TSIZE))
			perror("IOMMU_IOAS_UNMAP");
		after = pagetables_kb();
		printf("# page tables: %ld KiB, %ld KiB with 64 MiB mapped, %ld KiB after the unmap\n",
		       before, mapped, after);
		snprintf(why, sizeof(why), "%ld KiB mapped, %ld KiB left", mapped - before,
			 after - before);
		check(before >= 0 && mapped - before >= 34 * 4 && after - before <= 3 * 4,
		      "unmap_frees_page_tables", why);
	}
	return failures ? 1 : 0;
}
