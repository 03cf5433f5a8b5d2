#!/usr/bin/python3
"""relay_bench: what stampd costs, measured in one interleaved run beside
smtp-sink with nothing in between ("direct") and beside the incumbent,
Postfix + OpenDKIM (issue 14). It prints:

1. msg/s for 4 KiB, 100 KiB and 5 MiB bodies (Postfix's smtp-source, 20
   sessions, into smtp-sink on loopback): direct, and through stampd
   unsigned, Ed25519, RSA-2048 and RSA-2048 + Ed25519 (two signatures), each
   with its ratio to direct; and per cell what a message cost in CPU, from
   /proc: the whole machine's (every process, this script's included) with
   the share of the CPUs busy meanwhile, and stampd's own. A ratio moves
   with the host (its scheduler, its system calls); stampd's CPU per
   message is the figure a change to stampd moves;
2. the incumbent at 4 KiB: smtp-source -> a private Postfix whose smtpd
   calls OpenDKIM (milter on a unix socket, the same RSA-2048 key) ->
   smtp-sink, timed until the sink has every message; and stampd RSA-2048 /
   incumbent;
3. idle sessions: stampd's RSS at rest and with 2,000 client sessions open
   (EHLO done, then idle), KiB per session, and the upstream connections
   stampd holds meanwhile;
4. the added latency: p50 and p99 of MAIL-to-final-250 per 4 KiB unsigned
   message, paced at half of stampd's measured peak (tests/bench/paced_smtp.py
   over 20 sessions, after an uncounted second of warm-up), through stampd
   and direct, and their difference;
5. the `[server] threads` models: 4 KiB unsigned with threads = 1 and 2
   (the table's stampd runs the default, 0 = one per core); and what
   `[dkim] self_verify = "all"` costs: 4 KiB RSA-2048 through a stampd that
   verifies every signature it makes, as a share of RSA-2048 without;
6. the peak RSS (VmHWM) of a fresh stampd relaying one 200 MiB message, which
   must stay under 64 MiB (the spool is bounded): the script fails otherwise.

Machines are noisy, so parts 1, 2 and 5 are one loop: each round measures
every cell once, in an order rotated from round to round, and each cell
prints the median of its rounds; a ratio is the median of the per-round
ratios (direct and the variant measured minutes, not hours, apart). One
stampd serves all four signing variants: its rules pick the keys by the From
domain, which smtp-source takes from its sender (-f sender@rsa.example
and so on). The keys are made in the run (`stampd genkey`). Before timing,
one message per variant goes through a stampd with the same config, and one
through the incumbent, into a dumping smtp-sink, and dkimpy verifies their
signatures: the run stops if a variant (or OpenDKIM) does not sign as it
should. After the loop, each stampd's log must show every message relayed
and signed with the variant's keys. Benchmarks print numbers; nothing here
fails for being slow.

How to run (as root: the private Postfix switches users; needs the test
packages of deploy/install-deps.sh: postfix, opendkim, python3-dkim,
python3-nacl) after building stampd (deploy/build.sh):

    tests/bench/relay_bench.py                 # full run, 3 to 4 minutes on 2 cores
    tests/bench/relay_bench.py --quick         # tiny sizes, well under 30 s (what CTest runs)
    tests/bench/relay_bench.py --rounds 7 --json results.json

The stampd binary is STAMPD_BIN, else STAMPD_BUILD_DIR/stampd, else build/stampd.
CTest runs the quick mode (tests/bench/test_relay_bench.py, label bench),
which checks that messages arrive and are signed, not how fast. Without
opendkim or root the incumbent is left out (and the script exits 1 under
CI=true, where a missing tool is a failure)."""
import argparse
import collections
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))

import dkim_verifiers  # noqa: E402
from opendkim_milter import OpenDkimMilter  # noqa: E402
from postfix_instance import PostfixInstance  # noqa: E402
from postfix_tools import SmtpSink, parse_dump, smtp_source  # noqa: E402
from stampd_harness import (Stampd, cpu_seconds, default_sections, make_key, merge_sections,  # noqa: E402
                            parse_log_line, proc_kib, stampd_bin)

RSS_LIMIT_MIB = 64
KIB = 1 << 10
MIB = 1 << 20
SESSIONS = 20
PACED_CLIENT = os.path.join(HERE, "paced_smtp.py")
RECIPIENT = "rcpt@example.net"
UPSTREAM_CONNECTIONS = 50  # [upstream] max_connections (its default)

# The signing variants (the table's columns): one stampd serves them all, its
# [[dkim.sign]] rules picking the keys by the From domain.
Variant = collections.namedtuple("Variant", "name domain keys")
VARIANTS = (
    Variant("unsigned", "unsigned.example", ()),
    Variant("Ed25519", "ed.example", ("ed",)),
    Variant("RSA-2048", "rsa.example", ("rsa",)),
    Variant("RSA+Ed25519", "both.example", ("both-rsa", "both-ed")),
)
# [[dkim.key]] name -> (domain, selector, stampd genkey --algorithm)
KEYS = {
    "ed": ("ed.example", "ed", "ed25519"),
    "rsa": ("rsa.example", "rsa", "rsa-2048"),
    "both-rsa": ("both.example", "rsa", "rsa-2048"),
    "both-ed": ("both.example", "ed", "ed25519"),
}
ALGORITHM_OF = {"rsa-2048": "rsa-sha256", "ed25519": "ed25519-sha256"}
UNSIGNED = VARIANTS[0]
RSA = VARIANTS[2]
DIRECT = "direct"
INCUMBENT = "Postfix+OpenDKIM"
THREADS = (1, 2)
SELF_VERIFY = "RSA-2048 self_verify=all"

