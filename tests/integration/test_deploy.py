"""The deployment files in deploy/ and the Dockerfile, checked as files and
against the binary under test (tests/deploy/test_container.py builds and
runs the image itself, the way deploy/kubernetes/ runs it):

- One build: the README's first command, tests/run.sh (CI) and the
  Dockerfile's builder all call deploy/build.sh; every script a RUN step or
  the README names exists and parses (bash -n).
- Dockerfile: multi-stage on Debian 12, the final stage installs a package
  for every library the built binary links (readelf NEEDED -> dpkg -S), runs
  as a non-root user, copies what the builder built, and its HEALTHCHECK is
  `stampd health` on CMD's config, which answers 0 against a running stampd
  and non-zero without one; the config baked into the image passes
  check-config.
- systemd: `systemd-analyze verify` is clean, the hardening options are
  there, and the offline security score stays low.
- Kubernetes: every manifest is valid YAML with the fields that matter
  (probes on /readyz and /healthz, resources, non-root read-only
  securityContext), names and ports line up across Deployment, Service,
  ConfigMap, Secret and PodMonitor, the ConfigMap's stampd.toml passes
  check-config, and the PrometheusRule equals deploy/prometheus's rules.
  The PROXY protocol the Service notes describe works end to end.
- Prometheus: `promtool check config`, `check rules` and `test rules`.
- Grafana: valid JSON whose queries use only declared metric families.
- Postfix: the stampd.toml of each Postfix mode passes check-config.
- README: a section for each way to deploy, and its metrics table lists
  exactly the families of obs/metrics.cc with their types and help texts.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import unittest

import yaml

from prometheus_tools import PROMTOOL, declared_families, metrics_address, readme_metrics, require
from smtp_client import SmtpClient, make_message
import test_main
from stampd_harness import (SOURCE_DIR, StampdTestCase, check_config, default_sections, free_port, make_key,
                            merge_sections, render_toml, sanitizer_build, stampd_bin)

DEPLOY = os.path.join(SOURCE_DIR, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")


def read(*parts):
    with open(os.path.join(SOURCE_DIR, *parts), encoding="utf-8") as f:
        return f.read()


def dockerfile_instructions():
    """dockerfile_instructions returns [(INSTRUCTION, arguments)] with
    continuation lines joined and comments dropped (as Docker reads them)."""
    out = []
    pending = []
    for line in read("Dockerfile").splitlines():
        if line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1].strip())
            continue
        pending.append(line.strip())
        text = " ".join(x for x in pending if x)
        pending = []
        if text:
            word, _, rest = text.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages():
    """stages splits the Dockerfile into [(FROM arguments, [(INSTRUCTION, args)])]."""
    out = []
    for ins, args in dockerfile_instructions():
        if ins == "FROM":
            out.append((args, []))
        elif out:
            out[-1][1].append((ins, args))
    return out


class KeysMixin:
    def make_key_dir(self):
        """make_key_dir returns a temp dir holding keys/example.com/s2026.private and upstream-password."""
        d = tempfile.mkdtemp(prefix="stampd-deploy-test-")
        self.addCleanup(shutil.rmtree, d, True)
        make_key(os.path.join(d, "keys", "example.com"), "example.com", "s2026")
        with open(os.path.join(d, "upstream-password"), "w") as f:
            f.write("secret\n")
        return d

    def assertConfigOk(self, text, directory, name="stampd.toml"):
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(text)
        rc, out, err, _ = check_config(path=path)
        self.assertEqual(rc, 0, err)
        return out


class BuildScriptTest(unittest.TestCase):
    def test_one_build_script_for_readme_ci_and_docker(self):
        build = read("deploy", "build.sh")
        self.assertIn("deploy/install-deps.sh --build-only", build)
        self.assertRegex(build, r'cmake -S \. -B "\$dir" -G Ninja -DCMAKE_BUILD_TYPE="\$type"')
        # CI: tests/run.sh (called by .ci/run) builds through it, for every build type.
        run = read("tests", "run.sh")
        self.assertIn("bash deploy/build.sh", run)
        self.assertNotRegex(run, r"(?m)^\s*cmake ")
        self.assertIn("tests/run.sh", read(".ci", "run"))
        # The README's first command.
        first = re.search(r"```sh\n(.*?)\n```", read("README.md"), re.S).group(1)
        self.assertTrue(first.startswith("deploy/build.sh "), first)
        self.assertIn("./build/stampd run -c etc/stampd.toml", first)
        # The Dockerfile's builder.
        build_stage = stages()[0]
        runs = [a for i, a in build_stage[1] if i == "RUN"]
        self.assertTrue(any(re.search(r"(^|\s)deploy/build\.sh build Release stampd(\s|$)", r) for r in runs), runs)

    def test_scripts_exist_and_parse(self):
        scripts = set()
        for ins, args in dockerfile_instructions():
            if ins == "RUN":
                scripts |= set(re.findall(r"(deploy/[\w./-]+\.sh)", args))
        scripts |= set(re.findall(r"(deploy/[\w./-]+\.sh)", read("deploy", "build.sh")))
        scripts |= set(re.findall(r"(deploy/[\w./-]+\.sh)", read("tests", "run.sh")))
        self.assertIn("deploy/build.sh", scripts)
        self.assertIn("deploy/install-deps.sh", scripts)
        for script in sorted(scripts):
            path = os.path.join(SOURCE_DIR, script)
            self.assertTrue(os.access(path, os.X_OK), script + " is missing or not executable")
            r = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)


class DockerfileTest(StampdTestCase, KeysMixin):
    def test_stages(self):
        (build_from, build), (final_from, final) = stages()
        self.assertEqual(build_from, "debian:bookworm AS build")
        self.assertIn(final_from, ("debian:bookworm-slim", "debian:bookworm"))
        # Whatever the build stage copies in is the source tree without local builds.
        ignore = read(".dockerignore").split()
        for pattern in ("build*", ".git", "var"):
            self.assertIn(pattern, ignore)
        copies = [a for i, a in final if i == "COPY"]
        self.assertIn("--from=build /src/build/stampd /usr/local/bin/stampd", copies)
        self.assertIn(("WORKDIR", "/src"), build)
        for _, args in [c for c in final if c[0] == "COPY" and "--from" not in c[1]]:
            self.assertTrue(os.path.exists(os.path.join(SOURCE_DIR, args.split()[0])), args)
        users = [a for i, a in final if i == "USER"]
        self.assertEqual(len(users), 1)
        self.assertNotIn(users[0].split(":")[0], ("root", "0"))
        self.assertRegex(read("Dockerfile"), r"useradd --system --uid 10027 ")
        entry = json.loads(dict(final)["ENTRYPOINT"])
        cmd = json.loads(dict(final)["CMD"])
        self.assertEqual(entry, ["/usr/local/bin/stampd"])
        self.assertEqual(cmd, ["run", "-c", "/etc/stampd/stampd.toml"])
        self.assertIn("10027", dict(final)["EXPOSE"].split())
        self.assertIn("9464", dict(final)["EXPOSE"].split())

    def final_packages(self):
        _, final = stages()[1]
        installs = [a for i, a in final if i == "RUN" and "apt-get install" in a]
        self.assertEqual(len(installs), 1)
        words = installs[0].split("apt-get install", 1)[1].split("&&")[0].split()
        return {w for w in words if not w.startswith("-")}

    def test_runtime_packages_cover_every_linked_library(self):
        binary = stampd_bin()
        if not shutil.which("readelf") or not shutil.which("dpkg"):
            self.skipTest("readelf or dpkg missing")
        needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout)
        self.assertIn("libunbound.so.8", needed)
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        packages = self.final_packages()
        in_base = {"libc6", "libgcc-s1"}  # essential in every Debian image
        if sanitizer_build():
            # The image holds a Release build; a sanitizer build links more.
            raise test_main.not_applicable("the binary under test is a sanitizer build")
        for lib in needed:
            path = os.path.realpath(paths[lib])
            owner = None
            for candidate in (path, "/usr" + path if not path.startswith("/usr") else path[4:]):
                r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0]
                    break
            self.assertIsNotNone(owner, "no package owns " + path)
            self.assertTrue(owner in packages or owner in in_base,
                            "%s (%s) is not installed in the final stage: %s" % (lib, owner, sorted(packages)))
        self.assertIn("ca-certificates", packages)
        # And nothing for building: no -dev packages in the final image.
        self.assertFalse([p for p in packages if p.endswith("-dev")])

    def healthcheck_command(self):
        """healthcheck_command returns the HEALTHCHECK's exec form, which must
        be `stampd health` on the config that CMD runs."""
        _, final = stages()[1]
        final = dict(final)
        m = re.search(r"CMD (\[.*\])\s*$", final["HEALTHCHECK"])
        self.assertIsNotNone(m, final["HEALTHCHECK"])
        cmd = json.loads(m.group(1))
        entry, run = json.loads(final["ENTRYPOINT"]), json.loads(final["CMD"])
        self.assertEqual(cmd, entry + ["health", "-c", run[run.index("-c") + 1]])
        return cmd

    def test_healthcheck_command_works(self):
        cmd = self.healthcheck_command()
        config = cmd[cmd.index("-c") + 1]
        up = self.start_upstream()
        # Not the default port: the check follows the config, wherever it points.
        sections = merge_sections(default_sections([up.address]),
                                  {"metrics": {"listen": "127.0.0.1:%d" % free_port()}})
        stampd = self.start_stampd(config_text=render_toml(sections), sections=sections)
        metrics_address(stampd)
        live = [stampd_bin()] + [stampd.config_path if c == config else c for c in cmd[1:]]
        r = subprocess.run(live, capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        stampd.stop()
        r = subprocess.run(live, capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1, r.stdout)

    def test_image_config_passes_check_config(self):
        d = self.make_key_dir()
        text = read("deploy", "docker", "stampd.toml")
        out = self.assertConfigOk(text, d)
        self.assertIn('listen = ["0.0.0.0:10027"]', out)
        doc = tomllib.loads(text)
        self.assertEqual(doc["metrics"]["listen"], "0.0.0.0:9464")  # the EXPOSEd port
        self.assertNotIn("user", doc["server"])  # the image is non-root already


class SystemdTest(unittest.TestCase):
    def unit(self):
        return read("deploy", "systemd", "stampd.service")

    def test_hardening_options(self):
        unit = self.unit()
        for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
                       "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "ExecReload=/bin/kill -HUP $MAINPID",
                       "User=stampd", "KillSignal=SIGTERM", "RestrictAddressFamilies=", "SystemCallFilter=@system-service"):
            self.assertIn(option, unit)
        self.assertIn("ExecStart=/usr/sbin/stampd run -c /etc/stampd/stampd.toml", unit)
        timeout = int(re.search(r"TimeoutStopSec=(\d+)s", unit).group(1))
        self.assertGreater(timeout, 30)  # the default drain_timeout

    def test_systemd_analyze_verify(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not installed")
        d = tempfile.mkdtemp(prefix="stampd-systemd-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "stampd.service")
        with open(path, "w") as f:
            f.write(self.unit().replace("/usr/sbin/stampd", stampd_bin()))
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual((r.stdout + r.stderr).strip(), "", "systemd-analyze complained")
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", path], capture_output=True, text=True,
                           timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout + r.stderr)
        if m is None:
            self.skipTest("systemd-analyze security --offline is not supported here")
        self.assertLess(float(m.group(1)), 3.0, r.stdout)


def load_manifests():
    docs = {}
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml"):
            with open(os.path.join(K8S, name)) as f:
                docs[name] = list(yaml.safe_load_all(f))
    return docs


class KubernetesTest(StampdTestCase, KeysMixin):
    def setUp(self):
        self.docs = load_manifests()
        self.by_kind = {}
        for name, items in self.docs.items():
            for doc in items:
                self.assertIsInstance(doc, dict, name)
                self.assertIn("apiVersion", doc, name)
                self.assertIn("kind", doc, name)
                self.by_kind.setdefault(doc["kind"], []).append(doc)

    def one(self, kind):
        items = self.by_kind.get(kind, [])
        self.assertEqual(len(items), 1, kind)
        return items[0]

    def test_kustomization_lists_the_manifests(self):
        k = self.one("Kustomization")
        for resource in k["resources"]:
            self.assertIn(resource, self.docs)
        # The Secret's placeholders must never be applied over real keys.
        self.assertNotIn("secret.yaml", k["resources"])
        self.assertEqual(set(self.docs) - set(k["resources"]), {"kustomization.yaml", "secret.yaml"})

    def test_deployment(self):
        dep = self.one("Deployment")
        self.assertEqual(dep["apiVersion"], "apps/v1")
        self.assertGreaterEqual(dep["spec"]["replicas"], 2)
        pod = dep["spec"]["template"]
        labels = pod["metadata"]["labels"]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"].items() - labels.items(), set())
        spec = pod["spec"]
        psc = spec["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        self.assertNotEqual(psc["runAsUser"], 0)
        (c,) = spec["containers"]
        csc = c["securityContext"]
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "metrics"})
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "metrics"})
        self.assertIn("cpu", c["resources"]["requests"])
        self.assertIn("memory", c["resources"]["requests"])
        self.assertIn("memory", c["resources"]["limits"])
        # Grace period covers the preStop pause and the drain.
        toml_doc = tomllib.loads(self.one("ConfigMap")["data"]["stampd.toml"])
        drain = int(toml_doc["server"]["drain_timeout"].rstrip("s"))
        pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        self.assertGreater(spec["terminationGracePeriodSeconds"], drain + pause)
        # Ports match the config's listeners.
        self.assertEqual(toml_doc["server"]["listen"], ["0.0.0.0:%d" % ports["smtp"]])
        self.assertEqual(toml_doc["metrics"]["listen"], "0.0.0.0:%d" % ports["metrics"])
        # Volumes: config from the ConfigMap, keys from the Secret, a writable /tmp.
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        config_dir = os.path.dirname(c["args"][c["args"].index("-c") + 1])
        self.assertEqual(volumes[mounts[config_dir]]["configMap"]["name"], self.one("ConfigMap")["metadata"]["name"])
        key_path = toml_doc["dkim"]["key"][0]["private_key"]
        secret_volume = volumes[mounts[os.path.dirname(key_path)]]["secret"]
        secret = self.one("Secret")
        self.assertEqual(secret_volume["secretName"], secret["metadata"]["name"])
        self.assertIn(os.path.basename(key_path), secret["stringData"])
        self.assertIn(os.path.basename(toml_doc["upstream"]["auth_password_file"]), secret["stringData"])
        self.assertTrue(toml_doc["dkim"]["allow_group_readable_keys"])  # Secret files are 0440
        self.assertEqual(secret_volume["defaultMode"], 0o440)
        self.assertIn("emptyDir", volumes[mounts["/tmp"]])
        self.assertNotIn(toml_doc["upstream"]["health_check_interval"], ("0s", "0m", "0h"))  # /readyz needs it

    def test_service_and_podmonitor_line_up(self):
        dep = self.one("Deployment")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
        svc = self.one("Service")
        self.assertEqual(svc["spec"]["selector"].items() - labels.items(), set())
        for p in svc["spec"]["ports"]:
            self.assertIn(p["targetPort"], ports)
        pm = self.one("PodMonitor")
        self.assertEqual(pm["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(pm["spec"]["selector"]["matchLabels"].items() - labels.items(), set())
        self.assertEqual(pm["spec"]["podMetricsEndpoints"][0]["port"], "metrics")
        pdb = self.one("PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"].items() - labels.items(), set())

    def test_prometheusrule_equals_the_alert_rules(self):
        with open(os.path.join(DEPLOY, "prometheus", "stampd-alerts.yml")) as f:
            rules = yaml.safe_load(f)
        self.assertEqual(self.one("PrometheusRule")["spec"]["groups"], rules["groups"])

    def test_configmap_config_passes_check_config(self):
        d = self.make_key_dir()
        text = self.one("ConfigMap")["data"]["stampd.toml"]
        os.rename(os.path.join(d, "keys", "example.com", "s2026.private"), os.path.join(d, "example.com.s2026.private"))
        os.chmod(os.path.join(d, "example.com.s2026.private"), 0o440)
        self.assertIn("/etc/stampd/secrets/", text)
        self.assertConfigOk(text.replace("/etc/stampd/secrets/", d + "/"), d)

    def test_proxy_protocol_as_the_service_notes_describe(self):
        up = self.start_upstream()
        sections = merge_sections(default_sections([up.address]), {
            "server": {"proxy_protocol": True, "proxy_networks": ["127.0.0.0/8"], "trusted_networks": ["10.0.0.0/8"]}})
        stampd = self.start_stampd(config_text=render_toml(sections), sections=sections)
        # A balancer's v1 header names the real client, which is trusted here.
        c = SmtpClient(*stampd.address, read_greeting=False)
        self.addCleanup(c.close)
        c.send("PROXY TCP4 10.1.2.3 10.0.0.1 40000 25\r\n")
        self.assertEqual(c.reply().code, 220)
        c.ehlo()
        self.assertEqual(c.send_mail("sender@example.com", ["rcpt@example.net"], make_message()).code, 250)
        c.quit()
        ev = stampd.wait_for_event("message")[0]
        self.assertEqual(ev["client"], "10.1.2.3:40000")
        # Without the header the connection gets nowhere.
        bare = SmtpClient(*stampd.address, read_greeting=False)
        self.addCleanup(bare.close)
        bare.send("EHLO client.test\r\n")
        self.assertNotIn(b"250", bare.wait_closed(15))


class PrometheusFilesTest(unittest.TestCase):
    def setUp(self):
        require(PROMTOOL)

    def run_promtool(self, *args):
        r = subprocess.run([PROMTOOL] + list(args), capture_output=True, text=True, timeout=60,
                           cwd=os.path.join(DEPLOY, "prometheus"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout + r.stderr

    def test_check_config(self):
        self.assertIn("SUCCESS", self.run_promtool("check", "config", "prometheus.yml"))

    def test_check_rules(self):
        out = self.run_promtool("check", "rules", "stampd-alerts.yml")
        self.assertRegex(out, r"SUCCESS: \d+ rules found")

    def test_rule_unit_tests(self):
        self.assertIn("SUCCESS", self.run_promtool("test", "rules", "stampd-alerts.test.yml"))

    def test_rules_use_declared_metrics(self):
        declared = declared_families(SOURCE_DIR)
        with open(os.path.join(DEPLOY, "prometheus", "stampd-alerts.yml")) as f:
            rules = yaml.safe_load(f)
        alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
        for want in ("StampdDown", "StampdUpstreamUnreachable", "StampdUpstreamErrors", "StampdSigningFailures",
                     "StampdTempfailRatioHigh"):
            self.assertIn(want, alerts)
        for g in rules["groups"]:
            for r in g["rules"]:
                for name in re.findall(r"\bstampd_[a-z0-9_]+", r["expr"]):
                    self.assertIn(name, declared, r["alert"])
                self.assertIn(r["labels"]["severity"], ("critical", "warning", "info"))


class GrafanaTest(unittest.TestCase):
    def test_dashboard(self):
        with open(os.path.join(DEPLOY, "grafana", "stampd-dashboard.json")) as f:
            dash = json.load(f)
        declared = declared_families(SOURCE_DIR)
        series = set(declared) | {n + s for n, (t, _) in declared.items() if t == "histogram"
                                  for s in ("_bucket", "_sum", "_count")}
        panels = [p for p in dash["panels"] if p["type"] != "row"]
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        used = set()
        for p in panels:
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                for name in re.findall(r"\bstampd_[a-z0-9_]+", t["expr"]):
                    self.assertIn(name, series, p["title"])
                    used.add(name)
        titles = " ".join(p["title"].lower() for p in panels)
        for topic in ("outcome", "latency", "upstream errors", "signatures", "spf", "connections"):
            self.assertIn(topic, titles)
        for family in ("stampd_messages_total", "stampd_relay_duration_seconds_bucket", "stampd_upstream_errors_total",
                       "stampd_dkim_signatures_total", "stampd_spf_results_total", "stampd_connections_active"):
            self.assertIn(family, used)


class PostfixFilesTest(unittest.TestCase, KeysMixin):
    def test_stampd_configs_pass_check_config(self):
        stampd_bin()
        for mode in ("content_filter", "relayhost"):
            d = self.make_key_dir()
            self.assertConfigOk(read("deploy", "postfix", mode, "stampd.toml"), d)

    def test_snippets_name_the_same_ports(self):
        cf_main = read("deploy", "postfix", "content_filter", "main.cf")
        cf_master = read("deploy", "postfix", "content_filter", "master.cf")
        cf_toml = tomllib.loads(read("deploy", "postfix", "content_filter", "stampd.toml"))
        self.assertIn("content_filter = stampd:[127.0.0.1]:10027", cf_main)
        self.assertEqual(cf_toml["server"]["listen"], ["127.0.0.1:10027"])
        self.assertEqual(cf_toml["upstream"]["servers"], ["127.0.0.1:10026"])
        self.assertRegex(cf_master, r"(?m)^127\.0\.0\.1:10026 inet ")
        self.assertRegex(cf_master, r"(?m)^stampd +unix ")
        for option in ("-o content_filter=\n", "smtpd_authorized_xforward_hosts=127.0.0.0/8",
                       "no_header_body_checks", "smtp_send_xforward_command=yes",
                       "disable_mime_output_conversion=yes"):
            self.assertIn(option, cf_master)
        self.assertIn("disable_mime_output_conversion = yes", cf_main)
        rh_main = read("deploy", "postfix", "relayhost", "main.cf")
        self.assertIn("relayhost = [127.0.0.1]:10027", rh_main)
        rh_toml = tomllib.loads(read("deploy", "postfix", "relayhost", "stampd.toml"))
        self.assertEqual(rh_toml["server"]["listen"], ["127.0.0.1:10027"])
        self.assertEqual(rh_toml["upstream"]["tls"], "required")


class ReadmeTest(unittest.TestCase):
    def test_deploy_sections(self):
        readme = read("README.md")
        headings = re.findall(r"(?m)^### (.+)$", readme)
        for want in ("Trial: into a Maildir", "Postfix: after-queue content filter", "Postfix: relayhost",
                     "Debian package", "systemd", "Docker", "Kubernetes", "Behind a load balancer",
                     "Prometheus and Grafana"):
            self.assertIn(want, headings)
        self.assertIn("tests/deploy/test_container.py", readme)
        # Every deploy/ path the README names exists.
        for path in set(re.findall(r"`(deploy/[\w./-]+)`", readme)):
            self.assertTrue(os.path.exists(os.path.join(SOURCE_DIR, path)), path)

    def test_metrics_table_matches_metrics_cc(self):
        declared = declared_families(SOURCE_DIR)
        table = readme_metrics(SOURCE_DIR)
        self.assertEqual(sorted(table), sorted(declared))
        for name, (kind, help_text) in declared.items():
            self.assertEqual(table[name][0], kind, name)
            self.assertEqual(table[name][2], help_text, name)


if __name__ == "__main__":
    test_main.main()
