#!/usr/bin/env python3
"""table.py TREES.json RESULTS.tsv: the markdown report of bench/delta/run.

RESULTS.tsv rows: tool, peer(0/1), bytes, make_s, make_KiB, make_cpu, apply_s, apply_KiB,
apply_cpu, result, note.
Ratios and targets compare with the peers whose result is OK only.
"""
import json
import sys


def mib(b):
    return b / (1 << 20)


def main():
    t = json.load(open(sys.argv[1]))
    rows = []
    for line in open(sys.argv[2]):
        f = line.rstrip("\n").split("\t")
        if len(f) < 11:
            f += [""] * (11 - len(f))
        rows.append({
            "tool": f[0], "peer": f[1] == "1", "bytes": int(f[2] or 0),
            "make_s": float(f[3] or 0), "make_kb": int(f[4] or 0), "make_cpu": float(f[5] or 0),
            "apply_s": float(f[6] or 0), "apply_kb": int(f[7] or 0), "apply_cpu": float(f[8] or 0),
            "result": f[9], "note": f[10], "ok": f[9].startswith("OK"),
        })
    if "pair" in t:
        print("pair %s: old %d files, %.1f MiB; new %d files, %.1f MiB" % (
            t["pair"], t["old_files"], mib(t["old_bytes"]), t["new_files"], mib(t["new_bytes"])))
    else:
        what = "every 4th package of " if t["small"] else "all of "
        print("trees: old = %s%s + data/blob.bin (%d MiB random): %d files, %.1f MiB; "
              "new: %d files, %.1f MiB" % (what, t["src"], t["blob_bytes"] >> 20, t["old_files"],
                                           mib(t["old_bytes"]), t["new_files"], mib(t["new_bytes"])))
        print("edits (seed %d): %d text files edited (lines inserted/removed), %d files added, %d removed; "
              "blob: %d scattered 4 KiB rewrites + %d insertions (%d bytes)" % (
                  t["seed"], t["edited"], t["added"], t["removed"], t["blob_rewrites_4k"],
                  t["blob_inserts"], t["blob_inserted_bytes"]))
    print()
    peers = [r for r in rows if r["peer"] and r["ok"]]
    smallest = min(peers, key=lambda r: r["bytes"]) if peers else None
    print("| tool | bytes | × smallest peer | make s (CPU s) | make RSS MiB | apply s (CPU s) | apply RSS MiB | result |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        ratio = "%.2f" % (r["bytes"] / smallest["bytes"]) if smallest and smallest["bytes"] else "-"
        res = "OK" if r["ok"] else r["result"][:120].replace("|", "/")
        print("| %s | %d | %s | %.2f (%.2f) | %.1f | %.2f (%.2f) | %.1f | %s |" % (
            r["tool"].replace("|", "\\|"), r["bytes"], ratio, r["make_s"], r["make_cpu"],
            r["make_kb"] / 1024, r["apply_s"], r["apply_cpu"], r["apply_kb"] / 1024, res))
    print()
    print("Notes per row (what travels / how it was run; result details):")
    for r in rows:
        print("- %s: %s; %s" % (r["tool"], r["note"], r["result"]))
    print()
    ours = [r for r in rows if not r["peer"]]
    if not ours:
        print("targets: the cm row did not run (tools not built)")
        return
    # With run --ab the first cm row is the other build's; the targets are the --bin row's.
    main = [r for r in ours if "(--ab:" not in r["tool"]]
    o = main[0] if main else ours[0]
    print("Targets (from the issue), compared with the peers whose result is OK:")
    if not o["ok"]:
        print("- cm result is %s: every target is MISSED" % o["result"])
    if smallest:
        ratio = o["bytes"] / smallest["bytes"]
        print("- total bytes within 1.1x of the smallest peer (%s, %d): %.2fx -> %s" % (
            smallest["tool"], smallest["bytes"], ratio, "MET" if ratio <= 1.1 and o["ok"] else "MISSED"))
        fm = min(peers, key=lambda r: r["make_s"])
        print("- making faster than every peer (fastest: %s, %.2f s): %.2f s (%.2fx) -> %s" % (
            fm["tool"], fm["make_s"], o["make_s"], o["make_s"] / fm["make_s"] if fm["make_s"] else 0,
            "MET" if o["make_s"] < fm["make_s"] and o["ok"] else "MISSED"))
        fa = min(peers, key=lambda r: r["apply_s"])
        print("- applying faster than every peer (fastest: %s, %.2f s): %.2f s (%.2fx) -> %s" % (
            fa["tool"], fa["apply_s"], o["apply_s"], o["apply_s"] / fa["apply_s"] if fa["apply_s"] else 0,
            "MET" if o["apply_s"] < fa["apply_s"] and o["ok"] else "MISSED"))
    print("- (CPU seconds, less sensitive to other load on the machine: make %.2f vs fastest peer %.2f (%s); "
          "apply %.2f vs fastest peer %.2f (%s))" % (
              o["make_cpu"], min(r["make_cpu"] for r in peers), min(peers, key=lambda r: r["make_cpu"])["tool"],
              o["apply_cpu"], min(r["apply_cpu"] for r in peers), min(peers, key=lambda r: r["apply_cpu"])["tool"])
          if peers else "- (no peer OK)")
    print("- apply RSS under 64 MiB: %.1f MiB -> %s" % (
        o["apply_kb"] / 1024, "MET" if o["apply_kb"] < 64 * 1024 and o["ok"] else "MISSED"))
    # Issue 14: bytes against per-file zstd, for every cm row.
    z3 = [r for r in peers if r["tool"].startswith("zstd -3")]
    z19 = [r for r in peers if r["tool"].startswith("zstd -19")]
    for o in ours:
        for ref, lim in ((z3, 1.0), (z19, 1.15)):
            if ref and ref[0]["bytes"]:
                q = o["bytes"] / ref[0]["bytes"]
                print("- %s: bytes %.2fx %s (target <= %.2fx) -> %s" % (
                    o["tool"], q, ref[0]["tool"], lim, "MET" if q <= lim and o["ok"] else "MISSED"))


if __name__ == "__main__":
    main()
