#!/usr/bin/python3
"""relay_bench: how much does stampd cost? Runs Postfix's smtp-source into
smtp-sink directly and through stampd in the same run, for 4 KiB and 1 MiB
messages, and prints both message rates (msg/s, MiB/s of payload) and their
ratio. Then relays one large message (200 MiB by default) through a fresh
stampd and reports its peak RSS (VmHWM from /proc), which must stay under
64 MiB because the message streams through a bounded spool.

    tests/bench/relay_bench.py                 # the full run
    tests/bench/relay_bench.py --quick         # small and fast (what CTest runs)

Needs STAMPD_BIN (or a build in STAMPD_BUILD_DIR) and the postfix package."""
import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))

from postfix_tools import SmtpSink, smtp_source  # noqa: E402
from stampd_harness import Stampd, default_sections, merge_sections, proc_kib  # noqa: E402

RSS_LIMIT_MIB = 64
MIB = 1 << 20


def start_stampd(sink, log_level="info"):
    sections = merge_sections(default_sections([sink.address]), {
        "server": {"max_message_size": "1GiB", "threads": 0, "max_connections_per_ip": 1000,
                   "command_timeout": "5m", "data_timeout": "5m"},
        "upstream": {"command_timeout": "5m", "data_timeout": "5m"},
        "log": {"level": log_level},
    })
    return Stampd(sections=sections).start()


def run_source(address, count, size, sessions):
    r, seconds = smtp_source(address, messages=count, sessions=sessions, size=size, timeout=1800)
    if r.returncode != 0 or r.stderr:
        raise RuntimeError("smtp-source failed (%s): %s" % (r.returncode, (r.stdout + r.stderr).decode(errors="replace")))
    return seconds


def measure(sink, address, count, size, sessions):
    """measure sends count messages and waits until the sink has all of them."""
    before = sink.messages()
    seconds = run_source(address, count, size, sessions)
    sink.wait_for_messages(before + count, timeout=60)
    return {"messages": count, "size": size, "sessions": sessions, "seconds": seconds,
            "msg_per_s": count / seconds, "mib_per_s": count * size / MIB / seconds}


def bench_rates(sizes, sessions, repeat, log_level):
    sink = SmtpSink().start()
    stampd = None
    try:
        stampd = start_stampd(sink, log_level)
        direct_addr = sink.address
        via_addr = "%s:%d" % stampd.address
        results = []
        for size, count in sizes:
            best = {}
            for _ in range(repeat):  # alternate so that both see the same machine
                for name, addr in (("direct", direct_addr), ("stampd", via_addr)):
                    m = measure(sink, addr, count, size, sessions)
                    if name not in best or m["seconds"] < best[name]["seconds"]:
                        best[name] = m
            results.append({"size": size, "count": count, "direct": best["direct"], "stampd": best["stampd"],
                            "ratio": best["stampd"]["msg_per_s"] / best["direct"]["msg_per_s"]})
        relayed = len(stampd.messages(outcome="relayed"))
        expected = sum(count for _, count in sizes) * repeat
        if relayed != expected:
            raise RuntimeError("stampd relayed %d of %d messages" % (relayed, expected))
        return results
    finally:
        if stampd:
            stampd.cleanup()
        sink.cleanup()


def bench_peak_rss(size):
    """bench_peak_rss relays one message of size bytes through a fresh stampd
    and returns its VmHWM (and VmRSS samples) in KiB."""
    sink = SmtpSink().start()
    stampd = None
    try:
        stampd = start_stampd(sink)
        idle_hwm = proc_kib(stampd.pid, "VmHWM")
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    samples.append(proc_kib(stampd.pid, "VmRSS"))
                except (OSError, KeyError):
                    return
                time.sleep(0.05)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        seconds = run_source("%s:%d" % stampd.address, 1, size, 1)
        sink.wait_for_messages(1, timeout=120)
        stop.set()
        t.join()
        peak = proc_kib(stampd.pid, "VmHWM")
        ev = stampd.wait_for_event("message", timeout=30)[0]
        if ev["outcome"] != "relayed":
            raise RuntimeError("the large message was not relayed: %s" % ev)
        return {"size": size, "seconds": seconds, "idle_hwm_kib": idle_hwm, "peak_hwm_kib": peak,
                "max_sampled_rss_kib": max(samples) if samples else None,
                "message_size_logged": int(ev["size"])}
    finally:
        if stampd:
            stampd.cleanup()
        sink.cleanup()


def human(size):
    return "%d MiB" % (size // MIB) if size >= MIB else "%d KiB" % (size // 1024)


def report(rates, rss, out=sys.stdout):
    w = out.write
    w("\nsmtp-source -> smtp-sink, directly and through stampd (same run, best of runs)\n")
    w("%-8s %6s %5s | %10s %9s | %10s %9s | %7s\n" % ("size", "msgs", "sess", "direct/s", "MiB/s",
                                                       "stampd/s", "MiB/s", "ratio"))
    for r in rates:
        d, s = r["direct"], r["stampd"]
        w("%-8s %6d %5d | %10.1f %9.1f | %10.1f %9.1f | %6.2fx\n" % (
            human(r["size"]), r["count"], d["sessions"], d["msg_per_s"], d["mib_per_s"],
            s["msg_per_s"], s["mib_per_s"], r["ratio"]))
    if rss:
        w("\none %s message through stampd in %.1fs: peak RSS (VmHWM) %.1f MiB "
          "(idle %.1f MiB, limit %d MiB)\n" % (human(rss["size"]), rss["seconds"], rss["peak_hwm_kib"] / 1024,
                                              rss["idle_hwm_kib"] / 1024, RSS_LIMIT_MIB))
    out.flush()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small counts (for CTest)")
    p.add_argument("--small-count", type=int, help="4 KiB messages per run (default 2000; quick 200)")
    p.add_argument("--large-count", type=int, help="1 MiB messages per run (default 200; quick 10)")
    p.add_argument("--sessions", type=int, default=10, help="parallel smtp-source sessions (default 10)")
    p.add_argument("--repeat", type=int, help="runs per size, best kept (default 2; quick 1)")
    p.add_argument("--big-mib", type=int, default=200, help="size of the peak-RSS message in MiB (0: skip)")
    p.add_argument("--log-level", default="info", help="stampd log level during the rate runs")
    p.add_argument("--json", help="also write the results to this file")
    a = p.parse_args(argv)
    small = a.small_count or (200 if a.quick else 2000)
    large = a.large_count or (10 if a.quick else 200)
    repeat = a.repeat or (1 if a.quick else 2)
    rates = bench_rates([(4096, small), (MIB, large)], a.sessions, repeat, a.log_level)
    rss = bench_peak_rss(a.big_mib * MIB) if a.big_mib else None
    report(rates, rss)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rates": rates, "peak_rss": rss}, f, indent=2)
    if rss and rss["peak_hwm_kib"] >= RSS_LIMIT_MIB * 1024:
        print("FAIL: peak RSS %.1f MiB >= %d MiB" % (rss["peak_hwm_kib"] / 1024, RSS_LIMIT_MIB))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