# Counts per cell: each cell takes about 1 to 4 s in the full run.
Profile = collections.namedtuple(
    "Profile", "sizes incumbent_count threads_count rounds idle_sessions warmup "
               "latency_seconds latency_rounds big_mib")
FULL = Profile(sizes=((4 * KIB, 4000), (100 * KIB, 1000), (5 * MIB, 60)), incumbent_count=1000,
               threads_count=4000, rounds=5, idle_sessions=2000, warmup=200, latency_seconds=4.0,
               latency_rounds=3, big_mib=200)
QUICK = Profile(sizes=((4 * KIB, 100), (100 * KIB, 20), (5 * MIB, 2)), incumbent_count=40,
                threads_count=100, rounds=2, idle_sessions=50, warmup=20, latency_seconds=0.5,
                latency_rounds=1, big_mib=200)


# --- peers with cheap readers ---------------------------------------------------------
#
# smtp-sink -c prints its counters at every message and stampd logs a line per
# message: thousands of writes a second. The readers below take them in
# batches and keep only counts and a tail, so that the benchmark's own
# threads cost little CPU beside what they measure.

_COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")
_OUTCOME = re.compile(rb"event=message [^\n]*?outcome=(\w+)")
_DKIM_KEYS = re.compile(rb"dkim_keys=(\S+)")


class BenchSink(SmtpSink):
    """BenchSink is an SmtpSink whose counters are parsed as they arrive
    (in batches) instead of from the whole output."""

    def _read(self):
        tail = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            tail = (tail + chunk)[-512:]
            found = _COUNTERS.findall(tail)
            with self._lock:
                self._out = [tail.decode("latin-1")]
                if found:
                    self._last = tuple(map(int, found[-1]))
            time.sleep(0.002)

    def counters(self):
        with self._lock:
            s, q, m = getattr(self, "_last", (0, 0, 0))
        return {"sessions": s, "quits": q, "messages": m}


class BenchStampd(Stampd):
    """BenchStampd is a Stampd whose log is counted as it arrives: messages by
    outcome and by the keys that signed them (dkim_keys=), plus the last lines."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lines = collections.deque(maxlen=200)
        self.outcomes = collections.Counter()
        self.signed_by = collections.Counter()

    def _read_log(self):
        pending = b""
        while True:
            chunk = self.proc.stderr.read1(65536)
            if not chunk:
                break
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            complete, pending = pending[:cut], pending[cut:]
            if not complete:
                continue
            outcomes = collections.Counter(_OUTCOME.findall(complete))
            signed = collections.Counter(_DKIM_KEYS.findall(complete))
            listening = []
            if b"event=listening" in complete:
                for line in complete.split(b"\n"):
                    ev = parse_log_line(line.decode("utf-8", "replace"))
                    if ev and ev.get("event") == "listening":
                        host, _, port = ev["address"].rpartition(":")
                        listening.append((host.strip("[]"), int(port)))
            with self._cond:
                self.lines.extend(l + "\n" for l in complete.decode("utf-8", "replace").split("\n")[-200:] if l)
                self.outcomes.update({k.decode(): v for k, v in outcomes.items()})
                self.signed_by.update({k.decode(): v for k, v in signed.items()})
                self.addresses.extend(listening)
                self._cond.notify_all()
            time.sleep(0.002)
        with self._cond:
            self._reader_done = True
            self._cond.notify_all()

    def wait_for_counts(self, relayed, signed_by, timeout=30.0):
        """wait_for_counts waits until the log shows `relayed` messages relayed
        and signed_by (keys text -> n) signatures; AssertionError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = dict(self.outcomes), dict(self.signed_by)
                if got == ({"relayed": relayed} if relayed else {}, signed_by):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("stampd (threads=%s) logged outcomes %s and signatures %s; expected "
                                         "%d relayed and %s; log tail:\n%s"
                                         % (self.sections["server"]["threads"], got[0], got[1], relayed,
                                            signed_by, "".join(list(self.lines)[-20:])))
                self._cond.wait(min(left, 0.1))


# --- configuration and keys -----------------------------------------------------------

def make_keys(directory):
    """make_keys runs `stampd genkey` for every key in KEYS and returns
    {name: (private key path, DNS record path)}."""
    out = {}
    for name, (domain, selector, algorithm) in KEYS.items():
        out[name] = make_key(os.path.join(directory, domain), domain, selector, algorithm)
    return out


def dns_records(keys):
    """dns_records returns the keys' TXT records as {"sel._domainkey.dom": "v=DKIM1; ..."}."""
    records = {}
    for _, txt in keys.values():
        with open(txt) as f:
            records.update(dkim_verifiers.records_for(f.read().splitlines()))
    return records


