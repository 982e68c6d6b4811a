#!/usr/bin/env python3
"""Build the old/new tree pair for bench/delta (deterministic for a given seed).

  mktrees.py --src /usr/share/doc --extra /usr/include --old OLD --new NEW
             [--small] [--seed N] [--bin-mib 200]

old = a copy of SRC (cp -a; with --small every 4th top-level entry only) plus
      data/blob.bin, BIN_MIB MiB of seeded pseudo-random bytes.
new = cp -a of old, then (seeded, deterministic):
  * EDITS text files (regular, not *.gz, no NUL byte, 64 B .. 1 MiB) get
    1-4 hunks each: a few lines inserted (copies of lines from elsewhere in
    the same file, lightly rewritten) or a few lines removed;
  * ADDS files copied from EXTRA (real text files) into existing directories
    (a few into one new directory);
  * REMOVES regular files (not edited) deleted;
  * data/blob.bin: 1% of its 4 KiB blocks rewritten with new random bytes at
    random (unaligned) offsets, then 40 insertions of 3..400 random bytes at
    random offsets (shifting everything after them).
Edited and added files get mtime 2025-01-01T00:00:00 (so size+mtime change
detection sees them whatever their size); every other file keeps its mtime
from old (cp -a), so every tool sees the same set of changed files.
Prints a JSON summary on stdout.
"""
import argparse
import json
import os
import random
import shutil
import stat
import subprocess
import sys

FIXED_MTIME = 1735689600  # 2025-01-01T00:00:00Z


def regular_files(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return out


def real_dirs(root):
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        out.append(os.path.relpath(dirpath, root))
    return out


def is_text(path):
    size = os.path.getsize(path)
    if size < 64 or size > (1 << 20) or path.endswith(".gz"):
        return False
    with open(path, "rb") as f:
        data = f.read()
    return b"\0" not in data and data.count(b"\n") >= 4


def tree_stats(root):
    files = 0
    size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            st = os.lstat(os.path.join(dirpath, f))
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return files, size


def edit_text(rng, data):
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.6 or len(lines) < 8:
            # insert 1..12 lines: copies of other lines, words shuffled
            at = rng.randint(0, len(lines))
            new = []
            for _ in range(rng.randint(1, 12)):
                words = rng.choice(lines).split(b" ")
                rng.shuffle(words)
                new.append(b" ".join(words) + b" (rev %d)" % rng.randint(1, 999))
            lines[at:at] = new
        else:
            at = rng.randint(0, len(lines) - 4)
            del lines[at:at + rng.randint(1, 4)]
    return b"\n".join(lines)


def make_blob(rng, path, size):
    # randbytes is deterministic for a seeded Random; write in chunks.
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 << 20)
            f.write(rng.randbytes(n))
            left -= n


def edit_blob(rng, old_path, new_path):
    data = bytearray(open(old_path, "rb").read())
    size = len(data)
    blocks = size // 4096
    rewrites = max(1, blocks // 100)
    for _ in range(rewrites):
        off = rng.randrange(0, size - 4096)
        data[off:off + 4096] = rng.randbytes(4096)
    inserts = sorted((rng.randrange(0, size), rng.randint(3, 400)) for _ in range(40))
    tmp = new_path + ".tmp"
    inserted = 0
    with open(tmp, "wb") as f:
        prev = 0
        mv = memoryview(data)
        for off, n in inserts:
            f.write(mv[prev:off])
            f.write(rng.randbytes(n))
            inserted += n
            prev = off
        f.write(mv[prev:])
    os.replace(tmp, new_path)
    return rewrites, len(inserts), inserted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--extra", required=True)
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bin-mib", type=int, default=200)
    ap.add_argument("--edits", type=int, default=300)
    ap.add_argument("--adds", type=int, default=50)
    ap.add_argument("--removes", type=int, default=50)
    a = ap.parse_args()
    rng = random.Random(a.seed)

    # old
    os.makedirs(a.old)
    entries = sorted(os.listdir(a.src))
    if a.small:
        entries = entries[::4]
    # cp -a keeps modes, owners, mtimes, symlinks (even dangling ones).
    for chunk in range(0, len(entries), 200):
        subprocess.run(["cp", "-a", "--"] + [os.path.join(a.src, e) for e in entries[chunk:chunk + 200]]
                       + [a.old + "/"], check=True)
    os.makedirs(os.path.join(a.old, "data"), exist_ok=True)
    blob_old = os.path.join(a.old, "data", "blob.bin")
    make_blob(rng, blob_old, a.bin_mib << 20)
    os.utime(blob_old, (FIXED_MTIME - 86400 * 30, FIXED_MTIME - 86400 * 30))
    os.utime(os.path.join(a.old, "data"), (FIXED_MTIME - 86400 * 30, FIXED_MTIME - 86400 * 30))

    # new = cp -a old
    subprocess.run(["cp", "-a", "--", a.old, a.new], check=True)

    files = [f for f in regular_files(a.new) if f != "data/blob.bin"]
    text = [f for f in files if is_text(os.path.join(a.new, f))]
    edits = rng.sample(text, min(a.edits, len(text)))
    for rel in sorted(edits):
        p = os.path.join(a.new, rel)
        data = open(p, "rb").read()
        new = edit_text(rng, data)
        if new == data:
            new += b"\nrevised\n"
        # write to a new inode (never through a hard link into old)
        tmp = p + ".bench-tmp"
        with open(tmp, "wb") as f:
            f.write(new)
        shutil.copymode(p, tmp)
        os.replace(tmp, p)
        os.utime(p, (FIXED_MTIME, FIXED_MTIME))

    edited = set(edits)
    rest = [f for f in files if f not in edited]
    removes = rng.sample(rest, min(a.removes, len(rest)))
    for rel in sorted(removes):
        os.unlink(os.path.join(a.new, rel))

    extra = [f for f in regular_files(a.extra) if is_text(os.path.join(a.extra, f))]
    dirs = [d for d in real_dirs(a.new) if d not in (".", "data")]
    adds = rng.sample(extra, min(a.adds, len(extra)))
    newdir = os.path.join(a.new, "bench-added")
    added = []
    for i, rel in enumerate(sorted(adds)):
        if i % 10 == 0:
            os.makedirs(newdir, exist_ok=True)
            dst = os.path.join(newdir, "%02d-%s" % (i, os.path.basename(rel)))
        else:
            d = rng.choice(dirs)
            dst = os.path.join(a.new, d, "added-%02d-%s" % (i, os.path.basename(rel)))
        shutil.copyfile(os.path.join(a.extra, rel), dst)
        os.chmod(dst, 0o644)
        os.utime(dst, (FIXED_MTIME, FIXED_MTIME))
        added.append(os.path.relpath(dst, a.new))

    rewrites, inserts, inserted = edit_blob(rng, blob_old, os.path.join(a.new, "data", "blob.bin"))
    os.utime(os.path.join(a.new, "data", "blob.bin"), (FIXED_MTIME, FIXED_MTIME))

    of, osz = tree_stats(a.old)
    nf, nsz = tree_stats(a.new)
    json.dump({
        "src": a.src, "small": a.small, "seed": a.seed,
        "old_files": of, "old_bytes": osz, "new_files": nf, "new_bytes": nsz,
        "edited": len(edits), "added": len(added), "removed": len(removes),
        "blob_bytes": a.bin_mib << 20, "blob_rewrites_4k": rewrites,
        "blob_inserts": inserts, "blob_inserted_bytes": inserted,
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
