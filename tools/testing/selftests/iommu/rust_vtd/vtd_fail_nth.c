// SPDX-License-Identifier: GPL-2.0
/*
 * vtd_fail_nth BDF: fail each allocation the IOMMU driver makes during a
 * round of iommufd work on a VFIO device, one per round, and check that
 * every failure comes back as ENOMEM and leaves the tables right.
 *
 * BDF is bound to vfio-pci.  The plan (plan-iommufd.sh) limits failslab
 * and fail_page_alloc to allocations with the driver's code on the stack
 * (require-start/require-end), so /proc/self/task/TID/fail-nth = n fails
 * the n-th allocation the driver makes for this thread.  Round n:
 *
 *   bind the cdev to a new iommufd, allocate an IOAS (not injected); then,
 *   with fail-nth = n:
 *     1 HWPT_ALLOC      a paging domain (domain_alloc_paging)
 *     2 ATTACH          the device to it (context entry)
 *     3 MAP 4K          4 MiB of 4 KiB pages at IOVA 1 MiB (map_pages)
 *     4 MAP 2M          4 MiB of 2 MiB hugetlb pages at IOVA 1 GiB
 *     5 HWPT_ALLOC      a second domain, filled from the IOAS
 *     6 REPLACE         attach the device to the second domain
 *     7 UNMAP           all of it (unmap_pages on both domains)
 *     8 MAP 8K          8 KiB again at IOVA 2 MiB
 *     9 DETACH          (the blocking domain)
 *    10 CLOSE           the device and the iommufd (domains freed)
 *
 * A step that fails ends the round (the rest is torn down by the close).
 * After steps 3, 4 and 6 succeed, the device's domain_translation_struct
 * must list exactly the leaves mapped so far: an allocation failure that
 * was swallowed instead of reported would show as missing leaves.  Rounds
 * go on until one completes without reaching its n-th allocation.
 *
 * Output: one "# n=..." line per round, then "FAILNTH rounds N injected N
 * failed_steps N absorbed N bad N"; exit 1 if anything was wrong.
 */
#include <sys/mman.h>

#include "iommufd_util.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

#define MAX_ROUNDS 2000
#define SZ_4M (4UL << 20)

static const char *const step_name[] = {
	"none", "HWPT_ALLOC", "ATTACH", "MAP_4K", "MAP_2M", "HWPT_ALLOC_2",
	"REPLACE", "UNMAP", "MAP_8K", "DETACH", "CLOSE",
};

static const char *bdf;
static char *buf4k, *buf2m;
static int nthfd, kmsgfd = -1;

/* Leaves in BDF's domain_translation_struct: 4 KiB ones and larger ones. */
static int count_leaves(long *small, long *large)
{
	char path[256], line[512];
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/kernel/debug/iommu/intel/%s/domain_translation_struct", bdf);
	f = fopen(path, "r");
	if (!f)
		return -1;
	*small = *large = 0;
	while (fgets(line, sizeof(line), f)) {
		int fields = 0;
		char *p;

		if (strncmp(line, "0x", 2))
			continue;
		/* IOVA_PFN | PML5E PML4E PDPE [PDE [PTE]]: 4 entries end at PDPE. */
		for (p = strchr(line, '|'); p && *p; p++)
			if (!strncmp(p, "0x", 2)) {
				fields++;
				p += 2;
			}
		if (fields == 5)
			(*small)++;
		else
			(*large)++;
	}
	fclose(f);
	return 0;
}

static int set_nth(unsigned int n)
{
	char s[16];
	int len = snprintf(s, sizeof(s), "%u", n);

	return pwrite(nthfd, s, len, 0) == len ? 0 : -1;
}

/* Whether the armed failure was injected (the counter reached 0). */
static int nth_fired(void)
{
	char s[16] = "";

	if (pread(nthfd, s, sizeof(s) - 1, 0) <= 0)
		return 1;
	return atoi(s) == 0;
}

/*
 * One round with the n-th driver allocation failing (n = 0: none).
 * Returns the step that failed (0: none), its errno in *err, and in *bad
 * whether the tables disagreed with what had been mapped.
 */