def stampd_sections(upstream, keys, threads=0, connections=100, log_level="info", self_verify="off"):
    """stampd_sections is the benchmark's config: the test defaults, large
    limits and timeouts, `connections` clients allowed (from one address),
    and a [[dkim.sign]] rule per signing variant."""
    sections = merge_sections(default_sections([upstream]), {
        "server": {"max_message_size": "1GiB", "threads": threads, "max_connections": connections,
                   "max_connections_per_ip": connections, "command_timeout": "5m", "data_timeout": "5m"},
        "upstream": {"command_timeout": "5m", "data_timeout": "5m", "max_connections": UPSTREAM_CONNECTIONS},
        "log": {"level": log_level},
    })
    sections["dkim"] = {
        "self_verify": self_verify,
        "key": [{"name": name, "domain": KEYS[name][0], "selector": KEYS[name][1], "private_key": paths[0]}
                for name, paths in keys.items()],
        "sign": [{"from": "*@" + v.domain, "keys": list(v.keys)} for v in VARIANTS if v.keys],
    }
    return sections


def logged_keys(variant):
    """logged_keys is the dkim_keys= field stampd logs for a message signed as variant wants."""
    return ",".join("%s:%s" % KEYS[k][:2] for k in variant.keys)


def sender(domain):
    return "sender@" + domain


# --- one timed run --------------------------------------------------------------------

def run_source(address, count, size, from_domain, sessions=SESSIONS):
    """run_source runs smtp-source and raises when it reports an error."""
    r, _ = smtp_source(address, messages=count, sessions=sessions, size=size, sender=sender(from_domain),
                       recipient=RECIPIENT, timeout=1800)
    if r.returncode != 0 or r.stderr:
        raise RuntimeError("smtp-source to %s failed (%s): %s" % (address, r.returncode,
                                                                (r.stdout + r.stderr).decode(errors="replace")))


def timed_send(address, sink, count, size, from_domain, queueing=False, timeout=600.0):
    """timed_send sends count messages of size bytes with smtp-source (20
    sessions), waits until sink has counted all of them, and returns the
    seconds the messages took and the seconds smtp-source took. For a relay
    without a queue (stampd, or the sink itself) both are smtp-source's time:
    its last 250 came after the sink had the message. For a queueing MTA
    (queueing=True) the first is the time until the sink had the last one."""
    before = sink.messages()
    start = time.monotonic()
    run_source(address, count, size, from_domain)
    source_seconds = time.monotonic() - start
    deadline = start + timeout
    while sink.messages() < before + count:
        if time.monotonic() > deadline:
            raise RuntimeError("the sink counted %d of %d messages sent to %s"
                               % (sink.messages() - before, count, address))
        time.sleep(0.002)
    return (time.monotonic() - start if queueing else source_seconds), source_seconds


class Cell:
    """Cell is one thing timed each round: a name, where smtp-source sends
    (address), the sink its messages reach, the From domain, the message
    count, the stampd behind it (None for direct and the incumbent), and
    whether a queue stands between (the incumbent)."""

    def __init__(self, name, address, sink, domain, count, stampd=None, queueing=False):
        self.name, self.address, self.sink, self.domain = name, address, sink, domain
        self.count, self.stampd, self.queueing = count, stampd, queueing


# --- CPU accounting -------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks():
    """machine_ticks is (busy, steal, all) clock ticks of every CPU so far,
    from /proc/stat: busy is user, nice, system, irq and softirq (guest time
    is in user already); steal is what the hypervisor gave to others while
    we wanted to run (a noisy host), counted in all, not in busy."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = [int(x) for x in f.readline().split()[1:9]]
    return user + nice + system + irq + softirq, steal, user + nice + system + idle + iowait + irq + softirq + steal


def timed_cell(cell, size):
    """timed_cell times one cell (timed_send) and returns its sample: the
    rate, and what it cost: the whole machine's CPU per message (every
    process: smtp-source, the sink, stampd or Postfix, this script), the
    shares of the machine busy and stolen by the hypervisor meanwhile, and
    stampd's own CPU per message."""
    pid = cell.stampd.proc.pid if cell.stampd is not None else None
    busy0, steal0, all0 = machine_ticks()
    own0 = cpu_seconds(pid) if pid else 0
    seconds, source_seconds = timed_send(cell.address, cell.sink, cell.count, size, cell.domain, cell.queueing)
    busy1, steal1, all1 = machine_ticks()
    sample = {"seconds": seconds, "source_seconds": source_seconds, "count": cell.count,
              "msg_per_s": cell.count / seconds, "mib_per_s": cell.count * size / MIB / seconds,
              "machine_cpu_ms": (busy1 - busy0) * 1000.0 / TICKS / cell.count,
              "busy_share": (busy1 - busy0) / max(1, all1 - all0),
              "steal_share": (steal1 - steal0) / max(1, all1 - all0)}
    if pid:
        sample["stampd_cpu_ms"] = (cpu_seconds(pid) - own0) * 1000.0 / cell.count
    return sample


# --- the incumbent ------------------------------------------------------------------

