// SPDX-License-Identifier: GPL-2.0
/*
 * vfio_hold BDF: bind the vfio-pci device BDF to a new iommufd and hold it
 * until killed.  Binding claims DMA ownership of the device's group, so the
 * IOMMU core puts it on the blocking domain: nothing is attached, and any
 * DMA the device attempts must fault.  Prints "held <bdf>" once bound.
 */
#include "iommufd_util.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s BDF\n", argv[0]);
		return 2;
	}
	vfio_cdev_bind(argv[1]);
	printf("held %s\n", argv[1]);
	fflush(stdout);
	for (;;)
		pause();
}
