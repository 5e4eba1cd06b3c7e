#!/usr/bin/env python3
"""Writes csrc/tokenizer/unicode_tables.c from the Unicode Character Database.

Usage: scripts/gen_unicode_tables.py [--ucd DIR] [--out FILE]
  --ucd  folder with UnicodeData.txt, PropList.txt and DerivedNormalizationProps.txt
         (default /usr/share/unicode, Debian's unicode-data package)
  --out  default csrc/tokenizer/unicode_tables.c next to this script's repository

The generated file is committed, so building retort never needs the data files. The tables are sorted
arrays searched by binary search (csrc/tokenizer/unicode.c):
  rt_uc_ascii_flags  the RT_UC_* flags of U+0000..U+007F (a direct look-up for the common case)
  rt_uc_flag_runs    (first << 8 | flags): the RT_UC_* flags from `first` up to the next entry's first
  rt_uc_ccc_runs     (first << 8 | ccc): canonical combining class, same run encoding
  rt_uc_decomp       {cp, a, b}: one level of canonical decomposition, cp -> a b (b = 0: singleton a);
                     Hangul syllables are algorithmic and not listed
  rt_uc_compose      indices into rt_uc_decomp of the primary composites (pairs that are not
                     Full_Composition_Exclusion), sorted by (a, b)
  rt_uc_compose_second  the starters (class 0) that are the b of a primary composite, sorted
"""
import argparse
import os
import re

FLAG = {"L": 1 << 0, "N": 1 << 1, "P": 1 << 2, "S": 1 << 3, "M": 1 << 4, "Z": 1 << 5, "C": 1 << 6}
WHITESPACE = 1 << 7
MAX_CP = 0x10FFFF


def read_unicode_data(path):
    """Per code point: (general category, ccc, decomposition string); ranges given as <..., First>/<..., Last>."""
    cat, ccc, decomp = {}, {}, {}
    first = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            cp = int(fields[0], 16)
            name, gc, cc, dm = fields[1], fields[2], int(fields[3]), fields[5]
            if name.endswith(", First>"):
                first = cp
                continue
            lo = first if name.endswith(", Last>") else cp
            first = None
            for c in range(lo, cp + 1):
                cat[c] = gc
                if cc:
                    ccc[c] = cc
            if dm and not dm.startswith("<"):  # canonical decompositions only (no <compat> tag)
                decomp[cp] = [int(x, 16) for x in dm.split()]
    return cat, ccc, decomp


def read_property(path, prop):
    cps = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            fields = [x.strip() for x in line.split(";")]
            if fields[1] != prop:
                continue
            lo, _, hi = fields[0].partition("..")
            cps.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return cps


def ucd_version(ucd):
    with open(os.path.join(ucd, "PropList.txt"), encoding="utf-8") as f:
        m = re.match(r"# PropList-(\d+\.\d+\.\d+)\.txt", f.readline())
    if not m:
        raise SystemExit("cannot read the Unicode version from PropList.txt's first line")
    return m.group(1)


def runs(value_of):
    """[(first, value)] where value changes, over 0..MAX_CP."""
    out = []
    prev = None
    for cp in range(MAX_CP + 1):
        v = value_of(cp)
        if v != prev:
            out.append((cp, v))
            prev = v
    return out