class Incumbent:
    """Incumbent is Postfix + OpenDKIM as the classic how-to wires them: a
    private Postfix instance whose smtpd calls OpenDKIM's milter on a unix
    socket, relaying to sink (relayhost). Mail for check.invalid goes to
    check_sink instead (transport_maps), for the signature check."""

    CHECK_RECIPIENT = "check@check.invalid"

    def __init__(self, key, domain, selector, sink, check_sink):
        self.milter = OpenDkimMilter(domain, selector, key)
        self.postfix = None
        try:
            self.postfix = PostfixInstance(mailbox_domains=("mailbox.invalid",), main_cf_extra="")
            transport = os.path.join(self.postfix.dir, "transport")
            with open(transport, "w") as f:
                f.write("check.invalid smtp:[127.0.0.1]:%d\n" % check_sink.port)
            os.chmod(transport, 0o644)
            self.postfix.main_cf_extra = "\n".join([
                "relayhost = [127.0.0.1]:%d" % sink.port,
                "transport_maps = texthash:" + transport,
                "smtpd_milters = " + self.milter.postfix_address,
                "milter_protocol = 6",
                # A milter that does not answer must not let mail out unsigned.
                "milter_default_action = tempfail",
            ])
        except BaseException:
            self.milter.cleanup()
            raise

    @property
    def address(self):
        return "127.0.0.1:%d" % self.postfix.port

    def start(self):
        self.milter.start()
        self.postfix.start()
        return self

    def cleanup(self):
        if self.postfix is not None:
            self.postfix.cleanup()
        self.milter.cleanup()


# --- signature check ------------------------------------------------------------------

def dump_by_sender(sink, expected):
    """dump_by_sender waits for `expected` dumps in sink and returns
    {envelope sender: message bytes with CRLF lines}."""
    sink.wait_for_messages(expected, timeout=60)
    deadline = time.monotonic() + 10
    while len(sink.dumps()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)  # the dump file is closed just after the dot is counted
    out = {}
    for data in sink.dumps():
        headers, message = parse_dump(data)
        mail_from = headers["X-Mail-Args"][0].split()[0].strip("<>")
        out[mail_from] = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return out


def describe_signatures(message, records):
    """describe_signatures returns [(algorithm, d=, status)] as dkimpy verifies message."""
    return sorted((r.algorithm, r.domain, r.status) for r in dkim_verifiers.verify("dkimpy", message, records))


def check_signatures(keys, incumbent, incumbent_sink):
    """check_signatures sends one 4 KiB message per variant through a stampd
    with the benchmark's config (and one through the incumbent) into a
    dumping sink and verifies them with dkimpy. Returns {variant: [(algorithm,
    d=, status)]}; RuntimeError when a variant is not signed as it should be."""
    ok, why = dkim_verifiers.available("dkimpy")
    if not ok:
        raise unittest.SkipTest(why)
    records = dns_records(keys)
    sink = SmtpSink(dump=True).start()
    stampd = None
    found = {}
    try:
        stampd = Stampd(sections=stampd_sections(sink.address, keys, threads=1)).start()
        for v in VARIANTS:
            run_source("%s:%d" % stampd.address, 1, 4 * KIB, v.domain, sessions=1)
        messages = dump_by_sender(sink, len(VARIANTS))
        for v in VARIANTS:
            found[v.name] = describe_signatures(messages[sender(v.domain)], records)
    finally:
        if stampd:
            stampd.cleanup()
        sink.cleanup()
    if incumbent is not None:
        r, _ = smtp_source(incumbent.address, messages=1, size=4 * KIB, sender=sender(RSA.domain),
                           recipient=Incumbent.CHECK_RECIPIENT)
        if r.returncode != 0:
            raise RuntimeError("smtp-source to Postfix failed: %s" % (r.stdout + r.stderr).decode(errors="replace"))
        found[INCUMBENT] = describe_signatures(dump_by_sender(incumbent_sink, 1)[sender(RSA.domain)], records)
    wanted = {v.name: sorted((ALGORITHM_OF[KEYS[k][2]], v.domain, "pass") for k in v.keys) for v in VARIANTS}
    if incumbent is not None:
        wanted[INCUMBENT] = [("rsa-sha256", RSA.domain, "pass")]
    if found != wanted:
        raise RuntimeError("signatures are not as the benchmark needs them:\nfound  %s\nwanted %s"
                           % (found, wanted))
    return found


# --- parts 1, 2, 5: rates, in one interleaved loop -------------------------------------

def start_incumbent(keys, sink, check_sink, skipped):
    """start_incumbent starts Postfix + OpenDKIM with the RSA-2048 key, or
    returns None and notes in skipped why it cannot run here."""
    try:
        incumbent = Incumbent(keys["rsa"][0], RSA.domain, KEYS["rsa"][1], sink, check_sink)
    except unittest.SkipTest as e:
        skipped[INCUMBENT] = str(e)
        return None
    try:
        return incumbent.start()
    except BaseException:
        incumbent.cleanup()
        raise


