#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel.sh FLAVOUR: (inside the sysroot) configure and build the kernel and
# its modules for FLAVOUR (rust, lockdep, kasan, bench or baseline) in
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

# Build.  CLIPPY=1 lints every Rust object as it is compiled.  The warnings
# in our files are kept per crate object in $B/lint/ (see below), so that a
# cached build, which compiles nothing, still reports the last lint of
# every object it claims to cover; an object with no lint record yet is
# removed first, so that this build compiles, and lints, it.
# (Only the objects this flavour's configuration builds: the baseline
# kernel has no rust_vtd.)
LINTED=(rust/kernel.o)
grep -qE '^CONFIG_RUST_VTD=[ym]' "$B/.config" && LINTED+=(drivers/iommu/rust_vtd/rust_vtd.o)
grep -qE '^CONFIG_SAMPLE_RUST_EDU=[ym]' "$B/.config" && LINTED+=(samples/rust/rust_edu.o)
declare -A LINT_SRC=(
	[rust/kernel.o]='rust/kernel/(iommu|acpi/|platform/|pci/topology|scatterlist|seq_file)'
	[drivers/iommu/rust_vtd/rust_vtd.o]='drivers/iommu/rust_vtd/'
	[samples/rust/rust_edu.o]='samples/rust/rust_edu'
)
mkdir -p "$B/lint"
for o in "${LINTED[@]}"; do
	[ -f "$B/lint/${o//\//_}.log" ] || rm -f "$B/$o"
done
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

# Warnings (rustc, clippy) in our Rust files: each crate object compiled
# by this build gets its record replaced with the warnings in its sources;
# the others keep theirs (their sources did not change).  rust-warnings.log,
# which `make check` reports, is all the records together.
for o in "${LINTED[@]}"; do
	grep -qE "^  (CLIPPY|RUSTC)( L| \[M\])? +$o\$" "$B/build.log" || continue
	awk -v re="^ *--> *(/[^ ]*/)?${LINT_SRC[$o]}" '
		/^(warning|error)(\[[^]]*\])?:/ { blk = $0; keep = 0; inblk = 1; next }
		inblk && $0 ~ re { keep = 1 }
		inblk { blk = blk "\n" $0 }
		inblk && /^$/ { if (keep && blk !~ /warnings? emitted/) print blk; inblk = 0 }
	' "$B/build.log" > "$B/lint/${o//\//_}.log"
	log "  linted $o: $(grep -cE '^(warning|error)' "$B/lint/${o//\//_}.log") warning(s)"
done
: > "$B/rust-warnings.log"
for o in "${LINTED[@]}"; do
	if [ -f "$B/lint/${o//\//_}.log" ]; then
		cat "$B/lint/${o//\//_}.log" >> "$B/rust-warnings.log"
	else
		echo "warning: $o was never linted (no record in $B/lint)" >> "$B/rust-warnings.log"
	fi
done
if [ -s "$B/rust-warnings.log" ]; then
	log "Rust warnings in rust_vtd code (see $B/rust-warnings.log):"
	head -40 "$B/rust-warnings.log" >&2
fi

rm -rf "$B/staging"
"${MAKE[@]}" -s INSTALL_MOD_PATH="$B/staging" INSTALL_MOD_STRIP=1 modules_install >/dev/null
"${MAKE[@]}" -s INSTALL_HDR_PATH="$B/hdr" headers_install >/dev/null
make -s -C "$SRC" O="$B" kernelrelease > "$B/kernelrelease"
