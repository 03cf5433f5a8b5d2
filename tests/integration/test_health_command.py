"""`stampd health -c FILE [--ready]`, the container's HEALTHCHECK, against
the real daemon:

- it asks /healthz (or /readyz) where the config's [metrics] listen says,
  a wildcard address on loopback, so a non-default port works;
- exit 0 and one line on 200; exit 1 and one line saying why otherwise: not
  ready (the 503's reason), nothing listening, an endpoint that never
  answers (within its 3 s deadline), no metrics endpoint configured, a
  broken config; exit 2 without -c.
"""
import socket
import threading
import time

from prometheus_tools import http_get
import test_main
from stampd_harness import StampdTestCase, closed_port, free_port, run_cli, wait_until


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class HealthCommandTest(StampdTestCase):
    def health(self, stampd_or_path, *flags):
        path = stampd_or_path if isinstance(stampd_or_path, str) else stampd_or_path.config_path
        r = run_cli("health", "-c", path, *flags, timeout=30)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def start_with_metrics_on(self, servers, listen, free_on, sections=None):
        """start_with_metrics_on starts stampd with [metrics] listen = listen %
        a port free on free_on, and picks again when another test took the
        port in between (seen in CI); returns (stampd, port)."""
        for attempt in range(3):
            port = free_port(free_on)
            merged = dict(sections or {}, metrics={"listen": listen % port})
            try:
                return self.start_stampd(servers, sections=merged), port
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    raise

    def assertOneLine(self, text):
        self.assertEqual(len(text.strip().splitlines()), 1, text)

    def test_follows_the_configured_metrics_address(self):
        up = self.start_upstream()
        stampd, port = self.start_with_metrics_on([up.address], "0.0.0.0:%d", "0.0.0.0")
        stampd.wait_for_event("metrics-listening")
        rc, out, err = self.health(stampd)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "stampd health: 127.0.0.1:%d/healthz: 200 ok\n" % port)
        rc, out, err = self.health(stampd, "--ready")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "stampd health: 127.0.0.1:%d/readyz: 200 ready\n" % port)

    def test_ipv6_wildcard_is_asked_on_ipv6_loopback(self):
        if not has_ipv6_loopback():
            raise test_main.not_applicable("no IPv6 loopback on this machine")
        up = self.start_upstream()
        # [::] takes the port on IPv4 too: free_port("::") picks one free on both.
        stampd, port = self.start_with_metrics_on([up.address], "[::]:%d", "::")
        stampd.wait_for_event("metrics-listening")
        rc, out, err = self.health(stampd)
        self.assertEqual(rc, 0, err)
        self.assertIn("[::1]:%d/healthz: 200" % port, out)

    def test_not_ready_says_why(self):
        stampd, port = self.start_with_metrics_on(
            [("127.0.0.1:%d" % closed_port())], "127.0.0.1:%d", "127.0.0.1",
            {"upstream": {"health_check_interval": "1s", "connect_timeout": "1s"}})
        address = "127.0.0.1:%d" % port
        wait_until(lambda: http_get(address, "/readyz")[0] == 503, what="/readyz 503")
        rc, out, err = self.health(stampd, "--ready")
        self.assertEqual(rc, 1, out)
        self.assertOneLine(err)
        self.assertRegex(err, r"^stampd health: 127\.0\.0\.1:%d/readyz: 503 not ready: upstream " % port)
        # Alive all the same: a liveness probe must not restart it for that.
        self.assertEqual(self.health(stampd)[0], 0)

    def test_nothing_listening(self):
        port = closed_port()
        stampd = self.start_stampd(["127.0.0.1:%d" % closed_port()],
                                   sections={"metrics": {"listen": "127.0.0.1:%d" % port}}, start=False)
        rc, out, err = self.health(stampd.config_path)
        self.assertEqual(rc, 1, out)
        self.assertOneLine(err)
        self.assertIn("127.0.0.1:%d/healthz: cannot connect: Connection refused" % port, err)

    def test_an_endpoint_that_never_answers(self):
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        held = []
        threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
        self.addCleanup(lambda: [c.close() for c, _ in held])
        stampd = self.start_stampd(["127.0.0.1:%d" % closed_port()], start=False, sections={
            "metrics": {"listen": "127.0.0.1:%d" % listener.getsockname()[1]}})
        started = time.monotonic()
        rc, out, err = self.health(stampd.config_path, "--ready")
        self.assertEqual(rc, 1, out)
        self.assertLess(time.monotonic() - started, 10)
        self.assertOneLine(err)
        self.assertIn("/readyz: no answer within 3s", err)

    def test_no_endpoint_or_no_config(self):
        stampd = self.start_stampd(["127.0.0.1:%d" % closed_port()], start=False,
                                   sections={"metrics": {"listen": ""}})
        rc, _, err = self.health(stampd.config_path)
        self.assertEqual(rc, 1)
        self.assertOneLine(err)
        self.assertIn("[metrics] listen is empty", err)
        with open(stampd.config_path, "a") as f:
            f.write("\n[metrics]\nlisten = \"127.0.0.1:9464\"\n")  # a table defined twice
        rc, _, err = self.health(stampd.config_path)
        self.assertEqual(rc, 1)
        self.assertIn(stampd.config_path + ":", err)
        rc, _, err = self.health(stampd.config_path + ".missing")
        self.assertEqual(rc, 1)
        self.assertTrue(err.startswith("stampd health: "), err)
        r = run_cli("health")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--config is required", r.stderr)


if __name__ == "__main__":
    test_main.main()
