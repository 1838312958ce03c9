// SPDX-License-Identifier: GPL-2.0
/*
 * iommufd_bench BDF SIZE_MIB REPS: IOMMU_IOAS_MAP / IOMMU_IOAS_UNMAP cost
 * through the IOMMU driver, for make bench.  BDF is bound to vfio-pci; the
 * tool binds its cdev to iommufd and attaches it to an IOAS, so that the
 * IOAS's mappings go into a paging domain of the driver.  Then:
 *
 *   - SIZE_MIB of anonymous memory (4 KiB pages) and of 2 MiB hugetlb pages
 *     (SIZE_MIB / 2 must be reserved), each mapped at IOVA 4 GiB and
 *     unmapped REPS times, timed: GiB/s, the median of the REPS;
 *   - the page-table memory the first mapping took (SecPageTables);
 *   - 256 single 4 KiB mappings, then their 256 unmaps: microseconds each.
 *
 * Each of the three runs in an IOAS of its own: attaching the device to it
 * replaces the domain, so each starts from an empty page table.
 *
 * If BENCH_COUNTERS names a command, it is run before and after the first
 * map and unmap of each kind and must print two numbers: invalidation queue
 * submissions and descriptors so far.  Their differences are reported too.
 *
 * Output: "BENCH <name> <value>" lines, "# " comments; exit 1 on error.
 */
#include <sys/mman.h>
#include <time.h>

#include "iommufd_util.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define IOVA_BASE (4ULL << 30)
#define SMALL_OPS 256

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Invalidation counters so far (submissions, descriptors), if available. */
static int counters(long long *subs, long long *descs)
{
	const char *cmd = getenv("BENCH_COUNTERS");
	FILE *p;
	int n;

	if (!cmd || !*cmd)
		return -1;
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fscanf(p, "%lld %lld", subs, descs);
	pclose(p);
	return n == 2 ? 0 : -1;
}

struct delta {
	long long s0, d0;
	int ok;
};

static void delta_start(struct delta *d)
{
	d->ok = !counters(&d->s0, &d->d0);
}

/* Reports the counters' growth since delta_start(), divided by ops. */
static void delta_report(struct delta *d, const char *name, int ops)
{
	long long s, n;

	if (!d->ok || counters(&s, &n))
		return;
	printf("BENCH qi_submissions_per_%s %.3f\n", name, (double)(s - d->s0) / ops);
	printf("BENCH qi_descriptors_per_%s %.3f\n", name, (double)(n - d->d0) / ops);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * Maps and unmaps LEN bytes at P REPS times, in a new IOAS (so a new
 * domain, which the device is moved to); reports as KIND.
 */
static int map_unmap(void *p, size_t len, int reps, const char *kind)
{
	uint32_t ioas = ioas_alloc();
	double *tm = calloc(reps, sizeof(double)), *tu = calloc(reps, sizeof(double));
	double gib = len / (double)(1UL << 30), t;
	struct delta d = { 0 };
	long pt0 = 0, pt1;
	char name[64];
	int r;

	if (!tm || !tu)
		return -1;
	if (attach(ioas)) {
		perror("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
		return -1;
	}
	for (r = 0; r < reps; r++) {
		if (r == 0) {
			pt0 = pagetables_kb();
			delta_start(&d);
		}
		t = now();
		if (ioas_map(ioas, p, len, IOVA_BASE)) {
			perror("IOMMU_IOAS_MAP");
			return -1;
		}
		tm[r] = now() - t;
		if (r == 0) {
			snprintf(name, sizeof(name), "map_%s", kind);
			delta_report(&d, name, 1);
			pt1 = pagetables_kb();
			printf("BENCH pagetable_kib_%s %ld\n", kind, pt1 - pt0);
			delta_start(&d);
		}
		t = now();
		if (ioas_unmap(ioas, IOVA_BASE, len)) {
			perror("IOMMU_IOAS_UNMAP");
			return -1;
		}
		tu[r] = now() - t;
		if (r == 0) {
			snprintf(name, sizeof(name), "unmap_%s", kind);
			delta_report(&d, name, 1);
		}
		printf("# %s rep %d: map %.3f s, unmap %.3f s\n", kind, r, tm[r], tu[r]);
	}
	printf("BENCH iommufd_map_gibps_%s %.3f\n", kind, gib / median(tm, reps));
	printf("BENCH iommufd_unmap_gibps_%s %.3f\n", kind, gib / median(tu, reps));
	free(tm);
	free(tu);
	return 0;
}

int main(int argc, char **argv)
{
	size_t len, i;
	struct delta d;
	uint32_t ioas;
	char *p, *h;
	double t;
	int reps;

	if (argc != 4) {
		fprintf(stderr, "usage: %s BDF SIZE_MIB REPS\n", argv[0]);
		return 2;
	}
	len = strtoul(argv[2], NULL, 0) << 20;
	reps = atoi(argv[3]);
	if (!len || reps < 1)
		return 2;
	vfio_cdev_bind(argv[1]);

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		 -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	madvise(p, len, MADV_NOHUGEPAGE);
	for (i = 0; i < len; i += 4096)
		p[i] = 1;
	if (map_unmap(p, len, reps, "4k"))
		return 1;

	h = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
	if (h == MAP_FAILED) {
		perror("mmap of 2 MiB hugepages (reserve them at boot)");
		return 1;
	}
	for (i = 0; i < len; i += 2UL << 20)
		h[i] = 1;
	if (map_unmap(h, len, reps, "2m"))
		return 1;
	munmap(h, len);

	/* Single pages, each its own map and unmap call, distinct IOVAs. */
	ioas = ioas_alloc();
	if (attach(ioas)) {
		perror("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
		return 1;
	}
	delta_start(&d);
	t = now();
	for (i = 0; i < SMALL_OPS; i++)
		if (ioas_map(ioas, p + i * 4096, 4096, IOVA_BASE + i * 8192)) {
			perror("IOMMU_IOAS_MAP 4 KiB");
			return 1;
		}
	printf("BENCH iommufd_map_4k_single_us %.1f\n", (now() - t) * 1e6 / SMALL_OPS);
	delta_report(&d, "map_4k_single", SMALL_OPS);
	delta_start(&d);
	t = now();
	for (i = 0; i < SMALL_OPS; i++)
		if (ioas_unmap(ioas, IOVA_BASE + i * 8192, 4096)) {
			perror("IOMMU_IOAS_UNMAP 4 KiB");
			return 1;
		}
	printf("BENCH iommufd_unmap_4k_single_us %.1f\n", (now() - t) * 1e6 / SMALL_OPS);
	delta_report(&d, "unmap_4k_single", SMALL_OPS);
	return 0;
}
