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

/*
 * Page-table memory comes from the IOMMU core's page allocator, so that it
 * is accounted as "iommu-pagetables" and can go on an iotlb_gather's
 * freelist.  Its declarations live in a header private to drivers/iommu/.
 */
#include "../../drivers/iommu/iommu-pages.h"

__rust_helper void *rust_helper_iommu_alloc_pages_sz(gfp_t gfp, size_t size)
{
	return iommu_alloc_pages_sz(gfp, size);
}

__rust_helper void rust_helper_iommu_free_pages(void *virt)
{
	iommu_free_pages(virt);
}

__rust_helper void rust_helper_iommu_put_pages_list(struct iommu_pages_list *list)
{
	iommu_put_pages_list(list);
}

__rust_helper void rust_helper_iommu_pages_list_splice(struct iommu_pages_list *from,
						       struct iommu_pages_list *to)
{
	iommu_pages_list_splice(from, to);
}

/*
 * Tables of IOMMUs whose walks do not snoop the CPU caches: written back
 * through the DMA API or a cache flush, as the architecture needs.
 */
__rust_helper int rust_helper_iommu_pages_start_incoherent(void *virt,
							   struct device *dma_dev)
{
	return iommu_pages_start_incoherent(virt, dma_dev);
}

__rust_helper void rust_helper_iommu_pages_flush_incoherent(struct device *dma_dev,
							    void *virt, size_t offset,
							    size_t len)
{
	iommu_pages_flush_incoherent(dma_dev, virt, offset, len);
}

__rust_helper void rust_helper_iommu_pages_free_incoherent(void *virt,
							   struct device *dma_dev)
{
	iommu_pages_free_incoherent(virt, dma_dev);
}
