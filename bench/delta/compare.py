#!/usr/bin/env python3
"""compare.py EXPECTED ACTUAL: is ACTUAL byte for byte the tree EXPECTED?

Compares the set of paths, each path's type (file, directory, symlink), every
regular file's bytes and every symlink's target. Prints one line:
  OK  [meta: N mode, M mtime differences]      (exit 0)
  FAIL n differences: first few ...            (exit 1)
Mode and mtime differences are reported but do not fail the check (the
per-file peers do not carry metadata; the check is about content).
"""
import os
import stat
import sys


def walk(root):
    out = {}
    root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return root, out


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            y = fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def kind(st):
    if stat.S_ISREG(st.st_mode):
        return "f"
    if stat.S_ISDIR(st.st_mode):
        return "d"
    if stat.S_ISLNK(st.st_mode):
        return "l"
    return "?"


def main():
    ra, a = walk(sys.argv[1])
    rb, b = walk(sys.argv[2])
    diffs = []
    for p in sorted(set(a) - set(b)):
        diffs.append("missing " + p)
    for p in sorted(set(b) - set(a)):
        diffs.append("extra " + p)
    modes = mtimes = 0
    for p in sorted(set(a) & set(b)):
        sa, sb = a[p], b[p]
        ka, kb = kind(sa), kind(sb)
        if ka != kb:
            diffs.append("type %s %s->%s" % (p, ka, kb))
            continue
        if ka == "f":
            if sa.st_size != sb.st_size or not same_bytes(os.path.join(ra, p), os.path.join(rb, p)):
                diffs.append("content " + p)
                continue
        elif ka == "l":
            if os.readlink(os.path.join(ra, p)) != os.readlink(os.path.join(rb, p)):
                diffs.append("symlink " + p)
                continue
        if ka != "l" and stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            modes += 1
        if ka == "f" and sa.st_mtime_ns // 1000000000 != sb.st_mtime_ns // 1000000000:
            mtimes += 1
    if diffs:
        print("FAIL %d differences: %s" % (len(diffs), "; ".join(diffs[:5])))
        return 1
    print("OK (%d paths; meta: %d mode, %d file-mtime differences)" % (len(a), modes, mtimes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