def plan_cells(profile, sink, stampds, incumbent, incumbent_sink):
    """plan_cells returns [(size, [Cell])]: per body size direct and the
    signing variants (on the default stampd, stampds[0]); at 4 KiB also
    the other threads settings and the incumbent."""
    main = stampds[0]
    address = "%s:%d" % main.address
    plans = []
    for size, count in profile.sizes:
        cells = [Cell(DIRECT, sink.address, sink, UNSIGNED.domain, count)]
        cells += [Cell(v.name, address, sink, v.domain, count, main) for v in VARIANTS]
        if size == 4 * KIB:
            for threads in THREADS:
                s = stampds[threads]
                cells.append(Cell("threads=%d" % threads, "%s:%d" % s.address, sink, UNSIGNED.domain,
                                  profile.threads_count, s))
            s = stampds[SELF_VERIFY]
            cells.append(Cell(SELF_VERIFY, "%s:%d" % s.address, sink, RSA.domain, profile.threads_count, s))
            if incumbent is not None:
                cells.append(Cell(INCUMBENT, incumbent.address, incumbent_sink, RSA.domain,
                                  profile.incumbent_count, queueing=True))
        plans.append((size, cells))
    return plans


def warm_up(plans, count, expected):
    """warm_up sends count untimed 4 KiB messages to each stampd and to the
    incumbent: the stampds open their pooled upstream connections, Postfix
    spawns its smtpd and smtp processes. expected counts what each stampd
    relayed ((id(stampd), From domain) -> n)."""
    warmed = set()
    for cell in plans[0][1]:
        if cell.name != DIRECT and cell.address not in warmed:
            warmed.add(cell.address)
            timed_send(cell.address, cell.sink, count, 4 * KIB, cell.domain, cell.queueing)
            if cell.stampd is not None:
                expected[(id(cell.stampd), cell.domain)] += count


def check_logged(stampds, expected):
    """check_logged waits until each stampd's log shows every message it got
    relayed, and those of the signing variants signed with their keys."""
    for s in stampds:
        relayed = sum(n for (sid, _), n in expected.items() if sid == id(s))
        signed = {logged_keys(v): expected[(id(s), v.domain)] for v in VARIANTS
                  if v.keys and expected[(id(s), v.domain)]}
        s.wait_for_counts(relayed, signed)


def bench_rates(profile, keys, progress=None):
    """bench_rates checks the signatures, then times every cell
    profile.rounds times, the order rotated each round. Returns {"rounds",
    "cells": {size: {name: [{"seconds", "source_seconds", "count",
    "msg_per_s", "mib_per_s"}, one per round]}}, "signatures" (see
    check_signatures), "skipped": {part: why}, "threads_auto"}."""
    progress = progress or (lambda text: None)
    skipped = {}
    sink = BenchSink().start()
    incumbent_sink = BenchSink().start()
    check_sink = SmtpSink(dump=True).start()
    stampds = {}
    incumbent = None
    try:
        incumbent = start_incumbent(keys, incumbent_sink, check_sink, skipped)
        progress("Postfix+OpenDKIM started" if incumbent else "Postfix+OpenDKIM left out: " + skipped[INCUMBENT])
        signatures = check_signatures(keys, incumbent, check_sink)
        progress("signatures checked")
        for threads in (0,) + THREADS:
            stampds[threads] = BenchStampd(sections=stampd_sections(sink.address, keys, threads)).start()
        stampds[SELF_VERIFY] = BenchStampd(sections=stampd_sections(sink.address, keys,
                                                                    self_verify="all")).start()
        plans = plan_cells(profile, sink, stampds, incumbent, incumbent_sink)
        expected = collections.Counter()
        warm_up(plans, profile.warmup, expected)
        samples = {size: collections.defaultdict(list) for size, _ in plans}
        for rnd in range(profile.rounds):
            started = time.monotonic()
            for size, cells in plans:
                k = rnd % len(cells)
                for cell in cells[k:] + cells[:k]:
                    samples[size][cell.name].append(timed_cell(cell, size))
                    if cell.stampd is not None:
                        expected[(id(cell.stampd), cell.domain)] += cell.count
            progress("round %d/%d took %.0f s" % (rnd + 1, profile.rounds, time.monotonic() - started))
        check_logged(stampds.values(), expected)
        return {"rounds": profile.rounds, "cells": {size: dict(c) for size, c in samples.items()},
                "signatures": signatures, "skipped": skipped, "threads_auto": os.cpu_count()}
    finally:
        for s in stampds.values():
            s.cleanup()
        if incumbent is not None:
            incumbent.cleanup()
        for s in (sink, incumbent_sink, check_sink):
            s.cleanup()


def median_rate(samples):
    return statistics.median(s["msg_per_s"] for s in samples)


def median_ratio(samples, base):
    """median_ratio is the median over rounds of samples' rate / base's rate in the same round."""
    return statistics.median(s["msg_per_s"] / b["msg_per_s"] for s, b in zip(samples, base))


# --- part 3: idle sessions ------------------------------------------------------------

def raise_fd_limit(needed):
    """raise_fd_limit lifts RLIMIT_NOFILE (soft, and hard when allowed) to at
    least needed, for us and the processes we start; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            needed = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def socket_inodes(pid):
    out = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def established(pid, local_port=None, remote_port=None):
    """established counts pid's established TCP connections with that local
    or remote port (from /proc/net/tcp and tcp6: no tool needed)."""
    inodes = socket_inodes(pid)
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "01" or fields[9] not in inodes:  # 01: ESTABLISHED
                continue
            if local_port is not None and int(fields[1].rsplit(":", 1)[1], 16) != local_port:
                continue
            if remote_port is not None and int(fields[2].rsplit(":", 1)[1], 16) != remote_port:
                continue
            n += 1
    return n


def read_reply(sock):
    """read_reply reads one SMTP reply (all its lines) from a blocking socket."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("stampd closed an idle session: %r" % data)
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and any(l[3:4] == b" " for l in lines[:-1]):
            return data


