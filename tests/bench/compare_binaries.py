#!/usr/bin/python3
"""compare_binaries: two stampd builds side by side in one interleaved run,
for a claim that a change made stampd faster (or did not make it slower).

relay_bench.py measures one build against direct and the incumbent; its
figures move by a tenth from run to run on a noisy machine, more than most
changes gain. Here the baseline (BEFORE, a build of the commit before the
change) and the candidate (AFTER) relay the same cells in the same rounds,
beside direct (smtp-source into smtp-sink with nothing between), the order
rotated each round. Each prints the median of its per-round ratios to
direct, and AFTER / BEFORE is the median of the per-round ratios of the two;
then the median of each build's own CPU per message (from /proc, 10 ms
ticks: a figure for the full counts, not --quick).

Cells (smtp-source, 20 sessions, into one smtp-sink; keys made in the run,
one config for both builds, relay_bench's [[dkim.sign]] rules): 4 KiB
unsigned and RSA-2048, 100 KiB and 5 MiB RSA-2048 + Ed25519, 5 MiB unsigned.
Both logs must show every message relayed and signed as its variant wants;
nothing here fails for being slow.

    tests/bench/compare_binaries.py BEFORE/stampd AFTER/stampd            # about 1.5 minutes on 2 cores
    tests/bench/compare_binaries.py --quick BEFORE/stampd AFTER/stampd    # tiny counts (CTest)

A build of an older commit for BEFORE: `git worktree add ../before COMMIT`
and `deploy/build.sh` there.
"""
import argparse
import collections
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))

import relay_bench as B  # noqa: E402

# (body size, messages per cell and round, signing variant)
FULL_CELLS = ((4 * B.KIB, 3000, B.UNSIGNED), (4 * B.KIB, 3000, B.RSA), (100 * B.KIB, 600, B.VARIANTS[3]),
              (5 * B.MIB, 30, B.UNSIGNED), (5 * B.MIB, 30, B.VARIANTS[3]))
QUICK_CELLS = ((4 * B.KIB, 40, B.UNSIGNED), (4 * B.KIB, 40, B.RSA), (100 * B.KIB, 10, B.VARIANTS[3]),
               (5 * B.MIB, 2, B.UNSIGNED), (5 * B.MIB, 2, B.VARIANTS[3]))
NAMES = ("before", "after")


def start(binary, sink, keys):
    """start runs binary with relay_bench's config in front of sink."""
    saved = os.environ.get("STAMPD_BIN")
    os.environ["STAMPD_BIN"] = binary
    try:
        return B.BenchStampd(sections=B.stampd_sections(sink.address, keys)).start()
    finally:
        if saved is None:
            os.environ.pop("STAMPD_BIN", None)
        else:
            os.environ["STAMPD_BIN"] = saved


def compare(before, after, cells, rounds, progress=None):
    """compare times every cell `rounds` times for direct and both builds and
    returns {"rounds", "cells": [{"size", "variant", "direct", "before",
    "after"} with msg/s per round]}."""
    progress = progress or (lambda text: None)
    workdir = tempfile.mkdtemp(prefix="stampd-compare-")
    keys = B.make_keys(workdir)
    sink = B.BenchSink().start()
    stampds = {}
    try:
        stampds = {"before": start(before, sink, keys), "after": start(after, sink, keys)}
        expected = collections.Counter()
        for s in stampds.values():  # warm-up: upstream connections, page cache, keys
            for size, count, variant in cells:
                n = max(1, min(count // 10, 100))
                B.timed_send("%s:%d" % s.address, sink, n, size, variant.domain)
                expected[(id(s), variant.domain)] += n
        results = [{"size": size, "variant": variant.name, "direct": [], "before": [], "after": [],
                    "cpu": {"before": [], "after": []}} for size, _, variant in cells]
        for rnd in range(rounds):
            for cell, (size, count, variant) in zip(results, cells):
                order = [B.Cell("direct", sink.address, sink, variant.domain, count)]
                order += [B.Cell(n, "%s:%d" % stampds[n].address, sink, variant.domain, count, stampds[n])
                          for n in NAMES]
                k = rnd % len(order)
                for timed in order[k:] + order[:k]:
                    sample = B.timed_cell(timed, size)
                    cell[timed.name].append(sample["msg_per_s"])
                    if timed.stampd is not None:
                        cell["cpu"][timed.name].append(sample["stampd_cpu_ms"])
                        expected[(id(timed.stampd), variant.domain)] += count
            progress("round %d/%d" % (rnd + 1, rounds))
        B.check_logged(stampds.values(), expected)
        return {"rounds": rounds, "cells": results}
    finally:
        for s in stampds.values():
            s.cleanup()
        sink.cleanup()


def report(results, before, after, out=sys.stdout):
    w = out.write
    w("msg/s, smtp-source -s %d -> smtp-sink on loopback (%d CPUs); median of %d interleaved rounds;\n"
      "(×) = the median of the per-round ratios to direct; after/before the median of the per-round ratios\n"
      "before: %s\nafter:  %s\n\n" % (B.SESSIONS, os.cpu_count(), results["rounds"], before, after))
    w("| body | variant | direct | before | after | after / before | stampd CPU ms/msg, before → after |\n"
      "|---|---|---|---|---|---|---|\n")
    for cell in results["cells"]:
        d = cell["direct"]
        ratio = {n: statistics.median(x / y for x, y in zip(cell[n], d)) for n in NAMES}
        gain = statistics.median(a / b for a, b in zip(cell["after"], cell["before"]))
        cpu = {n: statistics.median(cell["cpu"][n]) for n in NAMES}
        w("| %s | %s | %s | %s (%.2f×) | %s (%.2f×) | %.3f | %.3f → %.3f (%.2f) |\n"
          % (B.human_size(cell["size"]), cell["variant"], B.human_rate(statistics.median(d)),
             B.human_rate(statistics.median(cell["before"])), ratio["before"],
             B.human_rate(statistics.median(cell["after"])), ratio["after"], gain,
             cpu["before"], cpu["after"], cpu["after"] / cpu["before"] if cpu["before"] else float("nan")))
    out.flush()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", help="the baseline stampd binary")
    p.add_argument("after", help="the stampd binary with the change")
    p.add_argument("--quick", action="store_true", help="tiny counts (what CTest runs)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (full: 5; quick: 1)")
    args = p.parse_args(argv)
    for b in (args.before, args.after):
        if not os.access(b, os.X_OK):
            p.error("not an executable: " + b)
    cells = QUICK_CELLS if args.quick else FULL_CELLS
    rounds = args.rounds or (1 if args.quick else 5)
    started = time.monotonic()
    results = compare(args.before, args.after, cells, rounds,
                      lambda text: sys.stderr.write("compare_binaries: %3.0f s: %s\n"
                                                    % (time.monotonic() - started, text)))
    report(results, args.before, args.after)
    print("\n(compare_binaries took %.0f s)" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
