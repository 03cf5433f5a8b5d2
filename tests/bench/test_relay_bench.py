"""CTest's bench-label run of relay_bench.py in its quick mode (tiny sizes,
under 30 s): every part runs, so that none can rot, and what it measured is
checked for being there and right, never for being fast. Every message
reached the sink and stampd logged it relayed and signed with its variant's
keys (bench_rates checks that), dkimpy verified one message per variant and
one from Postfix + OpenDKIM, the idle sessions were all held with no more
upstream connections than the pool's cap, the paced client timed its
messages both ways, and one 200 MiB message relayed with stampd's peak RSS
under 64 MiB. A part left out for a missing tool or privilege (the
incumbent needs opendkim and root) makes the test skip after the rest was
checked, which fails under CI=true."""
import unittest

import relay_bench as B
import test_main


class RelayBenchTest(unittest.TestCase):
    def test_quick_run(self):
        results = B.run(B.QUICK)
        B.report(results)
        rates = results["rates"]
        columns = [B.DIRECT] + [v.name for v in B.VARIANTS]
        for size, count in B.QUICK.sizes:
            cells = rates["cells"][size]
            for name in columns:
                self.assertEqual(len(cells[name]), B.QUICK.rounds, (size, name))
                self.assertTrue(all(s["msg_per_s"] > 0 and s["count"] == count for s in cells[name]), (size, name))
                self.assertTrue(all(s["machine_cpu_ms"] >= 0 and 0 <= s["busy_share"] + s["steal_share"] <= 1
                                    for s in cells[name]),
                                (size, name))
                # stampd's own CPU is read for the cells it relays, never for direct.
                self.assertEqual(all("stampd_cpu_ms" in s for s in cells[name]), name != B.DIRECT, (size, name))
        stampd_cpu = [s["stampd_cpu_ms"] for cells in rates["cells"].values() for name in columns[1:]
                      for s in cells[name]]
        self.assertGreater(sum(stampd_cpu), 0, "no stampd CPU read: the wrong process?")
        self.assertGreater(sum(s["machine_cpu_ms"] for cells in rates["cells"].values() for s in cells[B.DIRECT]),
                           0)
        small = rates["cells"][4 * B.KIB]
        for threads in B.THREADS:
            self.assertEqual(len(small["threads=%d" % threads]), B.QUICK.rounds)
        sigs = rates["signatures"]
        self.assertEqual(sigs["unsigned"], [])
        self.assertEqual(sigs["RSA+Ed25519"], [("ed25519-sha256", "both.example", "pass"),
                                               ("rsa-sha256", "both.example", "pass")])

        idle = results["idle"]
        self.assertEqual(idle["client_connections"], B.QUICK.idle_sessions)
        self.assertLessEqual(idle["upstream_connections"], idle["upstream_max_connections"])
        self.assertGreater(idle["rss_with_kib"], 0)

        latency = results["latency"]
        for name in (B.DIRECT, "stampd"):
            self.assertGreater(latency[name]["messages"], 0, name)
            self.assertGreater(latency[name]["p99_ms"], 0, name)

        rss = results["peak_rss"]
        self.assertGreaterEqual(rss["message_size_logged"], B.QUICK.big_mib * B.MIB)
        self.assertLess(rss["peak_hwm_kib"], B.RSS_LIMIT_MIB * B.KIB,
                        "peak RSS %.1f MiB" % (rss["peak_hwm_kib"] / B.KIB))

        if rates["skipped"]:
            raise unittest.SkipTest("; ".join("%s not measured: %s" % kv for kv in rates["skipped"].items()))
        self.assertEqual(sigs[B.INCUMBENT], [("rsa-sha256", "rsa.example", "pass")])
        self.assertEqual(len(small[B.INCUMBENT]), B.QUICK.rounds)


if __name__ == "__main__":
    test_main.main()
