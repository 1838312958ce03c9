#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""insnprof.py OUTDIR RUST_BUILD BASELINE_BUILD: the report of
make profile (Markdown, on stdout) from the insnprof plugin's block counts
(OUTDIR/<kernel>.blocks) and the guests' results (OUTDIR/insns-<kernel>.
results.log, which hold rust_vtd's module symbols).

Every block is charged to the function it starts in: its instructions
times its executions. Figures are per map/unmap pair, that is per call of
dma_unmap_page_attrs (the executions of its first block). "Per pair"
functions are those called at least once per two pairs, and rust_vtd's;
boot and the shell's work, which both kernels also did, fall outside.

A kernel built with ftrace (the baseline) starts every traceable function
with a 5-byte NOP that the other kernel does not execute; those NOPs are
not counted, so that both kernels are counted as built without ftrace."""

import bisect
import re
import subprocess
import sys

NORM = 'dma_unmap_page_attrs'


def demangle(s):
    """A readable path for a Rust v0 symbol (identifiers only, no types)."""
    if not s.startswith('_R'):
        return s
    out, i = [], 2
    while i < len(s):
        c = s[i]
        if c == 'K' and i + 1 < len(s):
            # A const generic argument: a type tag, hex digits, '_'.
            j = s.find('_', i)
            if j > 0:
                i = j + 1
                continue
        if c in 'sB':
            # A disambiguator or a back reference: base-62 digits up to '_'.
            j = s.find('_', i)
            if j > 0 and re.fullmatch(r'[0-9A-Za-z]*', s[i + 1:j]):
                i = j + 1
                continue
        if c.isdigit():
            j = i
            while j < len(s) and s[j].isdigit():
                j += 1
            n = int(s[i:j])
            if j < len(s) and s[j] == '_':
                j += 1
            if n:
                out.append(s[j:j + n])
            i = j + n
            continue
        i += 1
    name = '::'.join(out) or s
    return name + '::{closure}' if s.startswith('_RNC') else name


def symbols(system_map, results):
    syms = []
    for line in open(system_map):
        p = line.split()
        if len(p) >= 3 and p[1] in 'tTwW':
            syms.append((int(p[0], 16), p[2]))
    for line in open(results, errors='replace'):
        m = re.match(r'# KSYM ([0-9a-f]+) [tTwW] (\S+)', line.replace('\r', ''))
        if m:
            syms.append((int(m.group(1), 16), m.group(2) + ' [rust_vtd]'))
    syms.sort()
    return syms


FTRACE_NOP = bytes.fromhex('0f1f440000')


def text_reader(vmlinux):
    """A function that reads bytes of vmlinux's .text at an address."""
    out = subprocess.run(['readelf', '-SW', vmlinux], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r'\]\s+\.text\s+PROGBITS\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)', out)
    addr, off, size = (int(x, 16) for x in m.groups())
    data = open(vmlinux, 'rb')

    def read(a, n):
        if not addr <= a < addr + size - n:
            return b''
        data.seek(off + a - addr)
        return data.read(n)
    return read


def profile(blocks, syms, read):
    """{function: (instructions, calls)} over the whole run, and the pairs."""
    addrs = [a for a, _ in syms]
    ins, calls = {}, {}
    for line in open(blocks):
        va, n, c = line.split()
        va, n, c = int(va, 16), int(n), int(c)
        i = bisect.bisect_right(addrs, va) - 1
        if i < 0:
            continue
        a, name = syms[i]
        if va == a and read(a, 5) == FTRACE_NOP:
            n -= 1
        ins[name] = ins.get(name, 0) + n * c
        if va == a:
            calls[name] = calls.get(name, 0) + c
    pairs = calls.get(NORM, 0)
    if not pairs:
        sys.exit(f'insnprof.py: no call of {NORM} in {blocks}')
    return {k: (v / pairs, calls.get(k, 0) / pairs) for k, v in ins.items()}, pairs


def latency(results):
    for line in open(results, errors='replace'):
        m = re.search(r'average unmap latency\(us\):([0-9.]+)', line)
        if m:
            return m.group(1)
    return '?'


def main():
    out, rbuild, bbuild = sys.argv[1:4]
    runs = {}
    for k, build in (('rust', rbuild), ('baseline', bbuild)):
        res = f'{out}/insns-{k}.results.log'
        syms = symbols(f'{build}/System.map', res)
        runs[k] = profile(f'{out}/{k}.blocks', syms, text_reader(f'{build}/vmlinux')) + (latency(res),)
    (r, rpairs, rlat), (b, bpairs, blat) = runs['rust'], runs['baseline']
    keys = [k for k in set(r) | set(b)
            if max(r.get(k, (0, 0))[1], b.get(k, (0, 0))[1]) >= 0.5 or k.endswith('[rust_vtd]')]
    tr = sum(r.get(k, (0, 0))[0] for k in keys)
    tb = sum(b.get(k, (0, 0))[0] for k in keys)
    print('# make profile: guest instructions per DMA map/unmap pair\n')
    print('dma_map_benchmark, strict domain, one thread, one page, 10 s, under')
    print("QEMU's insnprof plugin (one vCPU); rust_vtd (rust kernel) against the")
    print('C driver (baseline kernel). Instructions per pair, that is per call')
    print(f"of `{NORM}`; calls per pair; ftrace's entry NOPs (baseline) not")
    print('counted. See')
    print('Documentation/iommu/rust_vtd-bench.rst.\n')
    print('| | rust_vtd | C driver | Rust/C |')
    print('|---|---|---|---|')
    print(f'| pairs counted | {rpairs} | {bpairs} | |')
    print(f'| instructions per pair, per-pair functions | {tr:.0f} | {tb:.0f} | {tr / tb:.2f} |')
    print(f'| unmap latency under the plugin, µs | {rlat} | {blat} | |')
    print('\n## The functions that differ most\n')
    print('| function | rust_vtd insns | calls | C insns | calls | difference |')
    print('|---|---|---|---|---|---|')
    zero = (0.0, 0.0)
    for k in sorted(keys, key=lambda k: -abs(r.get(k, zero)[0] - b.get(k, zero)[0]))[:30]:
        rv, bv = r.get(k, zero), b.get(k, zero)
        name = demangle(k.replace(' [rust_vtd]', ''))
        if k.endswith('[rust_vtd]'):
            name += ' (rust_vtd)'
        print(f'| `{name}` | {rv[0]:.1f} | {rv[1]:.2f} | {bv[0]:.1f} | {bv[1]:.2f} | {rv[0] - bv[0]:+.1f} |')


if __name__ == '__main__':
    main()
