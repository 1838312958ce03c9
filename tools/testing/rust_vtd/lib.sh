# SPDX-License-Identifier: GPL-2.0
# Common settings for the rust_vtd build/boot/test pipeline.  Sourced.

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CACHE=${RUST_VTD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-vtd}
SYSROOT=$CACHE/sysroot
# The kernel series we build against.  The point release is whatever the
# archive serves; it is recorded in $CACHE/src/VERSION.
KSERIES=7.3
JOBS=${JOBS:-$(nproc)}

mkdir -p "$CACHE"

log() { printf '[rust_vtd %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf '[rust_vtd] error: %s\n' "$*" >&2; exit 1; }

# Run a command inside the sysroot, in a private mount namespace, with the
# checkout and the cache visible at the same paths as outside.
in_sysroot() {
	[ -x "$SYSROOT/usr/bin/clang" ] || die "sysroot missing; run sysroot.sh"
	unshare -m --propagation private -- /bin/bash -c '
		set -e
		R=$1; shift
		for d in dev proc sys; do mount --rbind /$d "$R/$d"; done
		mount -t tmpfs tmpfs "$R/tmp"
		mkdir -p "$R$TOP" "$R$CACHE"
		mount --bind "$TOP" "$R$TOP"
		mount --bind "$CACHE" "$R$CACHE"
		cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
		exec chroot "$R" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			LANG=C.UTF-8 RUST_VTD_CACHE="$CACHE" "$@"
	' in_sysroot "$SYSROOT" "$@"
}
export TOP CACHE
