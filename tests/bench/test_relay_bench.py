"""CTest's bench-label run of relay_bench.py with small, fast settings: both
rates are measured and positive, every message reaches the sink, and one
200 MiB message relays with stampd's peak RSS under 64 MiB."""
import unittest

import relay_bench as B
import test_main


class RelayBenchTest(unittest.TestCase):
    def test_rates_direct_and_through_stampd(self):
        rates = B.bench_rates([(4096, 200), (B.MIB, 10)], sessions=10, repeat=1, log_level="info")
        B.report(rates, None)
        for r in rates:
            self.assertGreater(r["direct"]["msg_per_s"], 0)
            self.assertGreater(r["stampd"]["msg_per_s"], 0)
            self.assertGreater(r["ratio"], 0)

    def test_peak_rss_for_a_200_mib_message(self):
        rss = B.bench_peak_rss(200 * B.MIB)
        B.report([], rss)
        self.assertGreaterEqual(rss["message_size_logged"], 200 * B.MIB)
        self.assertLess(rss["peak_hwm_kib"], B.RSS_LIMIT_MIB * 1024,
                        "peak RSS %.1f MiB" % (rss["peak_hwm_kib"] / 1024))


if __name__ == "__main__":
    test_main.main()
