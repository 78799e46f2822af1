"""Rendering the Tidewatch chart and checking rendered Kubernetes objects.

Rendering uses the Helm v4 SDK (``helm-python-sdk``: the Go code of ``helm
template``; no ``helm`` CLI and no Kubernetes API server exist here) and Helm's
own YAML reader. ``ManifestChecks`` holds what every rendered set of objects
must satisfy, whatever the values: the Kubernetes API schemas (strict), and
the cross-object consistency the API server and kubelet rely on.
"""

from __future__ import annotations

import re
from pathlib import Path

import helm_python as helm

try:  # Kubernetes' own OpenAPI schemas, per version (pip package kubernetes-validate).
    import kubernetes_validate
except ImportError:  # reported by the schema check, which then fails
    kubernetes_validate = None

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "tidewatch"
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
# The aggregator's other roles (docs/scaling.md): Deployments running `tidewatch aggregator`
# with their own `aggregator.distributed.mode`.
AGGREGATOR_ROLES = {"ingester": "ingester", "query": "query", "compactor": "compactor"}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def merged_values(values: dict | None) -> dict:
    """The chart's values.yaml with ``values`` merged over it as Helm does (maps merge, the rest replaces)."""
    def merge(base, over):
        if isinstance(base, dict) and isinstance(over, dict):
            out = dict(base)
            for k, v in over.items():
                out[k] = merge(base.get(k), v) if k in base else v
            return out
        return over
    defaults = helm.values_from_yaml((CHART / "values.yaml").read_text())
    return merge(defaults, values or {})


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
            self.assertEqual(args[0], "aggregator" if component in AGGREGATOR_ROLES else component, cwhere)
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
        section = "aggregator" if component in AGGREGATOR_ROLES else COMPONENTS[component][1]
        cfg = helm.values_from_yaml(cm["data"]["tidewatch.yaml"])
        self.assertEqual(set(cfg), {"listen", "data_dir", "log_format", section}, where)
        self.assertEqual(cfg["listen"], f"0.0.0.0:{values.get('port', PORT)}", where)
        self.assertEqual(cfg["data_dir"], values.get("dataDir", "/var/lib/tidewatch"), where)
        self.assertEqual(cfg["log_format"], values.get("logFormat", "json"), where)
        # The free-form section arrives as given (merged over the chart's defaults); the
        # aggregator roles only add `distributed`, with their own mode.
        want = dict(dig(merged_values(values), "config", section, default={}) or {})
        got = dict(cfg[section] or {})
        if section == "aggregator":
            v = merged_values(values)
            mode = AGGREGATOR_ROLES.get(component) or ("consumer" if v["distributed"]["enabled"] else "standalone")
            if v["s3"]["enabled"] or v["distributed"]["enabled"]:
                dist = got.pop("distributed")
                self.assertEqual(dist["mode"], mode, where)
                for k, val in (want.pop("distributed", None) or {}).items():
                    if k != "mode":
                        self.assertEqual(dist.get(k), val, f"{where}: distributed.{k} given in values")
        self.assertEqual(got, want, where)


def existing_secrets(values: dict) -> set[str]:
    found = set()
    for path in (("outputs", "kafka"), ("outputs", "elasticsearch"), ("s3",), ("smtp",)):
        name = dig(values, *path, "existingSecret")
        if name:
            found.add(name)
    return found


def env_of(wl: dict) -> dict[str, dict]:
    return {e["name"]: e for e in pod_spec(wl)["containers"][0].get("env", [])}
