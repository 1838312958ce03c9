#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel.sh FLAVOUR: (inside the sysroot) configure and build the kernel and
# its modules for FLAVOUR (rust, lockdep or baseline) in
# $CACHE/build-FLAVOUR, and install the modules into
# $CACHE/build-FLAVOUR/staging.  Incremental.
#
# The configuration is tinyconfig + common.config + FLAVOUR.config; a
# fragment whose first line is "# base: OTHER" gets OTHER.config merged
# before it (lockdep.config builds on rust.config).

. "$(dirname "$0")/lib.sh"

FLAVOUR=${1:-rust}
SRC=$CACHE/src/linux
B=$CACHE/build-$FLAVOUR
CFGDIR=$TOP/tools/testing/rust_vtd/configs
MAKE=(make -C "$SRC" O="$B" LLVM=1 -j"$JOBS")
[ -f "$CFGDIR/$FLAVOUR.config" ] || die "no config fragment for $FLAVOUR"
mkdir -p "$B"
frags=("$CFGDIR/common.config")
base=$(sed -n '1s/^# base: *//p' "$CFGDIR/$FLAVOUR.config")
[ -z "$base" ] || frags+=("$CFGDIR/$base.config")
frags+=("$CFGDIR/$FLAVOUR.config")

# Configuration: tinyconfig + fragments, regenerated only when they change.
cfgkey=$(cat "${frags[@]}" "$CACHE/src/state/kernelversion" \
	"$CACHE/src/state/patches" | sha256sum | cut -c1-16)
if [ "$(cat "$B/.rust_vtd_cfgkey" 2>/dev/null)" != "$cfgkey" ] || [ ! -f "$B/.config" ]; then
	log "configuring $FLAVOUR kernel (tinyconfig + ${frags[*]##*/})"
	"${MAKE[@]}" -s tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$B" "$B/.config" "${frags[@]}" >/dev/null
	"${MAKE[@]}" -s olddefconfig >/dev/null
	# Every option a fragment names must have the value it asks for.
	bad=0
	while read -r line; do
		case $line in
		CONFIG_*=*) want=$line; opt=${line%%=*} ;;
		"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; want="# $opt is not set" ;;
		*) continue ;;
		esac
		have=$(grep -E "^($opt=|# $opt is not set)" "$B/.config" || echo "# $opt is not set")
		if [ "$have" != "$want" ]; then
			echo "  $FLAVOUR config: wanted '$want', got '$have'" >&2
			bad=1
		fi
	done < <(cat "${frags[@]}")
	[ $bad = 0 ] || die "the $FLAVOUR configuration does not hold what the fragments ask for"
	echo "$cfgkey" > "$B/.rust_vtd_cfgkey"
fi

# Build.  CLIPPY=1 lints every Rust object as it is compiled; warnings in
# our files fail the build (and the object is removed so that it is
# rebuilt, and linted, next time).
log "building the $FLAVOUR kernel and modules in $B (log: $B/build.log)"
start=$SECONDS
set +e
"${MAKE[@]}" CLIPPY=1 bzImage modules > "$B/build.log" 2>&1 &
pid=$!
# (A progress line every 30 s; an up-to-date build returns at once.)
while kill -0 $pid 2>/dev/null; do
	sleep 1
	[ $(((SECONDS - start) % 30)) = 0 ] && kill -0 $pid 2>/dev/null &&
		log "  ... $((SECONDS - start)) s, $(grep -c '^  [A-Z]' "$B/build.log") build steps so far"
done
wait $pid
rc=$?
set -e
if [ $rc != 0 ]; then
	grep -E 'error|Error' -A5 "$B/build.log" | head -60 >&2
	die "kernel build failed (full log: $B/build.log)"
fi
log "$FLAVOUR kernel built in $((SECONDS - start)) s ($(grep -c '^  [A-Z]' "$B/build.log") steps)"

# Warnings (rustc, clippy) in our Rust files go to rust-warnings.log, which
# `make check` reports; their objects are removed so that the next build
# compiles, and lints, them again.
ours='(rust/kernel/iommu|rust/kernel/acpi/|rust/kernel/platform/|rust/kernel/pci/topology|rust/kernel/scatterlist|drivers/iommu/rust_vtd|samples/rust/rust_edu)'
awk -v re="^ *--> *(/[^ ]*/)?$ours" '
	/^(warning|error)(\[[^]]*\])?:/ { blk = $0; keep = 0; inblk = 1; next }
	inblk && $0 ~ re { keep = 1 }
	inblk { blk = blk "\n" $0 }
	inblk && /^$/ { if (keep && blk !~ /warnings? emitted/) print blk; inblk = 0 }
' "$B/build.log" > "$B/rust-warnings.log"
if [ -s "$B/rust-warnings.log" ]; then
	log "Rust warnings in rust_vtd code (see $B/rust-warnings.log):"
	head -40 "$B/rust-warnings.log" >&2
	rm -f "$B"/rust/kernel.o "$B"/drivers/iommu/rust_vtd/*.o
fi

rm -rf "$B/staging"
"${MAKE[@]}" -s INSTALL_MOD_PATH="$B/staging" INSTALL_MOD_STRIP=1 modules_install >/dev/null
"${MAKE[@]}" -s INSTALL_HDR_PATH="$B/hdr" headers_install >/dev/null
make -s -C "$SRC" O="$B" kernelrelease > "$B/kernelrelease"
