"""stampd's metrics as Prometheus sees them.

- After mail of every outcome has flowed (relayed and signed, unsigned for
  lack of a rule, rejected and tempfailed by the upstream, aborted by the
  client, an upstream that drops, SPF with a dead resolver), `promtool check
  metrics` finds no problem in /metrics, every family on the page is declared
  in obs/metrics.cc with the same type and help (and every declared one
  shows), the README's metrics table names the labels each family really
  has, and the values add up.
- No client-supplied string (HELO name, envelope addresses, an unknown
  command, a header) and no client address appears anywhere in /metrics.
- A real Prometheus server, configured from deploy/prometheus/prometheus.yml
  with deploy/prometheus/stampd-alerts.yml, scrapes stampd every second while
  mail flows; the counters read back through its HTTP API match what was
  sent, every alert rule evaluates without error, and a signing failure makes
  StampdSigningFailures fire. Every query of the Grafana dashboard
  (deploy/grafana) runs on it without a PromQL error.
"""
import json
import os
import shutil
import tempfile
import threading
import time
import unittest

from prometheus_tools import (PROMETHEUS, PROMTOOL, Exposition, PrometheusServer, declared_families,
                              http_get, metrics_address, promtool, readme_metrics, require, scrape)
from smtp_client import SmtpClient, make_message
from stampd_harness import SOURCE_DIR, StampdTestCase, closed_port, make_key, stampd_bin
import test_main

DEPLOY = os.path.join(SOURCE_DIR, "deploy", "prometheus")
MARK = "zq7731"  # in every client-supplied string; must never reach /metrics