def open_idle_sessions(address, n):
    """open_idle_sessions opens n sessions to address, each greeted and past
    EHLO, and returns their sockets (the caller closes them)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(address, timeout=30)
            socks.append(s)
            if not read_reply(s).startswith(b"220"):
                raise RuntimeError("no greeting on an idle session")
            s.sendall(b"EHLO client.test\r\n")
            if not read_reply(s).startswith(b"250"):
                raise RuntimeError("EHLO refused on an idle session")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def bench_idle_sessions(keys, n, warmup):
    """bench_idle_sessions starts a fresh stampd (the default threads),
    relays `warmup` messages over 20 sessions so that it is at rest as a
    working daemon is, then opens n idle sessions; returns its VmRSS before
    and with them, the sessions it holds and the upstream connections open."""
    raise_fd_limit(n + 1024)
    sink = BenchSink().start()
    stampd = None
    socks = []
    try:
        sections = stampd_sections(sink.address, keys, threads=0, connections=n + 100)
        stampd = BenchStampd(sections=sections).start()
        timed_send("%s:%d" % stampd.address, sink, warmup, 4 * KIB, UNSIGNED.domain)
        time.sleep(0.5)
        rest = proc_kib(stampd.pid, "VmRSS")
        socks = open_idle_sessions(stampd.address, n)
        time.sleep(1.0)
        held = proc_kib(stampd.pid, "VmRSS")
        clients = established(stampd.pid, local_port=stampd.port)
        upstream = established(stampd.pid, remote_port=sink.port)
        return {"sessions": n, "rss_rest_kib": rest, "rss_with_kib": held,
                "kib_per_session": (held - rest) / n, "client_connections": clients,
                "upstream_connections": upstream, "upstream_max_connections": UPSTREAM_CONNECTIONS,
                "warmup_messages": warmup}
    finally:
        for s in socks:
            s.close()
        if stampd:
            stampd.cleanup()
        sink.cleanup()


# --- part 4: latency at half of peak -----------------------------------------------------

def percentile(values, p):
    """percentile is the nearest-rank p-th percentile of values."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))]


def paced(address, rate, seconds):
    """paced runs paced_smtp.py in a process of its own and returns its result."""
    cmd = [sys.executable, PACED_CLIENT, "--address", address, "--rate", str(rate), "--seconds", str(seconds),
           "--connections", str(SESSIONS), "--size", str(4 * KIB), "--sender", sender(UNSIGNED.domain),
           "--recipient", RECIPIENT]
    r = subprocess.run(cmd, capture_output=True, timeout=seconds * 20 + 60)
    if r.returncode != 0:
        raise RuntimeError("paced_smtp.py failed: %s" % (r.stdout + r.stderr).decode(errors="replace"))
    return json.loads(r.stdout)


def bench_latency(keys, rate, seconds, rounds):
    """bench_latency paces 4 KiB unsigned messages at rate per second,
    alternately direct and through a stampd (the default threads), for
    `rounds` rounds of `seconds` each after one uncounted second per target
    (the warm-up); returns per target the pooled
    latencies' p50 and p99 (ms), and the achieved rates."""
    sink = BenchSink().start()
    stampd = None
    try:
        stampd = BenchStampd(sections=stampd_sections(sink.address, keys, threads=0)).start()
        targets = ((DIRECT, sink.address), ("stampd", "%s:%d" % stampd.address))
        # A second at the rate first, not counted: a fresh stampd opens its
        # upstream connections during its first messages, which is start-up,
        # not the steady state the percentiles describe.
        warm_up_messages = {name: len(paced(address, rate, 1.0)["latencies"]) for name, address in targets}
        runs = collections.defaultdict(list)
        for rnd in range(rounds):
            for name, address in targets[rnd % 2:] + targets[:rnd % 2]:
                runs[name].append(paced(address, rate, seconds))
        out = {"rate": rate, "seconds": seconds, "rounds": rounds}
        for name, results in runs.items():
            latencies = [l for r in results for l in r["latencies"]]
            out[name] = {"messages": len(latencies), "p50_ms": percentile(latencies, 50) * 1000,
                         "p99_ms": percentile(latencies, 99) * 1000,
                         "achieved_rate": statistics.median(r["rate"] for r in results),
                         "queued": sum(r["queued"] for r in results)}
        stampd.wait_for_counts(out["stampd"]["messages"] + warm_up_messages["stampd"], {})
        out["added_p50_ms"] = out["stampd"]["p50_ms"] - out[DIRECT]["p50_ms"]
        out["added_p99_ms"] = out["stampd"]["p99_ms"] - out[DIRECT]["p99_ms"]
        return out
    finally:
        if stampd:
            stampd.cleanup()
        sink.cleanup()


# --- part 6: one large message --------------------------------------------------------

