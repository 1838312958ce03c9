/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the guest tools: open a vfio-pci device's cdev and bind
 * it to a new iommufd, the IOAS and HWPT ioctls, and the IOMMU page-table
 * memory counter.  Errors print a message and exit(1): these are test tools.
 */
#ifndef RUST_VTD_IOMMUFD_UTIL_H
#define RUST_VTD_IOMMUFD_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

static int iommufd, devfd;
static uint32_t devid;

/* Opens the vfio cdev of vfio-pci device BDF and binds it to a new iommufd. */
static inline void vfio_cdev_bind(const char *bdf)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	char path[256], dev[300];
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	dir = opendir(path);
	if (!dir) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	devfd = -1;
	while ((d = readdir(dir)))
		if (!strncmp(d->d_name, "vfio", 4)) {
			snprintf(dev, sizeof(dev), "/dev/vfio/devices/%s", d->d_name);
			devfd = open(dev, O_RDWR);
			break;
		}
	closedir(dir);
	if (devfd < 0) {
		fprintf(stderr, "cannot open the vfio cdev of %s: %s\n", bdf, strerror(errno));
		exit(1);
	}
	iommufd = open("/dev/iommu", O_RDWR);
	if (iommufd < 0) {
		perror("/dev/iommu");
		exit(1);
	}
	bind.iommufd = iommufd;
	if (ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
		perror("VFIO_DEVICE_BIND_IOMMUFD");
		exit(1);
	}
	devid = bind.out_devid;
}

static inline uint32_t ioas_alloc(void)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };

	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &a)) {
		perror("IOMMU_IOAS_ALLOC");
		exit(1);
	}
	return a.out_ioas_id;
}

static inline int ioas_map(uint32_t ioas, void *va, uint64_t len, uint64_t iova)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};

	return ioctl(iommufd, IOMMU_IOAS_MAP, &m);
}

static inline int ioas_unmap(uint32_t ioas, uint64_t iova, uint64_t len)
{
	struct iommu_ioas_unmap u = {
		.size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len,
	};

	return ioctl(iommufd, IOMMU_IOAS_UNMAP, &u);
}

/*
 * VFIO's type1 container instead of iommufd: opens BDF's group, sets it on a
 * new container with the type1v2 IOMMU, and gets the device's fd.
 */
static int container;

static inline void vfio_group_open(const char *bdf)
{
	int group, api = VFIO_TYPE1v2_IOMMU;
	char path[256], link[256], *name;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	link[n] = 0;
	name = strrchr(link, '/');
	snprintf(path, sizeof(path), "/dev/vfio/%s", name ? name + 1 : link);
	container = open("/dev/vfio/vfio", O_RDWR);
	group = open(path, O_RDWR);
	if (container < 0 || group < 0) {
		fprintf(stderr, "/dev/vfio/vfio or %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) ||
	    ioctl(container, VFIO_SET_IOMMU, api)) {
		perror("VFIO_GROUP_SET_CONTAINER/VFIO_SET_IOMMU");
		exit(1);
	}
	devfd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (devfd < 0) {
		perror("VFIO_GROUP_GET_DEVICE_FD");
		exit(1);
	}
}

static inline int type1_map(void *va, uint64_t len, uint64_t iova)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)va,
		.iova = iova,
		.size = len,
	};

	return ioctl(container, VFIO_IOMMU_MAP_DMA, &m);
}

static inline int type1_unmap(uint64_t iova, uint64_t len)
{
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u), .iova = iova, .size = len,
	};

	return ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u);
}

/* Allocates a paging HWPT for the bound device over IOAS, into *id. */
static inline int __hwpt_alloc(uint32_t ioas, uint32_t *id)
{
	struct iommu_hwpt_alloc h = {
		.size = sizeof(h), .dev_id = devid, .pt_id = ioas,
	};
	int ret = ioctl(iommufd, IOMMU_HWPT_ALLOC, &h);

	*id = h.out_hwpt_id;
	return ret;
}

static inline uint32_t hwpt_alloc(uint32_t ioas)
{
	uint32_t id;

	if (__hwpt_alloc(ioas, &id)) {
		perror("IOMMU_HWPT_ALLOC");
		exit(1);
	}
	return id;
}

/* Attaches the bound device to PT (an IOAS or a HWPT). */
static inline int attach(uint32_t pt)
{
	struct vfio_device_attach_iommufd_pt at = {
		.argsz = sizeof(at), .pt_id = pt,
	};

	return ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
}

/* Detaches the bound device (it is left with the blocking domain). */
static inline int detach(void)
{
	struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof(d) };

	return ioctl(devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d);
}

/*
 * The IOMMU page-table memory in use, in KiB.  The counter is kept per CPU
 * and folded into the total about every second: fold it now (stat_refresh,
 * with CONFIG_PROC_SYSCTL), or wait for the periodic fold.
 */
static inline long pagetables_kb(void)
{
	char line[128];
	long kb = -1;
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);
	FILE *f;

	if (fd < 0 || write(fd, "1", 1) != 1)
		sleep(3);
	if (fd >= 0)
		close(fd);
	f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SecPageTables: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Pages pinned with FOLL_PIN (as iommufd pins them) and not unpinned since
 * boot: nr_foll_pin_acquired - nr_foll_pin_released in /proc/vmstat, after
 * folding the per-CPU counts.  -1 if they cannot be read.
 */
static inline long pins_held(void)
{
	long acquired = -1, released = -1, v;
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);
	char line[128];
	FILE *f;

	if (fd < 0 || write(fd, "1", 1) != 1)
		sleep(3);
	if (fd >= 0)
		close(fd);
	f = fopen("/proc/vmstat", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "nr_foll_pin_acquired %ld", &v) == 1)
			acquired = v;
		else if (sscanf(line, "nr_foll_pin_released %ld", &v) == 1)
			released = v;
	}
	fclose(f);
	return acquired < 0 || released < 0 ? -1 : acquired - released;
}

#endif