static int round_with(unsigned int n, int *err, int *bad)
{
	long small, large, want_small = 0, want_large = 0;
	uint32_t ioas, hwpt1, hwpt2;
	int step = 0, ret = 0;

	vfio_cdev_bind(bdf);
	ioas = ioas_alloc();
	*bad = 0;
	/* In the kernel log too: the injected failures' reports follow it. */
	if (kmsgfd >= 0)
		dprintf(kmsgfd, "vtd_fail_nth: round %u\n", n);
	if (n && set_nth(n)) {
		perror("fail-nth");
		exit(1);
	}
	while (!ret && ++step < 10) {
		switch (step) {
		case 1:
			ret = __hwpt_alloc(ioas, &hwpt1);
			break;
		case 2:
			ret = attach(hwpt1);
			break;
		case 3:
			ret = ioas_map(ioas, buf4k, SZ_4M, 1UL << 20);
			want_small = SZ_4M >> 12;
			break;
		case 4:
			if (!buf2m)
				continue;
			ret = ioas_map(ioas, buf2m, SZ_4M, 1UL << 30);
			want_large = 2;
			break;
		case 5:
			ret = __hwpt_alloc(ioas, &hwpt2);
			break;
		case 6:
			ret = attach(hwpt2);
			break;
		case 7:
			ret = ioas_unmap(ioas, 0, UINT64_MAX);
			want_small = want_large = 0;
			break;
		case 8:
			ret = ioas_map(ioas, buf4k, 8192, 2UL << 20);
			want_small = 2;
			break;
		case 9:
			ret = detach();
			break;
		}
		if (ret) {
			*err = errno;
			break;
		}
		if ((step == 3 || step == 4 || step == 6 || step == 8) &&
		    (count_leaves(&small, &large) || small != want_small ||
		     large != want_large)) {
			printf("# n=%u after %s: %ld 4 KiB and %ld larger leaves, want %ld and %ld\n",
			       n, step_name[step], small, large, want_small, want_large);
			*bad = 1;
		}
	}
	close(devfd);
	close(iommufd);
	if (!ret)
		step = 0;
	return step;
}

int main(int argc, char **argv)
{
	int injected = 0, failed = 0, absorbed = 0, bad = 0, wrong_errno = 0;
	unsigned int n;
	char path[64];
	int step, err, tables_bad;

	if (argc != 2) {
		fprintf(stderr, "usage: %s BDF\n", argv[0]);
		return 2;
	}
	bdf = argv[1];
	buf4k = mmap(NULL, SZ_4M, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	buf2m = mmap(NULL, SZ_4M, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_HUGETLB |
		     (21 << MAP_HUGE_SHIFT), -1, 0);
	if (buf4k == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (buf2m == MAP_FAILED) {
		printf("# no 2 MiB hugetlb pages: MAP_2M left out\n");
		buf2m = NULL;
	}
	kmsgfd = open("/dev/kmsg", O_WRONLY);
	snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth", getpid());
	nthfd = open(path, O_RDWR);
	if (nthfd < 0) {
		perror(path);
		return 1;
	}

	/* Round 0: nothing injected; everything must work. */
	step = round_with(0, &err, &tables_bad);
	if (step || tables_bad) {
		printf("# without injection: %s failed: %s\n", step_name[step], strerror(err));
		return 1;
	}
	for (n = 1; n < MAX_ROUNDS; n++) {
		/*
		 * VTD_FAIL_NTH_DELAY=s: pause between rounds, for debugging
		 * with fault injection's verbose=2, whose reports are
		 * ratelimited (ten per five seconds).
		 */
		if (getenv("VTD_FAIL_NTH_DELAY"))
			sleep(atoi(getenv("VTD_FAIL_NTH_DELAY")));
		step = round_with(n, &err, &tables_bad);
		if (!nth_fired()) {
			set_nth(0);
			break;
		}
		set_nth(0);
		injected++;
		bad += tables_bad;
		if (step) {
			failed++;
			if (err != ENOMEM)
				wrong_errno++;
		} else {
			absorbed++;
		}
		printf("# n=%u: %s%s%s%s\n", n, step ? step_name[step] : "no step failed",
		       step ? " failed: " : "", step ? strerror(err) : "",
		       tables_bad ? " (tables wrong)" : "");
	}
	if (n == MAX_ROUNDS)
		printf("# still injecting after %d rounds\n", MAX_ROUNDS);
	/* And once more without injection: the driver must be unharmed. */
	step = round_with(0, &err, &tables_bad);
	if (step || tables_bad)
		printf("# after the rounds: %s failed: %s\n", step_name[step], strerror(err));
	printf("FAILNTH rounds %u injected %d failed_steps %d absorbed %d bad_tables %d wrong_errno %d\n",
	       n, injected, failed, absorbed, bad, wrong_errno);
	return (injected && !bad && !wrong_errno && n < MAX_ROUNDS && !step &&
		!tables_bad) ? 0 : 1;
}
