// SPDX-License-Identifier: GPL-2.0
/*
 * iommufd against a real device: upstream's iommufd selftest
 * (tools/testing/selftests/iommu/iommufd.c) runs its HWPT and IOAS cases on
 * the core's mock domain, which never reaches an IOMMU driver.  These cases
 * run on QEMU's edu device bound to vfio-pci, through the IOMMU driver that
 * translates it (rust_vtd, or the C driver in make vfio-compare), and check
 * each by real DMA: edu copies between system memory at an IOVA and its own
 * buffer.
 *
 * IOMMUFD_DEVICE=BDF names the edu; without it every case is skipped.
 */
#include "kselftest_harness.h"

#include "edu_util.h"

#define IOVA_A 0x100000ULL
#define IOVA_B 0x101000ULL
#define IOVA_C 0x200000ULL
#define LEN 64

/* The interrupt (MSI) window, which the IOMMU never translates. */
#define MSI_FIRST 0xfee00000ULL
#define MSI_LAST 0xfeefffffULL

FIXTURE(edu)
{
	unsigned char *a, *b;
	uint32_t ioas;
};

FIXTURE_SETUP(edu)
{
	const char *bdf = getenv("IOMMUFD_DEVICE");
	int i;

	if (!bdf)
		SKIP(return, "IOMMUFD_DEVICE not set");
	open_device(bdf, 0);
	self->a = buffer(4096, 0);
	self->b = buffer(4096, 0xee);
	for (i = 0; i < LEN; i++)
		self->a[i] = (unsigned char)(i * 5 + 3);
	self->ioas = ioas_alloc();
	ASSERT_EQ(0, ioas_map(self->ioas, self->a, 4096, IOVA_A));
	ASSERT_EQ(0, ioas_map(self->ioas, self->b, 4096, IOVA_B));
}

FIXTURE_TEARDOWN(edu)
{
	if (devfd > 0)
		close(devfd);
	if (iommufd > 0)
		close(iommufd);
}

/* edu copies A (at IOVA_A) to its buffer, then its buffer to DST. */
static int copy_a_to(uint64_t dst)
{
	return edu_dma(IOVA_A, EDU_BUF, LEN, 0) || edu_dma(EDU_BUF, dst, LEN, 1);
}

/* The IOMMU driver reports its unit's registers (IOMMU_GET_HW_INFO). */
TEST_F(edu, get_hw_info)
{
	struct iommu_hw_info_vtd vtd = {};
	struct iommu_hw_info info = {
		.size = sizeof(info),
		.dev_id = devid,
		.data_len = sizeof(vtd),
		.data_uptr = (uintptr_t)&vtd,
	};

	ASSERT_EQ(0, ioctl(iommufd, IOMMU_GET_HW_INFO, &info));
	ASSERT_EQ(IOMMU_HW_INFO_TYPE_INTEL_VTD, info.out_data_type);
	ASSERT_EQ(sizeof(vtd), info.data_len);
	/* CAP.ND (domains) and ECAP: a real unit reports both. */
	ASSERT_NE(0, vtd.cap_reg);
	ASSERT_NE(0, vtd.ecap_reg);
	ASSERT_EQ(0, vtd.__reserved);
	TH_LOG("cap %#llx ecap %#llx flags %#x", (unsigned long long)vtd.cap_reg,
	       (unsigned long long)vtd.ecap_reg, vtd.flags);

	/* Another driver's type is refused. */
	info.in_data_type = IOMMU_HW_INFO_TYPE_ARM_SMMUV3;
	info.flags = IOMMU_HW_INFO_FLAG_INPUT_TYPE;
	ASSERT_NE(0, ioctl(iommufd, IOMMU_GET_HW_INFO, &info));
	ASSERT_EQ(EOPNOTSUPP, errno);
}

/* Attaching the IOAS directly gets the device an automatic domain. */
TEST_F(edu, attach_ioas_dma_lands)
{
	ASSERT_EQ(0, attach(self->ioas));
	ASSERT_EQ(0, copy_a_to(IOVA_B));
	ASSERT_EQ(0, memcmp(self->a, self->b, LEN));
}

/* A paging HWPT allocated for the device; DMA to an unmapped IOVA never lands. */
TEST_F(edu, hwpt_alloc_attach_unmap)
{
	uint32_t hwpt;

	ASSERT_EQ(0, __hwpt_alloc(self->ioas, &hwpt));
	ASSERT_EQ(0, attach(hwpt));
	ASSERT_EQ(0, copy_a_to(IOVA_B));
	ASSERT_EQ(0, memcmp(self->a, self->b, LEN));

	memset(self->b, 0xee, LEN);
	ASSERT_EQ(0, ioas_unmap(self->ioas, IOVA_B, 4096));
	ASSERT_EQ(0, copy_a_to(IOVA_B));
	ASSERT_EQ(0xee, self->b[0]);
	ASSERT_EQ(0xee, self->b[LEN - 1]);

	ASSERT_EQ(0, detach());
}