def bench_peak_rss(size):
    """bench_peak_rss relays one message of size bytes through a fresh stampd
    and returns its VmHWM (and VmRSS samples) in KiB."""
    sink = SmtpSink().start()
    stampd = None
    try:
        stampd = Stampd(sections=merge_sections(default_sections([sink.address]), {
            "server": {"max_message_size": "1GiB", "threads": 0, "command_timeout": "5m", "data_timeout": "5m"},
            "upstream": {"command_timeout": "5m", "data_timeout": "5m"},
            "log": {"level": "info"},
        })).start()
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
        started = time.monotonic()
        r, _ = smtp_source("%s:%d" % stampd.address, messages=1, sessions=1, size=size, timeout=1800)
        if r.returncode != 0 or r.stderr:
            raise RuntimeError("smtp-source failed: %s" % (r.stdout + r.stderr).decode(errors="replace"))
        sink.wait_for_messages(1, timeout=120)
        seconds = time.monotonic() - started
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


# --- the whole run and its report -----------------------------------------------------

def run(profile, progress=None):
    """run measures every part with profile's sizes and returns the results
    (what report prints; --json writes them)."""
    progress = progress or (lambda text: None)
    workdir = tempfile.mkdtemp(prefix="stampd-bench-")
    try:
        keys = make_keys(os.path.join(workdir, "keys"))
        version = subprocess.run([stampd_bin(), "--version"], capture_output=True, text=True).stdout.strip()
        results = {"stampd": version, "cpus": os.cpu_count(), "sessions": SESSIONS}
        progress("rates: %d rounds" % profile.rounds)
        results["rates"] = bench_rates(profile, keys, progress)
        peak = median_rate(results["rates"]["cells"][4 * KIB][UNSIGNED.name])
        progress("latency at half of %.0f msg/s" % peak)
        results["latency"] = bench_latency(keys, peak / 2, profile.latency_seconds, profile.latency_rounds)
        progress("%d idle sessions" % profile.idle_sessions)
        results["idle"] = bench_idle_sessions(keys, profile.idle_sessions, profile.warmup)
        if profile.big_mib:
            progress("one %d MiB message" % profile.big_mib)
            results["peak_rss"] = bench_peak_rss(profile.big_mib * MIB)
        return results
    finally:
        if not os.environ.get("STAMPD_KEEP_TEST_DIRS"):
            shutil.rmtree(workdir, ignore_errors=True)


