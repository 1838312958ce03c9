#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# source.sh: (inside the sysroot) make $CACHE/src/linux the pristine
# linux-source-7.3 tree with patches/ applied and the project's new files
# copied over it.  Incremental: only files whose content changes are
# touched, so the next kernel build recompiles only what they affect.

. "$(dirname "$0")/lib.sh"

SRC=$CACHE/src/linux
STATE=$CACHE/src/state
TARBALL=$(ls /usr/src/linux-source-$KSERIES.tar.* 2>/dev/null | head -n1)
[ -n "$TARBALL" ] || die "linux-source-$KSERIES not installed in the sysroot"
PKGVER=$(dpkg-query -W -f '${Version}' linux-source-$KSERIES)

mkdir -p "$CACHE/src"

extract() {
	log "unpacking linux-source-$KSERIES $PKGVER"
	rm -rf "$SRC" "$STATE" "$CACHE/src/tmp"
	mkdir -p "$CACHE/src/tmp" "$STATE/applied"
	tar -C "$CACHE/src/tmp" -xf "$TARBALL"
	mv "$CACHE/src/tmp"/linux-source-$KSERIES "$SRC"
	rmdir "$CACHE/src/tmp"
	echo "$PKGVER" > "$STATE/pkgver"
	make -s -C "$SRC" kernelversion > "$STATE/kernelversion"
	: > "$STATE/overlay"
}

[ "$(cat "$STATE/pkgver" 2>/dev/null)" = "$PKGVER" ] || extract

# Patches: if the series changed, reverse the old one and apply the new one.
want=$( (cd "$TOP/patches" 2>/dev/null && cat $(ls *.patch 2>/dev/null) </dev/null) | sha256sum | cut -c1-16)
have=$(cat "$STATE/patches" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
	# The files the old or the new series touch: their content and mtime
	# now, so that those the new series leaves as they were get their
	# mtime back and the next build does not recompile what uses them.
	: > "$STATE/stamps"
	# (A fresh tree has no applied series: cat's failure on the
	# unmatched glob must not end the script under pipefail.)
	{ cat "$STATE/applied/"*.patch "$TOP/patches/"*.patch 2>/dev/null || true; } |
		sed -n 's|^+++ b/\([^	 ]*\).*|\1|p' | sort -u |
		while read -r f; do
			[ -f "$SRC/$f" ] || continue
			echo "$(sha256sum < "$SRC/$f" | cut -c1-64) $(stat -c %Y "$SRC/$f") $f"
		done > "$STATE/stamps"
	if ls "$STATE/applied/"*.patch >/dev/null 2>&1; then
		log "reversing the previously applied patch series"
		for p in $(ls "$STATE/applied/"*.patch | sort -r); do
			if ! patch -d "$SRC" -p1 -R -s -f --no-backup-if-mismatch < "$p" >/dev/null; then
				log "cannot reverse $(basename "$p"); unpacking afresh"
				extract
				break
			fi
		done
	fi
	rm -f "$STATE/applied/"*.patch "$STATE/patches"
	for p in $(ls "$TOP/patches/"*.patch 2>/dev/null | sort); do
		log "applying $(basename "$p")"
		patch -d "$SRC" -p1 -s -f -N --no-backup-if-mismatch < "$p" ||
			die "patch $(basename "$p") does not apply to linux $(cat "$STATE/kernelversion")"
		cp "$p" "$STATE/applied/"
	done
	kept=0
	while read -r sum mtime f; do
		[ -f "$SRC/$f" ] && [ "$(sha256sum < "$SRC/$f" | cut -c1-64)" = "$sum" ] || continue
		touch -d "@$mtime" "$SRC/$f"
		kept=$((kept + 1))
	done < "$STATE/stamps"
	log "$kept patched file(s) unchanged by the new series keep their mtime"
	echo "$want" > "$STATE/patches"
fi

# Overlay: copy new files whose content differs; drop files we no longer ship.
cd "$TOP"
git ls-files -co --exclude-standard -- rust drivers samples tools Documentation 2>/dev/null |
	grep -v '^tools/testing/rust_vtd/' | sort > "$STATE/overlay.new" ||
	find rust drivers samples tools Documentation -type f 2>/dev/null |
	grep -v '^tools/testing/rust_vtd/' | sort > "$STATE/overlay.new"
comm -23 "$STATE/overlay" "$STATE/overlay.new" | while read -r f; do
	rm -f "$SRC/$f"
done
rsync -rlc --files-from="$STATE/overlay.new" "$TOP/" "$SRC/"
mv "$STATE/overlay.new" "$STATE/overlay"
