#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the toolchain sysroot: Debian trixie (+ trixie-backports) made with
# mmdebstrap, holding LLVM/clang, rustc + rust-src, bindgen, QEMU and the
# guest's userspace.  The host (Debian 12) has no LLVM >= 17.
#
# The sysroot is keyed by this script's contents: edit the package list and
# the next run rebuilds it.

. "$(dirname "$0")/lib.sh"

PKGS=(
	# kernel build
	make bc bison flex cpio kmod rsync xz-utils zstd perl python3
	libelf-dev libssl-dev libc6-dev gcc git patch file
	clang lld llvm libclang-dev rustc rust-src rustfmt rust-clippy bindgen
	# guest userspace and VM
	busybox-static kexec-tools makedumpfile uuid-dev libnuma-dev libcap-dev
	qemu-system-x86/trixie-backports
	# kernel source
	linux-source-7.3/trixie-backports
)

key=$(sha256sum "$0" | cut -c1-16)
if [ -f "$SYSROOT/.rust_vtd_key" ] && [ "$(cat "$SYSROOT/.rust_vtd_key")" = "$key" ]; then
	exit 0
fi

command -v mmdebstrap >/dev/null || {
	log "installing mmdebstrap on the host"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap
}

# The Debian mirror this host already uses; nothing else is reachable.
if [ -z "${MIRROR:-}" ]; then
	MIRROR=$(apt-cache policy 2>/dev/null |
		awk '$3 ~ /^bookworm\/main$/ && $2 !~ /security/ {print $2; exit}')
	if [ -z "$MIRROR" ]; then
		apt-get update -qq
		MIRROR=$(apt-cache policy 2>/dev/null |
			awk '$3 ~ /^bookworm\/main$/ && $2 !~ /security/ {print $2; exit}')
	fi
fi
[ -n "$MIRROR" ] || die "cannot find the host's Debian mirror; set MIRROR="

log "creating the trixie sysroot in $SYSROOT (mirror from the host's apt sources)"
rm -rf "$SYSROOT.new"
inc=$(printf '%s\n' "${PKGS[@]}" | grep -v '/' | grep -v -- '-$' | paste -sd, -)
bpo=$(printf '%s\n' "${PKGS[@]}" | grep '/' | sed 's,/.*,,' | tr '\n' ' ')
mmdebstrap --variant=apt --mode=root --skip=check/empty \
	--aptopt='APT::Install-Recommends "false"' \
	--aptopt='Acquire::Retries "3"' \
	--include="$inc" \
	--customize-hook="chroot \"\$1\" apt-get install -y -q --no-install-recommends -t trixie-backports $bpo" \
	trixie "$SYSROOT.new" \
	"deb $MIRROR trixie main" \
	"deb $MIRROR trixie-backports main" >&2
rm -rf "$SYSROOT"
mv "$SYSROOT.new" "$SYSROOT"
echo "$key" > "$SYSROOT/.rust_vtd_key"
log "sysroot ready: $(du -sh "$SYSROOT" | cut -f1)"