def human_size(size):
    return "%d MiB" % (size // MIB) if size >= MIB else "%d KiB" % (size // KIB)


def human_rate(rate):
    return "{:,.0f}".format(rate) if rate >= 100 else "{:,.1f}".format(rate)


def cpu_text(samples):
    """cpu_text is one cell's CPU per message for the report: the machine's
    ms (busy / stolen shares), then stampd's own ms where it was read."""
    def med(key):
        return statistics.median(s[key] for s in samples)
    text = "%.3f (%.0f%% / %.0f%%)" % (med("machine_cpu_ms"), 100 * med("busy_share"), 100 * med("steal_share"))
    if "stampd_cpu_ms" in samples[0]:
        text += ", stampd %.3f" % med("stampd_cpu_ms")
    return text


def report(results, out=sys.stdout):
    """report prints the results as the issue's tables."""
    w = out.write
    rates = results.get("rates")
    if rates:
        cells = rates["cells"]
        w("\n%s; msg/s, smtp-source -s %d -> smtp-sink on loopback (%d CPUs); median of %d interleaved rounds;\n"
          "(×) = the median of the per-round ratios to direct\n\n" % (results["stampd"], results["sessions"],
                                                                     results["cpus"], rates["rounds"]))
        names = [v.name for v in VARIANTS]
        w("| body | direct msg/s | " + " | ".join(names) + " |\n")
        w("|---|---|" + "---|" * len(names) + "\n")
        for size in sorted(cells):
            c = cells[size]
            row = ["%s" % human_size(size), human_rate(median_rate(c[DIRECT]))]
            row += ["%s (%.2f×)" % (human_rate(median_rate(c[n])), median_ratio(c[n], c[DIRECT])) for n in names]
            w("| " + " | ".join(row) + " |\n")
        w("\nspread (slowest – fastest round, msg/s):\n")
        for size in sorted(cells):
            c = cells[size]
            w("  %-7s %s\n" % (human_size(size), "; ".join(
                "%s %s–%s" % (n, human_rate(min(s["msg_per_s"] for s in c[n])),
                              human_rate(max(s["msg_per_s"] for s in c[n]))) for n in [DIRECT] + names)))
        w("\nCPU per message, ms (medians of the rounds): the whole machine's (every process), with the shares"
          " of its %d CPUs busy / stolen by the hypervisor meanwhile; then stampd's own process:\n" % results["cpus"])
        for size in sorted(cells):
            c = cells[size]
            shown = [DIRECT] + names + ([INCUMBENT] if INCUMBENT in c else [])
            w("  %-7s %s\n" % (human_size(size), "; ".join("%s %s" % (n, cpu_text(c[n])) for n in shown)))
        small = cells.get(4 * KIB, {})
        if INCUMBENT in small:
            inc = small[INCUMBENT]
            accepted = statistics.median(s["count"] / s["source_seconds"] for s in inc)
            w("\nincumbent, 4 KiB: smtp-source -> Postfix (smtpd, OpenDKIM milter on a unix socket, RSA-2048)"
              " -> smtp-sink:\n  %s msg/s end to end (%.2f× direct; Postfix's smtpd accepted %s msg/s)\n"
              "  stampd RSA-2048 / Postfix+OpenDKIM: %.1f×\n"
              % (human_rate(median_rate(inc)), median_ratio(inc, small[DIRECT]), human_rate(accepted),
                 median_ratio(small[RSA.name], inc)))
        for part, why in rates["skipped"].items():
            w("\n%s: not measured (%s)\n" % (part, why))
        if "threads=1" in small:
            w("\n[server] threads, 4 KiB unsigned: " + ", ".join(
                "%s %s (%.2f×)" % (n, human_rate(median_rate(small[n])), median_ratio(small[n], small[DIRECT]))
                for n in ["threads=%d" % t for t in THREADS]) +
                ", threads=0 (one per core: %d) %s (%.2f×)\n" % (
                    rates["threads_auto"], human_rate(median_rate(small[UNSIGNED.name])),
                    median_ratio(small[UNSIGNED.name], small[DIRECT])))
        if SELF_VERIFY in small:
            w("\n[dkim] self_verify = \"all\", 4 KiB RSA-2048: %s msg/s, %.2f× of RSA-2048 without it"
              " (same rounds)\n" % (human_rate(median_rate(small[SELF_VERIFY])),
                                    median_ratio(small[SELF_VERIFY], small[RSA.name])))
        w("\nsignatures (one message per variant, dkimpy): " + "; ".join(
            "%s: %s" % (name, ", ".join("%s d=%s %s" % s for s in sigs) or "none")
            for name, sigs in rates["signatures"].items()) + "\n")
    idle = results.get("idle")
    if idle:
        w("\nidle sessions: stampd RSS %.1f MiB at rest (after %d messages), %.1f MiB with %s client sessions "
          "open (EHLO done, idle; it holds %s): %.1f KiB per session; upstream connections open: %d "
          "([upstream] max_connections = %d)\n"
          % (idle["rss_rest_kib"] / KIB, idle["warmup_messages"], idle["rss_with_kib"] / KIB,
             "{:,}".format(idle["sessions"]), "{:,}".format(idle["client_connections"]),
             idle["kib_per_session"], idle["upstream_connections"], idle["upstream_max_connections"]))
    lat = results.get("latency")
    if lat:
        d, s = lat[DIRECT], lat["stampd"]
        w("\nlatency, MAIL to final 250, 4 KiB unsigned, paced at %s msg/s (half of the peak) over %d sessions,"
          " %d round(s) of %.1f s after 1 s of warm-up:\n" % (human_rate(lat["rate"]), results["sessions"], lat["rounds"], lat["seconds"]))
        w("  %-8s %9s %9s %9s %s\n" % ("", "p50 ms", "p99 ms", "messages", "achieved msg/s"))
        for name, m in ((DIRECT, d), ("stampd", s)):
            w("  %-8s %9.3f %9.3f %9d %s%s\n" % (name, m["p50_ms"], m["p99_ms"], m["messages"],
                                               human_rate(m["achieved_rate"]),
                                               " (%d waited for a free session)" % m["queued"] if m["queued"] else ""))
        w("  %-8s %9.3f %9.3f\n" % ("added", lat["added_p50_ms"], lat["added_p99_ms"]))
    rss = results.get("peak_rss")
    if rss:
        w("\none %s message through stampd in %.1f s: peak RSS (VmHWM) %.1f MiB (idle %.1f MiB, limit %d MiB)\n"
          % (human_size(rss["size"]), rss["seconds"], rss["peak_hwm_kib"] / KIB, rss["idle_hwm_kib"] / KIB,
             RSS_LIMIT_MIB))
    out.flush()


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (what CTest runs)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (full: %d; quick: %d)" % (FULL.rounds, QUICK.rounds))
    p.add_argument("--idle-sessions", type=int, help="idle client sessions (full: %d)" % FULL.idle_sessions)
    p.add_argument("--big-mib", type=int, help="the peak-RSS message in MiB (default %d; 0: leave out)" % FULL.big_mib)
    p.add_argument("--json", help="also write the results (every round's numbers) to this file")
    a = p.parse_args(argv)
    profile = QUICK if a.quick else FULL
    if a.rounds:
        profile = profile._replace(rounds=a.rounds)
    if a.idle_sessions:
        profile = profile._replace(idle_sessions=a.idle_sessions)
    if a.big_mib is not None:
        profile = profile._replace(big_mib=a.big_mib)
    started = time.monotonic()

    def progress(text):
        print("relay_bench: %3.0f s: %s" % (time.monotonic() - started, text), file=sys.stderr, flush=True)
    try:
        results = run(profile, progress)
    except unittest.SkipTest as e:  # smtp-source, smtp-sink or dkimpy is missing
        print("relay_bench: cannot run: %s" % e, file=sys.stderr)
        return 1
    report(results)
    print("\n(relay_bench took %.0f s)" % (time.monotonic() - started))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    rss = results.get("peak_rss")
    if rss and rss["peak_hwm_kib"] >= RSS_LIMIT_MIB * KIB:
        print("FAIL: peak RSS %.1f MiB >= %d MiB" % (rss["peak_hwm_kib"] / KIB, RSS_LIMIT_MIB))
        return 1
    if results["rates"]["skipped"] and in_ci():
        print("CI=true: a part was left out for a missing tool or privilege; that is a failure here")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