class MetricsTestCase(StampdTestCase):
    def setUp(self):
        stampd_bin()
        self.tmp = tempfile.mkdtemp(prefix="stampd-prom-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        with open(make_key(self.tmp, "example.com", "s1")[0], "rb") as f:
            self.key = f.read()

    def start(self, up, extra=None):
        sections = {
            "metrics": {"listen": "127.0.0.1:0"},
            "dkim": {
                "key": [{"name": "good", "domain": "example.com", "selector": "s1", "private_key": "s1.private"},
                        {"name": "broken", "domain": "example.org", "selector": "gone",
                         "private_key": "missing.private"}],
                "sign": [{"from": "*@example.com", "keys": ["good"]},
                         {"from": "*@example.org", "keys": ["broken"], "on_error": "fail-closed"}],
            },
        }
        sections.update(extra or {})
        stampd = self.start_stampd([up.address], sections, files={"s1.private": self.key}, start=False)
        os.chmod(os.path.join(stampd.workdir, "s1.private"), 0o600)
        return stampd.start()

    def send(self, stampd, n=1, author="author@example.com", helo="client.test"):
        c = SmtpClient(*stampd.address)
        try:
            self.assertEqual(c.ehlo(helo).code, 250)
            replies = []
            for i in range(n):
                msg = make_message(subject="m%d" % i, sender=author)
                replies.append(c.send_mail("sender@example.com", ["rcpt@example.net"], msg))
            c.quit()
            return replies
        finally:
            c.close()


class MetricsPageTest(MetricsTestCase):
    def test_promtool_check_metrics_after_every_outcome(self):
        require(PROMTOOL)
        up = self.start_upstream()
        spf = {"spf": {"mode": "tag"}, "dns": {"resolvers": ["127.0.0.1:%d" % closed_port()], "timeout": "1s"}}
        stampd = self.start(up, spf)

        self.assertEqual([r.code for r in self.send(stampd, 3)], [250] * 3)  # relayed, signed
        self.assertEqual(self.send(stampd, author="x@unsigned.test")[0].code, 250)  # no rule
        self.assertEqual(self.send(stampd, author="x@example.org")[0].code, 451)  # broken key
        up.on("dot", reply="550 5.7.1 not today", times=1)
        self.assertEqual(self.send(stampd)[0].code, 550)
        up.on("dot", reply="452 4.3.1 full", times=1)
        self.assertEqual(self.send(stampd)[0].code, 452)
        # An upstream error: the kept connection drops at MAIL; stampd
        # takes a fresh one and the message goes through.
        up.on("mail", drop=True, times=1)
        self.assertEqual(self.send(stampd)[0].code, 250)
        stampd.wait_for_event("upstream-error")
        c = SmtpClient(*stampd.address)  # aborted: gone in the middle of DATA
        c.ehlo()
        c.mail("sender@example.com")
        c.rcpt("rcpt@example.net")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: half\r\n\r\nhalf a mess")
        c.abort()
        stampd.wait_for_event("message", outcome="aborted")

        m = scrape(stampd)
        r = promtool("check", "metrics", input=m.text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual((r.stdout + r.stderr).strip(), "", "promtool found problems")

        # Every family on the page is declared in obs/metrics.cc, alike.
        declared = declared_families(SOURCE_DIR)
        self.assertTrue(m.types)
        for name, kind in m.types.items():
            self.assertIn(name, declared)
            self.assertEqual(kind, declared[name][0], name)
            self.assertEqual(m.helps[name], declared[name][1], name)
        self.assertEqual(set(m.types), set(declared), "families that never showed up")
        # The README's metrics table names each family's labels as they are.
        readme = readme_metrics(SOURCE_DIR)
        for name in m.types:
            self.assertEqual(m.label_names(name), readme[name][1], name)

        v = m.value
        self.assertEqual(v("stampd_messages_total", outcome="relayed"), 5)  # 3, no rule, the retry
        self.assertEqual(v("stampd_messages_total", outcome="rejected"), 1)
        self.assertEqual(v("stampd_messages_total", outcome="tempfailed"), 2)  # 451 (key) and 452
        self.assertEqual(v("stampd_messages_total", outcome="aborted"), 1)
        self.assertEqual(v("stampd_dkim_signatures_total", domain="example.com", selector="s1",
                           algorithm="rsa-sha256"), 6)  # 3 + the 550 + the 452 + the retry
        self.assertEqual(v("stampd_dkim_skipped_total", reason="no-rule"), 1)
        self.assertEqual(v("stampd_dkim_failures_total", reason="key-unavailable"), 1)
        self.assertGreaterEqual(v("stampd_upstream_errors_total"), 1)
        self.assertEqual(v("stampd_relay_duration_seconds_count"), v("stampd_messages_total"))
        self.assertGreater(v("stampd_spf_results_total", result="temperror"), 0)
        self.assertGreater(v("stampd_dns_queries_total"), 0)
        self.assertEqual(v("stampd_dns_query_duration_seconds_count"), v("stampd_dns_queries_total"))
        self.assertEqual(v("stampd_connections_active"), 0)
        self.assertEqual(v("stampd_connections_total"), 7)
        self.assertGreater(v("stampd_smtp_commands_total", verb="MAIL"), 0)
        self.assertGreater(v("stampd_smtp_replies_total", **{"class": "2xx"}), 0)
        self.assertGreater(v("stampd_upstream_sent_bytes_total"), v("stampd_received_bytes_total") - 1000)
        self.assertEqual(len(m.series("stampd_build_info")), 1)
        self.assertEqual(len(m.series("stampd_config_info")), 1)
        self.assertEqual(len(m.series("stampd_dkim_key_age_seconds", selector="s1")), 1)

    def test_spool_memory_while_a_message_streams(self):
        up = self.start_upstream()
        stampd = self.start(up)
        self.assertEqual(scrape(stampd).value("stampd_spool_memory_bytes"), 0)
        c = SmtpClient(*stampd.address)
        c.ehlo()
        c.mail("sender@example.com")
        c.rcpt("rcpt@example.net")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: half\r\n\r\n" + b"a line of a message left half sent\r\n" * 10000)
        # The 360 KB received so far are in the spool's memory.
        deadline = time.monotonic() + 10
        while scrape(stampd).value("stampd_spool_memory_bytes") < 360000 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = scrape(stampd).value("stampd_spool_memory_bytes")
        self.assertGreaterEqual(held, 360000)
        c.abort()
        stampd.wait_for_event("message", outcome="aborted")
        # Given back, but for the blocks the thread keeps for the next message.
        self.assertLess(scrape(stampd).value("stampd_spool_memory_bytes"), held)

    def test_no_client_supplied_string_in_labels(self):
        up = self.start_upstream(capabilities=["PIPELINING", "SIZE 104857600", "ENHANCEDSTATUSCODES",
                                               "8BITMIME", "DSN"])
        stampd = self.start(up)
        c = SmtpClient(*stampd.address)
        self.addCleanup(c.close)
        c.ehlo("helo-%s.example" % MARK)
        c.cmd("X%s please" % MARK.upper())
        c.cmd("HELO other-%s.example" % MARK)
        c.ehlo("helo2-%s.example" % MARK)
        c.cmd("XFORWARD ADDR=192.0.2.77 HELO=xf-%s.example NAME=name-%s.example" % (MARK, MARK))
        c.mail("from-%s@example.com" % MARK, "ENVID=env-%s RET=HDRS" % MARK)
        c.rcpt("rcpt-%s@example.net" % MARK, "NOTIFY=NEVER ORCPT=rfc822;orcpt-%s@example.net" % MARK)
        c.rcpt("bad address %s" % MARK)
        msg = make_message(subject="subject-" + MARK, sender="author-%s@example.com" % MARK,
                           extra_headers=["X-%s: %s" % (MARK, MARK)])
        _, final = c.data(msg)
        self.assertEqual(final.code, 250)
        c.cmd("VRFY %s" % MARK)
        c.cmd("NOOP %s" % MARK)
        c.quit()
        stampd.wait_for_event("message")
        text = http_get(metrics_address(stampd), "/metrics")[1]
        self.assertNotIn(MARK, text.lower())
        self.assertNotIn("192.0.2.77", text)
        self.assertNotIn("127.0.0.1", text)
        # Label values are from fixed sets or from the configuration.
        m = Exposition(text)
        verbs = {l["verb"] for l, _ in m.series("stampd_smtp_commands_total")}
        self.assertLessEqual(verbs, {"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY",
                                     "HELP", "XFORWARD", "STARTTLS", "AUTH", "BDAT", "EXPN", "ETRN", "TURN",
                                     "unknown"}, verbs)


class PrometheusServerTest(MetricsTestCase):
    def test_real_prometheus_scrapes_while_mail_flows(self):
        require(PROMETHEUS)
        up = self.start_upstream()
        stampd = self.start(up)
        target = metrics_address(stampd)
        with open(os.path.join(DEPLOY, "prometheus.yml")) as f:
            config = f.read()
        # The deploy file with this test's target and a 1s rhythm.
        for old, new in (('"127.0.0.1:9464"', '"%s"' % target), ("scrape_interval: 15s", "scrape_interval: 1s"),
                         ("evaluation_interval: 15s", "evaluation_interval: 1s"),
                         ("scrape_timeout: 5s", "scrape_timeout: 1s")):
            self.assertIn(old, config)
            config = config.replace(old, new)
        with open(os.path.join(DEPLOY, "stampd-alerts.yml")) as f:
            rules = f.read()
        prom = PrometheusServer(config_text=config, files={"stampd-alerts.yml": rules})
        self.addCleanup(self._prometheus_cleanup, prom)
        prom.start()

        # Prometheus applies new targets after a few seconds: once it scrapes,
        # mail flows for a few scrapes (4 sessions x 5 messages, spread out).
        prom.wait_for_value('up{job="stampd"}', 1)
        before = prom.query('stampd_messages_total{outcome="relayed"}')
        self.assertEqual([v for _, v in before], [0])
        errors = []

        def sender():
            try:
                for _ in range(5):
                    replies = self.send(stampd, 1)
                    if replies[0].code != 250:
                        errors.append(replies[0])
                    time.sleep(0.5)
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=sender) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])

        relayed = prom.wait_for_value('stampd_messages_total{job="stampd",outcome="relayed"}', 20)
        self.assertEqual(relayed[0]["instance"], target)
        prom.wait_for_value('sum(stampd_dkim_signatures_total{domain="example.com",selector="s1"})', 20)
        prom.wait_for_value("stampd_relay_duration_seconds_count", 20)
        prom.wait_for_value('sum(stampd_smtp_commands_total{verb="DATA"})', 20)
        prom.wait_for_value('stampd_connections_active', 0)
        version = prom.query("stampd_build_info")
        self.assertEqual(len(version), 1)
        self.assertTrue(version[0][0].get("version"))
        # A histogram quantile works on the relay latency.
        # Several scrapes saw the counter grow while mail flowed.
        seen = prom.api("query", query='stampd_messages_total{outcome="relayed"}[1m]')["result"][0]["values"]
        self.assertGreater(len({v for _, v in seen}), 2, seen)
        # A histogram quantile works on the relay latency.
        prom.wait_for("histogram_quantile(0.9, rate(stampd_relay_duration_seconds_bucket[1m])) > 0",
                      lambda r: len(r) == 1)

        # Every alert rule loads and evaluates cleanly against real series.
        groups = prom.api("rules")["groups"]
        rules_seen = [r for g in groups for r in g["rules"]]
        self.assertEqual(len(rules_seen), rules.count("- alert:"))
        prom.wait_for("ALERTS", lambda _: all(r.get("lastEvaluation", "").startswith("2") for r in
                                              [r for g in prom.api("rules")["groups"] for r in g["rules"]]),
                      what="every rule evaluated")
        for r in [r for g in prom.api("rules")["groups"] for r in g["rules"]]:
            self.assertEqual(r["health"], "ok", r)
        self.assertEqual(prom.query('ALERTS{alertstate="firing"}'), [])

        # Every query of the Grafana dashboard is valid PromQL on real series.
        with open(os.path.join(SOURCE_DIR, "deploy", "grafana", "stampd-dashboard.json")) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        self.assertGreater(len(exprs), 10)
        with_data = 0
        for expr in exprs:
            concrete = (expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
                        .replace("$instance", ".*"))
            with_data += bool(prom.query(concrete))  # raises on a PromQL error
        self.assertGreater(with_data, len(exprs) // 2)

        # A message that cannot be signed (fail-closed, unusable key) fires
        # StampdSigningFailures at the next evaluation.
        self.assertEqual(self.send(stampd, author="x@example.org")[0].code, 451)
        firing = prom.wait_for('ALERTS{alertname="StampdSigningFailures",alertstate="firing"}',
                               lambda r: len(r) == 1, timeout=30)
        self.assertEqual(firing[0][0]["reason"], "key-unavailable")
        self.assertEqual(firing[0][0]["severity"], "critical")

    def _prometheus_cleanup(self, prom):
        if self._failed():
            print("\n--- prometheus log ---\n%s--- end ---" % prom.log()[-3000:])
        prom.cleanup()


if __name__ == "__main__":
    test_main.main()
