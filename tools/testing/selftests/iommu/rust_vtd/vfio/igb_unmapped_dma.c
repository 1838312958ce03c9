// SPDX-License-Identifier: GPL-2.0
/*
 * igb_unmapped_dma BDF ATTEMPTS [PAUSE_MS]: the igb (bound to vfio-pci)
 * writes to IOVAs the IOMMU domain does not map, ATTEMPTS times, PAUSE_MS
 * (20) apart, and none of it may land.
 *
 * It drives the igb with upstream's VFIO selftest library (the driver in
 * tools/testing/selftests/vfio/lib/drivers/igb: a frame sent in MAC
 * loopback, so that the device reads it at one IOVA and writes it at
 * another), through iommufd.  First a copy between mapped buffers must
 * land.  Then each attempt writes a 1 KiB frame of fresh bytes alternately
 *
 *   - to an IOVA that was mapped to a buffer and has been unmapped since:
 *     the buffer must keep its old contents;
 *   - to an IOVA that was never mapped: the source, the mapped
 *     destination and the unmapped buffer must all be unchanged.
 *
 * A copy between mapped buffers every 100 attempts shows the device is
 * still copying.  The faults are the IOMMU driver's to report: the plan
 * counts them in the kernel log.  The pacing is for that count: QEMU's
 * VT-d drops (collapses) a fault whose requester has one still pending
 * in a fault recording register, and rust_vtd polls those registers
 * (every millisecond or so once faults come) instead of taking the fault
 * interrupt, which modules cannot allocate.  A guest vCPU that the host
 * does not run for longer than the pause (a loaded host) would let two
 * attempts' faults meet there, so with RVTD_FAULT_LOG set to rust_vtd's
 * fault log, each attempt also waits (up to 2 s) until a fault newer than
 * the attempt is recorded before the pause and the next attempt; whether
 * it is this attempt's fault (source, page) is still the caller's check.
 *
 * Output: "IGB attempts N landed N device_errors N", exit 1 if anything
 * landed or a control copy failed.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include <linux/sizes.h>

#include <libvfio.h>

#define FRAME 1024

static struct dma_region region(struct iommu *iommu,
				struct iova_allocator *alloc, u64 size)
{
	struct dma_region r = { .size = size };

	r.vaddr = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	VFIO_ASSERT_NE(r.vaddr, MAP_FAILED);
	r.iova = iova_allocator_alloc(alloc, size);
	return r;
}

static int all(const char *p, char c, size_t n)
{
	while (n--)
		if (*p++ != c)
			return 0;
	return 1;
}

/* The sequence number of the newest fault in rust_vtd's fault log. */
static long newest_fault(const char *log)
{
	char line[512];
	long seq = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		seq = atol(line);
	fclose(f);
	return seq;
}

/* Waits up to 2 s for a fault newer than @seq in @log. */
static void wait_fault(const char *log, long seq, int attempt)
{
	int ms;

	for (ms = 0; ms < 2000; ms++) {
		if (newest_fault(log) > seq)
			return;
		usleep(1000);
	}
	printf("# attempt %d: no fault recorded within 2 s\n", attempt);
}

static int control_copy(struct vfio_pci_device *dev, struct dma_region *src,
			struct dma_region *dst, char c)
{
	memset(src->vaddr, c, FRAME);
	memset(dst->vaddr, 0, FRAME);
	if (vfio_pci_driver_memcpy(dev, src->iova, dst->iova, FRAME))
		return -1;
	return all(dst->vaddr, c, FRAME) ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct dma_region src, dst, gone;
	struct vfio_pci_device *dev;
	struct iova_allocator *alloc;
	struct iommu *iommu;
	struct timespec pause = { 0, 20000000 };
	int attempts, landed = 0, errors = 0, bad_control = 0;
	const char *log = getenv("RVTD_FAULT_LOG");
	iova_t never;
	long seq = -1;
	int i;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s BDF ATTEMPTS [PAUSE_MS]\n", argv[0]);
		return 2;
	}
	attempts = atoi(argv[2]);
	if (argc == 4)
		pause.tv_nsec = atoi(argv[3]) * 1000000L;

	iommu = iommu_init("iommufd");
	dev = vfio_pci_device_init(argv[1], iommu);
	alloc = iova_allocator_init(iommu);

	dev->driver.region = region(iommu, alloc, SZ_2M);
	iommu_map(iommu, &dev->driver.region);
	src = region(iommu, alloc, SZ_64K);
	iommu_map(iommu, &src);
	dst = region(iommu, alloc, SZ_64K);
	iommu_map(iommu, &dst);
	gone = region(iommu, alloc, SZ_64K);
	iommu_map(iommu, &gone);
	never = iova_allocator_alloc(alloc, SZ_64K);

	vfio_pci_driver_init(dev);

	/* Mapped to mapped, and to the buffer that is about to go. */
	if (control_copy(dev, &src, &dst, 'a') ||
	    control_copy(dev, &src, &gone, 'b')) {
		printf("# a copy between mapped buffers did not land\n");
		return 1;
	}
	iommu_unmap(iommu, &gone);
	memset(gone.vaddr, 'g', SZ_64K);
	memset(dst.vaddr, 'd', SZ_64K);

	for (i = 0; i < attempts; i++) {
		char c = 'A' + i % 26;
		iova_t to = i % 2 ? never : gone.iova;

		memset(src.vaddr, c, FRAME);
		/* For the caller, which checks each attempt's fault. */
		printf("ATTEMPT %#lx\n", (unsigned long)(to + (i % 32) * FRAME));
		if (log)
			seq = newest_fault(log);
		/* The device may or may not see its write fail. */
		if (vfio_pci_driver_memcpy(dev, src.iova, to + (i % 32) * FRAME, FRAME))
			errors++;
		if (!all(gone.vaddr, 'g', SZ_64K) || !all(dst.vaddr, 'd', SZ_64K) ||
		    !all(src.vaddr, c, FRAME)) {
			if (landed++ < 5)
				printf("# attempt %d (to %s IOVA %#lx) landed\n", i,
				       i % 2 ? "a never-mapped" : "an unmapped",
				       (unsigned long)to);
			memset(gone.vaddr, 'g', SZ_64K);
			memset(dst.vaddr, 'd', SZ_64K);
		}
		if (i % 100 == 99) {
			if (control_copy(dev, &src, &dst, 'c')) {
				printf("# control copy after attempt %d failed\n", i);
				bad_control++;
			}
			memset(dst.vaddr, 'd', SZ_64K);
		}
		if (seq >= 0)
			wait_fault(log, seq, i);
		/* The first fault may wait for the driver's regular poll. */
		else if (i == 0)
			usleep(150000);
		nanosleep(&pause, NULL);
	}

	printf("IGB attempts %d landed %d device_errors %d failed_controls %d\n",
	       attempts, landed, errors, bad_control);
	vfio_pci_driver_remove(dev);
	vfio_pci_device_cleanup(dev);
	iommu_cleanup(iommu);
	return landed || bad_control ? 1 : 0;
}