def c_array(decl, items, per_line):
    lines = [decl + " = {"]
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(x + "," for x in items[i : i + per_line]))
    lines.append("};")
    return "\n".join(lines)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--ucd", default="/usr/share/unicode")
    ap.add_argument("--out", default=os.path.join(here, "..", "csrc", "tokenizer", "unicode_tables.c"))
    args = ap.parse_args()

    version = ucd_version(args.ucd)
    cat, ccc, decomp = read_unicode_data(os.path.join(args.ucd, "UnicodeData.txt"))
    white = read_property(os.path.join(args.ucd, "PropList.txt"), "White_Space")
    excluded = read_property(os.path.join(args.ucd, "DerivedNormalizationProps.txt"), "Full_Composition_Exclusion")

    def flags(cp):
        f = FLAG[cat.get(cp, "Cn")[0]]  # unassigned code points are Cn, i.e. \p{C}
        return f | (WHITESPACE if cp in white else 0)

    flag_runs = runs(flags)
    ccc_runs = runs(lambda cp: ccc.get(cp, 0))
    entries = sorted((cp, d[0], d[1] if len(d) > 1 else 0) for cp, d in decomp.items())
    # unicode.c relies on: pairs or singletons, only the first part decomposing further, at most 4 code
    # points in a full decomposition
    def full(cp):
        d = decomp.get(cp)
        return [cp] if d is None else full(d[0]) + d[1:]
    for cp, a, b in entries:
        if cp > MAX_CP or a > MAX_CP or b > MAX_CP or len(decomp[cp]) > 2 or b in decomp or len(full(cp)) > 4:
            raise SystemExit("unexpected canonical decomposition of U+%04X" % cp)
    compose = sorted((i for i, (cp, a, b) in enumerate(entries) if b and cp not in excluded),
                     key=lambda i: (entries[i][1], entries[i][2]))
    # starters (class 0) that compose with what precedes them: NFC cannot cut a text before one of these
    second_starters = sorted({entries[i][2] for i in compose if entries[i][2] not in ccc})
    if len(entries) > 0xFFFF:
        raise SystemExit("too many decompositions for uint16_t indices")

    out = []
    out.append("// Generated by scripts/gen_unicode_tables.py from the Unicode Character Database %s" % version)
    out.append("// (UnicodeData.txt, PropList.txt White_Space, DerivedNormalizationProps.txt")
    out.append("// Full_Composition_Exclusion). Do not edit; rerun the script. Layout: see the script's docstring.")
    out.append("// clang-format off")
    out.append('#include "tokenizer/unicode_tables.h"')
    out.append("")
    out.append('const char rt_uc_version[] = "%s";' % version)
    out.append("")
    out.append(c_array("const uint8_t rt_uc_ascii_flags[128]", ["0x%x" % flags(cp) for cp in range(128)], 16))
    out.append("")
    out.append("const size_t rt_uc_flag_runs_count = %d;" % len(flag_runs))
    out.append(c_array("const uint32_t rt_uc_flag_runs[%d]" % len(flag_runs),
                       ["0x%x" % (cp << 8 | v) for cp, v in flag_runs], 10))
    out.append("")
    out.append("const size_t rt_uc_ccc_runs_count = %d;" % len(ccc_runs))
    out.append(c_array("const uint32_t rt_uc_ccc_runs[%d]" % len(ccc_runs),
                       ["0x%x" % (cp << 8 | v) for cp, v in ccc_runs], 10))
    out.append("")
    out.append("const size_t rt_uc_decomp_count = %d;" % len(entries))
    out.append(c_array("const uint32_t rt_uc_decomp[%d][3]" % len(entries),
                       ["{0x%x, 0x%x, 0x%x}" % e for e in entries], 5))
    out.append("")
    out.append("const size_t rt_uc_compose_count = %d;" % len(compose))
    out.append(c_array("const uint16_t rt_uc_compose[%d]" % len(compose), [str(i) for i in compose], 16))
    out.append("")
    out.append("const size_t rt_uc_compose_second_count = %d;" % len(second_starters))
    out.append(c_array("const uint32_t rt_uc_compose_second[%d]" % len(second_starters),
                       ["0x%x" % c for c in second_starters], 10))
    out.append("// clang-format on")
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, args.out)
    print("wrote %s: Unicode %s, %d flag runs, %d ccc runs, %d decompositions, %d compositions"
          % (args.out, version, len(flag_runs), len(ccc_runs), len(entries), len(compose)))


if __name__ == "__main__":
    main()
