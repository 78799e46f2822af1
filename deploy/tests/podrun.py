"""Running a rendered container spec with the real ``tidewatch`` binary.

What the kubelet would do, minus the container runtime: the rendered args,
config file and plain env of a container, its mount paths mapped into a
temporary directory and its listen address moved to a free loopback port; then
its probes are polled (with a deadline) and it is stopped with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from manifests import dig, pod_spec


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
