/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the guest tools that drive QEMU's edu device through VFIO:
 * bind it (iommufd cdev or type1 group), map its BAR0, turn bus mastering
 * on, and run one DMA.  Errors print a message and exit(1).
 */
#ifndef RUST_VTD_EDU_UTIL_H
#define RUST_VTD_EDU_UTIL_H

#include <sys/mman.h>
#include <time.h>

#include "iommufd_util.h"

/* edu's own buffer, at this device address. */
#define EDU_BUF 0x40000

/* edu's BAR0 (0x80 source, 0x88 destination, 0x90 count, 0x98 command). */
static volatile uint64_t *bar;

static inline int edu_dma(uint64_t src, uint64_t dst, uint64_t len, int to_ram)
{
	struct timespec t = { 0, 1000000 };
	int i;

	bar[0x80 / 8] = src;
	bar[0x88 / 8] = dst;
	bar[0x90 / 8] = len;
	bar[0x98 / 8] = to_ram ? 3 : 1;
	for (i = 0; i < 5000; i++) {
		if (!(bar[0x98 / 8] & 1))
			return 0;
		nanosleep(&t, NULL);
	}
	return -1;
}

static inline void *buffer(size_t len, int fill)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, fill, len);
	return p;
}

/*
 * Binds BDF (to a new iommufd, or with TYPE1 through its group to a type1
 * container), maps BAR0 and turns bus mastering on.
 */
static inline void open_device(const char *bdf, int type1)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg) };
	uint16_t cmd;
	void *m;

	if (type1)
		vfio_group_open(bdf);
	else
		vfio_cdev_bind(bdf);
	reg.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &reg)) {
		perror("VFIO_DEVICE_GET_REGION_INFO");
		exit(1);
	}
	m = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, devfd, reg.offset);
	if (m == MAP_FAILED) {
		perror("mmap BAR0");
		exit(1);
	}
	bar = m;

	reg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &reg) ||
	    pread(devfd, &cmd, 2, reg.offset + 4) != 2) {
		perror("config space");
		exit(1);
	}
	cmd |= 4; /* bus master */
	if (pwrite(devfd, &cmd, 2, reg.offset + 4) != 2) {
		perror("config space write");
		exit(1);
	}
}

#endif