/* After a detach the device is blocked: no DMA lands, not even to mapped IOVAs. */
TEST_F(edu, detach_blocks_dma)
{
	ASSERT_EQ(0, attach(self->ioas));
	ASSERT_EQ(0, detach());
	ASSERT_EQ(0, copy_a_to(IOVA_B));
	ASSERT_EQ(0xee, self->b[0]);
}

/* Replacing the HWPT retargets DMA at once. */
TEST_F(edu, hwpt_replace)
{
	unsigned char *c = buffer(4096, 0xcc);
	uint32_t ioas2 = ioas_alloc(), hwpt1, hwpt2;

	ASSERT_EQ(0, ioas_map(ioas2, self->a, 4096, IOVA_A));
	ASSERT_EQ(0, ioas_map(ioas2, c, 4096, IOVA_B));
	ASSERT_EQ(0, __hwpt_alloc(self->ioas, &hwpt1));
	ASSERT_EQ(0, __hwpt_alloc(ioas2, &hwpt2));
	ASSERT_EQ(0, attach(hwpt1));
	ASSERT_EQ(0, attach(hwpt2));
	ASSERT_EQ(0, copy_a_to(IOVA_B));
	ASSERT_EQ(0, memcmp(self->a, c, LEN));
	ASSERT_EQ(0xee, self->b[0]);

	/* And back. */
	memset(c, 0xcc, LEN);
	ASSERT_EQ(0, attach(hwpt1));
	ASSERT_EQ(0, copy_a_to(IOVA_B));
	ASSERT_EQ(0, memcmp(self->a, self->b, LEN));
	ASSERT_EQ(0xcc, c[0]);
}

/* IOMMU_IOAS_COPY: the same pages at another IOVA, in another IOAS, translate. */
TEST_F(edu, ioas_copy)
{
	struct iommu_ioas_copy cp = {
		.size = sizeof(cp),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.src_ioas_id = self->ioas,
		.src_iova = IOVA_B,
		.length = 4096,
		.dst_iova = IOVA_C,
	};
	uint32_t ioas2 = ioas_alloc();

	cp.dst_ioas_id = ioas2;
	ASSERT_EQ(0, ioctl(iommufd, IOMMU_IOAS_COPY, &cp));
	ASSERT_EQ(0, ioas_map(ioas2, self->a, 4096, IOVA_A));
	ASSERT_EQ(0, attach(ioas2));
	ASSERT_EQ(0, copy_a_to(IOVA_C));
	ASSERT_EQ(0, memcmp(self->a, self->b, LEN));
}

/*
 * Once the device is attached, the IOAS offers only IOVAs the domain can
 * translate: never the interrupt window, which the driver reserves.
 */
TEST_F(edu, iova_ranges_exclude_msi_window)
{
	struct iommu_iova_range r[16];
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = self->ioas,
		.num_iovas = 16,
		.allowed_iovas = (uintptr_t)r,
	};
	unsigned int i;

	ASSERT_EQ(0, attach(self->ioas));
	ASSERT_EQ(0, ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &q));
	ASSERT_GT(q.num_iovas, 1);
	ASSERT_LE(q.num_iovas, 16);
	for (i = 0; i < q.num_iovas; i++) {
		TH_LOG("allowed %#llx-%#llx", (unsigned long long)r[i].start,
		       (unsigned long long)r[i].last);
		ASSERT_TRUE(r[i].last < MSI_FIRST || r[i].start > MSI_LAST);
	}
	/* Mapping into the window fails. */
	ASSERT_NE(0, ioas_map(self->ioas, self->a, 4096, MSI_FIRST));
}

/* A fault-capable HWPT needs I/O page faults (PRI): refused at attach and replace. */
TEST_F(edu, fault_capable_hwpt_refused)
{
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	struct iommu_hwpt_alloc h = {
		.size = sizeof(h),
		.flags = IOMMU_HWPT_FAULT_ID_VALID,
		.dev_id = devid,
		.pt_id = self->ioas,
	};
	uint32_t hwpt;

	ASSERT_EQ(0, ioctl(iommufd, IOMMU_FAULT_QUEUE_ALLOC, &fa));
	h.fault_id = fa.out_fault_id;
	ASSERT_EQ(0, ioctl(iommufd, IOMMU_HWPT_ALLOC, &h));
	ASSERT_NE(0, attach(h.out_hwpt_id));
	ASSERT_EQ(ENODEV, errno);

	ASSERT_EQ(0, __hwpt_alloc(self->ioas, &hwpt));
	ASSERT_EQ(0, attach(hwpt));
	ASSERT_NE(0, attach(h.out_hwpt_id));
	ASSERT_EQ(ENODEV, errno);
	/* The paging HWPT still translates. */
	ASSERT_EQ(0, copy_a_to(IOVA_B));
	ASSERT_EQ(0, memcmp(self->a, self->b, LEN));
}

TEST_HARNESS_MAIN
