"""The container image, built from the project's Dockerfile and run.

No registry is reachable from CI, so the test makes the two base images the
Dockerfile names itself: Debian 12 minbase (debootstrap) imported as
debian:bookworm, and a bookworm-slim made from it the way Debian's official
slim images are (no docs, man pages or locales; apt keeps no .debs). Then
`podman build --format docker --pull=never` builds the Dockerfile as it is
(the Docker format keeps its HEALTHCHECK), and:

- the image adds less than 40 MB to debian:bookworm-slim, runs as uid 10027,
  and its HEALTHCHECK is `stampd health` on the config CMD names;
- run as deploy/kubernetes/ runs it (read from the manifests, not copied):
  the Deployment's args, its user and fsGroup, read-only root file system,
  no capabilities, no privilege escalation, the ConfigMap's stampd.toml and
  the Secret's files mounted read-only (the key 0440 root:fsGroup, as a
  Secret volume has it), a tmpfs where the emptyDir is. The test probes as
  the kubelet would (/healthz, /readyz on the port named metrics), sends a
  message to a fake upstream on the host, checks its DKIM signature with
  dkimpy against the record `stampd genkey` wrote, scrapes /metrics, then
  sends SIGTERM while a second message waits at the upstream: the message
  is relayed and the container exits 0;
- run as the README's Docker section runs it (the image's CMD and user, the
  config directory mounted at /etc/stampd, the key 0600 owned by 10027) with
  [metrics] listen on a port other than the default: the HEALTHCHECK
  (`podman healthcheck run`: no systemd here to run it on a timer) reports
  healthy, and `podman stop` ends it with exit 0.

The containers share the host's network (--network host), so every address
is on 127.0.0.1. Podman is rootful with its own storage, state and
containers.conf under the build directory (runc, because the hybrid cgroup
v1 hosts CI runs on break crun; nproc and nofile limits that the kernel
accepts). The images stay there as a build cache; `rm -rf build` removes
them. Prints the build time per step, the image size and the start-up time.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest

import yaml

import debian_root
import dkim_verifiers
from prometheus_tools import http_get, scrape
from smtp_client import SmtpClient, dot_stuff, make_message
from stampd_harness import BUILD_DIR, SOURCE_DIR, StampdTestCase, free_port, make_key, render_toml, wait_until
import test_main

IMAGE = "localhost/stampd-test:latest"
BASE = "localhost/debian:bookworm"
SLIM = "localhost/debian:bookworm-slim"
K8S = os.path.join(SOURCE_DIR, "deploy", "kubernetes")
MAX_ADDED_MB = 40

CONTAINERS_CONF = """\
# Written by tests/deploy/test_container.py for its own podman.
[containers]
# Podman's default rlimits are refused here; runc needs nproc set as well.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
# Hybrid cgroup v1: crun fails, runc works. No systemd: cgroupfs, file events.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{dir}/events.log"
tmp_dir = "{dir}/libpod-tmp"
"""

# What Debian's official slim images leave out, and their apt clean-up
# (debuerreotype's slimify and docker-clean), so that the size measured on
# top of this base is the size a user's build adds.
SLIM_CONTAINERFILE = """\
FROM %s
RUN printf '%%s\\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \\
      'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \\
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/lintian/*' \\
      >/etc/dpkg/dpkg.cfg.d/docker \\
 && printf '%%s\\n' \\
      'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \\
      'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \\
      'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >/etc/apt/apt.conf.d/docker-clean \\
 && find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete \\
 && rm -rf /usr/share/info/* /usr/share/locale/* /usr/share/man/*
""" % BASE


def say(text):
    print("test_container: " + text, file=sys.stderr, flush=True)


class Podman:
    """Podman runs podman with this test's own storage and configuration."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(os.path.join(directory, "libpod-tmp"), exist_ok=True)
        conf = os.path.join(directory, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF.format(dir=directory))
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.base = ["podman", "--root", os.path.join(directory, "storage"),
                     "--runroot", os.path.join(directory, "run")]

    def __call__(self, *args, check=True, timeout=120, **kwargs):
        """__call__ runs `podman ARGS` and returns the CompletedProcess (text)."""
        r = subprocess.run(self.base + list(args), env=self.env, timeout=timeout, text=True,
                           stdout=kwargs.pop("stdout", subprocess.PIPE),
                           stderr=kwargs.pop("stderr", subprocess.PIPE), **kwargs)
        if check and r.returncode != 0:
            raise AssertionError("podman %s exited %d:\n%s%s"
                                 % (" ".join(args), r.returncode, r.stdout or "", r.stderr or ""))
        return r

    def exists(self, image):
        return self("image", "exists", image, check=False).returncode == 0

    def inspect(self, what, name):
        return json.loads(self(what, "inspect", name).stdout)[0]


def make_base_images(podman):
    """make_base_images imports the pristine minbase root as debian:bookworm
    and derives debian:bookworm-slim, under the names the Dockerfile's short
    names resolve to. Kept between runs."""
    if podman.exists(BASE) and podman.exists(SLIM):
        return
    root = debian_root.pristine()
    tar = subprocess.Popen(["tar", "-C", root, "--exclude=./.ready", "-c", "."], stdout=subprocess.PIPE)
    podman("import", "--change", 'CMD ["bash"]', "-", BASE, stdin=tar.stdout, timeout=600)
    tar.stdout.close()
    if tar.wait() != 0:
        raise AssertionError("tar of %s failed" % root)
    context = tempfile.mkdtemp(prefix="slim-", dir=podman.dir)
    try:
        with open(os.path.join(context, "Containerfile"), "w") as f:
            f.write(SLIM_CONTAINERFILE)
        podman("build", "--format", "docker", "--pull=never", "--network", "host", "-t", SLIM, context,
               timeout=600)
    finally:
        shutil.rmtree(context, ignore_errors=True)
    for name in ("bookworm", "bookworm-slim"):
        podman("tag", "localhost/debian:" + name, "docker.io/library/debian:" + name)


def build_image(podman):
    """build_image builds the Dockerfile; returns [(step, seconds)]."""
    log_path = os.path.join(podman.dir, "build.log")
    steps = []
    cmd = podman.base + ["build", "--format", "docker", "--pull=never", "--network", "host",
                         "-t", IMAGE, "-f", os.path.join(SOURCE_DIR, "Dockerfile"), SOURCE_DIR]
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, env=podman.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in p.stdout:
            log.write(line)
            if "] STEP " in line:
                now = time.monotonic()
                if steps:
                    steps[-1][1] = now - steps[-1][1]
                steps.append([line.strip(), now])
        p.stdout.close()
        p.wait()
    if steps:
        steps[-1][1] = time.monotonic() - steps[-1][1]
    if p.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-5000:]
        raise AssertionError("podman build of the Dockerfile exited %d (log: %s):\n%s"
                             % (p.returncode, log_path, tail))
    return [(s, t) for s, t in steps]


class ContainerTest(StampdTestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("podman") is None or shutil.which("runc") is None:
            raise unittest.SkipTest("podman or runc is not installed (Debian packages podman runc)")
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root: rootful podman with storage of its own")
        started = time.monotonic()
        cls.podman = Podman(os.path.join(os.path.abspath(BUILD_DIR), "container-test"))
        # Containers a killed earlier run may have left (they hold ports).
        cls.podman("rm", "--all", "--force", "--time", "0", check=False)
        make_base_images(cls.podman)
        # Builder layers of runs a day old; newer ones stay as the build cache.
        cls.podman("image", "prune", "--force", "--filter", "until=24h")
        bases = time.monotonic()
        cls.steps = build_image(cls.podman)
        cls.build_seconds = time.monotonic() - bases
        say("base images ready in %.1f s; image built in %.1f s:" % (bases - started, cls.build_seconds))
        for step, seconds in cls.steps:
            if seconds >= 1:
                say("  %6.1f s  %s" % (seconds, step[:110]))

    # helpers

    def run_container(self, name, args, image_args=()):
        """run_container starts NAME detached and returns the seconds podman took."""
        self.podman("rm", "--force", "--time", "0", name, check=False)
        self.addCleanup(self.podman, "rm", "--force", "--time", "0", name, check=False)
        self.addCleanup(self.dump_logs_on_failure, name)
        before = time.monotonic()
        self.podman("run", "--detach", "--name", name, "--network", "host", *args, IMAGE, *image_args)
        return time.monotonic() - before

    def dump_logs_on_failure(self, name):
        if self._failed():
            r = self.podman("logs", name, check=False)
            sys.stderr.write("\n--- podman logs %s ---\n%s%s--- end ---\n" % (name, r.stdout, r.stderr))

    def logs(self, name):
        r = self.podman("logs", name)
        return [json.loads(line) for line in (r.stdout + r.stderr).splitlines() if line.startswith("{")]

    def wait_exit(self, name, timeout=60):
        """wait_exit waits for NAME to stop and returns its exit code."""
        self.podman("wait", name, timeout=timeout)
        return self.podman.inspect("container", name)["State"]["ExitCode"]

    def key_and_records(self, directory):
        """key_and_records makes a key with `stampd genkey` (the selector the
        manifests use) and returns its path and the DNS records to verify with."""
        private, txt = make_key(directory, "example.com", "s2026")
        with open(txt) as f:
            return private, dkim_verifiers.records_for(f.read().splitlines())

    def assertSigned(self, message, records):
        results = dkim_verifiers.verify("dkimpy", message, records)
        self.assertEqual([(r.status, r.domain, r.selector) for r in results], [("pass", "example.com", "s2026")],
                         results)

    # tests

    def test_image(self):
        image = self.podman.inspect("image", IMAGE)
        slim = self.podman.inspect("image", SLIM)
        added = (image["Size"] - slim["Size"]) / 1e6
        say("image %.1f MB, of which %.1f MB on top of debian:bookworm-slim (goal: under %d MB)"
            % (image["Size"] / 1e6, added, MAX_ADDED_MB))
        self.assertLess(added, MAX_ADDED_MB)
        config = image["Config"]
        self.assertEqual(config["User"], "stampd:stampd")
        self.assertEqual(config["StopSignal"], "SIGTERM")
        self.assertEqual(config["Entrypoint"], ["/usr/local/bin/stampd"])
        self.assertEqual(config["Cmd"], ["run", "-c", "/etc/stampd/stampd.toml"])
        # The HEALTHCHECK survived the build (Docker format) and reads CMD's config.
        self.assertEqual(image["Healthcheck"]["Test"],
                         ["CMD", "/usr/local/bin/stampd", "health", "-c", "/etc/stampd/stampd.toml"])
        r = self.podman("run", "--rm", "--network", "none", "--entrypoint", "id", IMAGE)
        self.assertEqual(r.stdout.strip(), "uid=10027(stampd) gid=10027(stampd) groups=10027(stampd)")

    def test_as_deploy_kubernetes_runs_it(self):
        with open(os.path.join(K8S, "deployment.yaml")) as f:
            pod = yaml.safe_load(f)["spec"]["template"]["spec"]
        with open(os.path.join(K8S, "configmap.yaml")) as f:
            configmap = yaml.safe_load(f)
        with open(os.path.join(K8S, "secret.yaml")) as f:
            secret = yaml.safe_load(f)
        (c,) = pod["containers"]
        psc, csc = pod["securityContext"], c["securityContext"]

        up = self.start_upstream()
        smtp_port, metrics_port = free_port(), free_port()
        # The ConfigMap's stampd.toml with what the host's loopback needs: the
        # container shares the host's network, and the upstream is a fake
        # one without TLS or AUTH.
        doc = tomllib.loads(configmap["data"]["stampd.toml"])
        doc["server"]["listen"] = ["127.0.0.1:%d" % smtp_port]
        doc["server"]["trusted_networks"].append("127.0.0.0/8")
        doc["metrics"]["listen"] = "127.0.0.1:%d" % metrics_port
        doc["upstream"].update(servers=[up.address], tls="none")
        for k in ("auth_username", "auth_password_file"):
            doc["upstream"].pop(k)

        work = tempfile.mkdtemp(prefix="k8s-", dir=self.podman.dir)
        self.addCleanup(shutil.rmtree, work, True)
        private, records = self.key_and_records(os.path.join(work, "genkey"))
        args = ["--user", "%d:%d" % (psc["runAsUser"], psc["runAsGroup"]), "--group-add", str(psc["fsGroup"])]
        if csc["readOnlyRootFilesystem"]:
            args.append("--read-only")
        for cap in csc["capabilities"]["drop"]:
            args += ["--cap-drop", cap]
        if not csc["allowPrivilegeEscalation"]:
            args += ["--security-opt", "no-new-privileges"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in c["volumeMounts"]:
            volume = volumes[mount["name"]]
            source = os.path.join(work, mount["name"])
            if "configMap" in volume:
                self.assertEqual(volume["configMap"]["name"], configmap["metadata"]["name"])
                os.makedirs(source)
                with open(os.path.join(source, "stampd.toml"), "w") as f:
                    f.write(render_toml(doc))
                os.chmod(os.path.join(source, "stampd.toml"), 0o644)  # a ConfigMap's defaultMode
            elif "secret" in volume:
                # A Secret volume: files root:fsGroup with the defaultMode.
                self.assertEqual(volume["secret"]["secretName"], secret["metadata"]["name"])
                os.makedirs(source)
                for key in secret["stringData"]:
                    path = os.path.join(source, key)
                    if key.endswith(".private"):
                        shutil.copy(private, path)
                    else:
                        with open(path, "w") as f:
                            f.write("unused\n")
                    os.chown(path, 0, psc["fsGroup"])
                    os.chmod(path, volume["secret"]["defaultMode"])
            elif "emptyDir" in volume:
                args += ["--tmpfs", "%s:rw,mode=1777,size=64m" % mount["mountPath"]]
                continue
            else:
                self.fail("a volume the test does not know how to make: %r" % volume)
            self.assertTrue(mount.get("readOnly"), mount)
            args += ["--volume", "%s:%s:ro" % (source, mount["mountPath"])]
        self.assertEqual(doc["dkim"]["key"][0]["private_key"].rsplit("/", 1)[0], "/etc/stampd/secrets")
        self.assertTrue(doc["dkim"]["allow_group_readable_keys"])

        # Probes as the kubelet makes them: on the container port named in the
        # probe, which is where [metrics] listen is.
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports[c["readinessProbe"]["httpGet"]["port"]], 9464)
        self.assertEqual(ports[c["livenessProbe"]["httpGet"]["port"]], 9464)
        metrics = "127.0.0.1:%d" % metrics_port
        readiness, liveness = c["readinessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["path"]

        name = "stampd-test-k8s"
        started = time.monotonic()
        podman_seconds = self.run_container(name, args, c["args"])

        def probe(path):
            try:
                return http_get(metrics, path, timeout=2)[0]
            except OSError:
                return None

        wait_until(lambda: probe(readiness) == 200, timeout=30, interval=0.005, what=readiness + " 200")
        ready = time.monotonic() - started
        say("kubernetes way: %s 200 %.2f s after `podman run` started (podman itself took %.2f s; goal: under 1 s)"
            % (readiness, ready, podman_seconds))
        self.assertEqual(probe(liveness), 200)

        # A message through it, signed with the Secret's key.
        c1 = SmtpClient("127.0.0.1", smtp_port)
        self.addCleanup(c1.close)
        c1.ehlo()
        reply = c1.send_mail("sender@example.com", ["rcpt@example.net"], make_message(subject="from a pod"))
        self.assertEqual(reply.code, 250, reply)
        c1.quit()
        (tx,) = up.wait_for_messages(1)
        self.assertSigned(tx.content, records)
        page = scrape(metrics)
        self.assertEqual(page.value("stampd_messages_total", outcome="relayed"), 1)
        self.assertEqual(page.value("stampd_dkim_signatures_total", domain="example.com", selector="s2026"), 1)
        self.assertEqual(page.value("stampd_ready"), 1)

        # SIGTERM (what the kubelet sends after preStop) with a message held
        # at the upstream: it still goes through, then the container exits 0.
        up.on("dot", delay=1.5)
        c2 = SmtpClient("127.0.0.1", smtp_port)
        self.addCleanup(c2.close)
        c2.ehlo()
        c2.mail("sender@example.com")
        c2.rcpt("rcpt@example.net")
        self.assertEqual(c2.cmd("DATA").code, 354)
        c2.send(dot_stuff(make_message(subject="in flight at SIGTERM")))
        up.wait_for(lambda u: len([t for t in u.transactions if t.dot_time]) == 2, what="second final dot")
        self.podman("kill", "--signal", "TERM", name)
        wait_until(lambda: probe(readiness) in (503, None), timeout=5, what=readiness + " not ready while draining")
        final = c2.reply(timeout=15)
        self.assertEqual(final.code, 250, final)
        c2.quit()
        self.assertEqual(self.wait_exit(name), 0)
        self.assertEqual(len(up.accepted_messages), 2)
        self.assertSigned(up.accepted_messages[1].content, records)
        stopped = [e for e in self.logs(name) if e.get("event") == "stopped"]
        self.assertEqual([e["unfinished_sessions"] for e in stopped], ["0"])

    def test_as_the_readme_runs_it_healthcheck_follows_metrics_listen(self):
        up = self.start_upstream()
        smtp_port, metrics_port = free_port(), free_port()
        self.assertNotEqual(metrics_port, 9464)
        with open(os.path.join(SOURCE_DIR, "deploy", "docker", "stampd.toml"), "rb") as f:
            doc = tomllib.load(f)
        doc["server"]["listen"] = ["127.0.0.1:%d" % smtp_port]
        doc["metrics"]["listen"] = "127.0.0.1:%d" % metrics_port
        doc["upstream"].update(servers=[up.address], tls="none")
        for k in ("auth_username", "auth_password_file"):
            doc["upstream"].pop(k)
        # /etc/stampd as the README mounts it: the config and keys/ beside it,
        # the key 0600 owned by the image's uid.
        etc = tempfile.mkdtemp(prefix="etc-", dir=self.podman.dir)
        self.addCleanup(shutil.rmtree, etc, True)
        os.chmod(etc, 0o755)
        key_rel = doc["dkim"]["key"][0]["private_key"]
        private, records = self.key_and_records(os.path.join(etc, os.path.dirname(key_rel)))
        self.assertEqual(os.path.join(etc, key_rel), private)
        for d in (os.path.join(etc, "keys"), os.path.dirname(private)):
            os.chmod(d, 0o755)
        os.chown(private, 10027, 10027)
        with open(os.path.join(etc, "stampd.toml"), "w") as f:
            f.write(render_toml(doc))

        name = "stampd-test-docker"
        self.run_container(name, ["--read-only", "--tmpfs", "/tmp:rw,mode=1777,size=64m",
                                  "--volume", etc + ":/etc/stampd:ro"])

        def healthcheck():
            return self.podman("healthcheck", "run", name, check=False).returncode == 0

        wait_until(healthcheck, timeout=30, interval=0.1, what="podman healthcheck run: healthy")
        health = self.podman.inspect("container", name)["State"]["Health"]
        self.assertEqual(health["Status"], "healthy")
        self.assertIn("127.0.0.1:%d/healthz: 200 ok" % metrics_port, health["Log"][-1]["Output"])

        c = SmtpClient("127.0.0.1", smtp_port)
        self.addCleanup(c.close)
        c.ehlo()
        reply = c.send_mail("sender@example.com", ["rcpt@example.net"], make_message(subject="from docker"))
        self.assertEqual(reply.code, 250, reply)
        c.quit()
        (tx,) = up.wait_for_messages(1)
        self.assertSigned(tx.content, records)

        # `docker stop` sends the image's STOPSIGNAL (SIGTERM): a drain, exit 0.
        self.podman("stop", "--time", "30", name, timeout=60)
        self.assertEqual(self.wait_exit(name), 0)
        self.assertIn("draining", [e.get("event") for e in self.logs(name)])


if __name__ == "__main__":
    test_main.main()
