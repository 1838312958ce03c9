// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_hold BDF: bind the vfio-pci device BDF to a new iommufd and hold it
 * until killed.  Binding claims DMA ownership of the device's group, so the
 * IOMMU core puts it on the blocking domain: nothing is attached, and any
 * DMA the device attempts must fault.  Prints "held <bdf>" once bound.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

int main(int argc, char **argv)
{
	char path[256], dev[300];
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct dirent *d;
	DIR *dir;
	int iommufd, devfd = -1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s BDF\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", argv[1]);
	dir = opendir(path);
	if (!dir) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((d = readdir(dir)))
		if (!strncmp(d->d_name, "vfio", 4)) {
			snprintf(dev, sizeof(dev), "/dev/vfio/devices/%s", d->d_name);
			devfd = open(dev, O_RDWR);
			break;
		}
	closedir(dir);
	if (devfd < 0) {
		fprintf(stderr, "cannot open the vfio cdev of %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	iommufd = open("/dev/iommu", O_RDWR);
	if (iommufd < 0) {
		perror("/dev/iommu");
		return 1;
	}
	bind.iommufd = iommufd;
	if (ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind)) {
		perror("VFIO_DEVICE_BIND_IOMMUFD");
		return 1;
	}
	printf("held %s\n", argv[1]);
	fflush(stdout);
	for (;;)
		pause();
}
