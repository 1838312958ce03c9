// SPDX-License-Identifier: GPL-2.0

#include <linux/iommu.h>
#include <asm/cacheflush.h>
#include <asm/io.h>

__rust_helper void *rust_helper_dev_iommu_priv_get(struct device *dev)
{
	return dev_iommu_priv_get(dev);
}

__rust_helper phys_addr_t rust_helper_virt_to_phys(volatile void *address)
{
	return virt_to_phys(address);
}


__rust_helper void *rust_helper_phys_to_virt(phys_addr_t address)
{
	return phys_to_virt(address);
}
