// SPDX-License-Identifier: GPL-2.0
/*
 * kexec_crash_load KERNEL INITRD CMDLINE: load KERNEL (a bzImage) with
 * INITRD and CMDLINE as the crash (capture) kernel, through
 * kexec_file_load(2) with KEXEC_FILE_ON_CRASH, as "kexec -s -p" does.
 * The guest image carries no dynamic libraries, and kexec-tools needs
 * several; this is all the kdump test needs of it.  Needs crashkernel=
 * on the running kernel's command line.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/kexec.h>

int main(int argc, char **argv)
{
	int kfd, ifd;

	if (argc != 4) {
		fprintf(stderr, "usage: %s KERNEL INITRD CMDLINE\n", argv[0]);
		return 2;
	}
	kfd = open(argv[1], O_RDONLY | O_CLOEXEC);
	ifd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (kfd < 0 || ifd < 0) {
		perror("open");
		return 1;
	}
	if (syscall(SYS_kexec_file_load, kfd, ifd, strlen(argv[3]) + 1, argv[3],
		    (unsigned long)KEXEC_FILE_ON_CRASH)) {
		perror("kexec_file_load");
		return 1;
	}
	return 0;
}
