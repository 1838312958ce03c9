// SPDX-License-Identifier: GPL-2.0
/*
 * insnprof: a QEMU TCG plugin that counts, for every translation block of
 * guest kernel code, how often it ran and how many instructions it holds.
 * At exit it writes one line per block that ran: "vaddr insns count" (hex,
 * decimal, decimal) to the file given as out=PATH.  profile.sh maps the
 * blocks to functions.  Under TCG the guest's time is mostly the emulation
 * of its instructions, so the counts show where a driver's time goes,
 * Rust functions included, which ftrace cannot hook.
 *
 * Only what is used of QEMU's plugin interface is declared here, as QEMU
 * 11.1 (plugin API version 7) calls it: a translation callback gets the
 * block and the registration's user data; an execution callback the vCPU
 * index and its user data.  QEMU refuses to load a plugin built for
 * another API version.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

struct qemu_plugin_tb;
typedef uint64_t plugin_id;
typedef void (*trans_cb)(struct qemu_plugin_tb *tb, void *udata);
typedef void (*exec_cb)(unsigned int vcpu, void *udata);
typedef void (*exit_cb)(plugin_id id, void *udata);

void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id id, trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, exec_cb cb,
					  int flags, void *udata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(plugin_id id, exit_cb cb, void *udata);

EXPORT int qemu_plugin_version = 7;

/* The x86-64 kernel's text and modules lie in the top 2 GiB. */
#define KERNEL_START 0xffffffff80000000ull
/* QEMU_PLUGIN_CB_NO_REGS */
#define NO_REGS 0

struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t count;
	struct block *next;
};

static struct block *blocks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *out = "insnprof.txt";

static void on_exec(unsigned int vcpu, void *udata)
{
	struct block *b = udata;

	__atomic_fetch_add(&b->count, 1, __ATOMIC_RELAXED);
}

static void on_trans(struct qemu_plugin_tb *tb, void *udata)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct block *b;

	if (vaddr < KERNEL_START)
		return;
	b = calloc(1, sizeof(*b));
	if (!b)
		return;
	b->vaddr = vaddr;
	b->insns = qemu_plugin_tb_n_insns(tb);
	pthread_mutex_lock(&lock);
	b->next = blocks;
	blocks = b;
	pthread_mutex_unlock(&lock);
	qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, NO_REGS, b);
}

static void write_counts(plugin_id id, void *udata)
{
	FILE *f = fopen(out, "w");
	struct block *b;

	if (!f) {
		perror(out);
		return;
	}
	/* (A block translated again gets a line per translation.) */
	for (b = blocks; b; b = b->next)
		if (b->count)
			fprintf(f, "%llx %llu %llu\n", (unsigned long long)b->vaddr,
				(unsigned long long)b->insns,
				(unsigned long long)b->count);
	fclose(f);
}

EXPORT int qemu_plugin_install(plugin_id id, const void *info, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4))
			out = argv[i] + 4;
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_trans);
	qemu_plugin_register_atexit_cb(id, write_counts, NULL);
	return 0;
}
