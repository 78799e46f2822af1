"""Running a rendered container spec with the real ``tidewatch`` binary.

What the kubelet would do, minus the container runtime: the rendered args,
config file and plain env of a container, its mount paths mapped into a
temporary directory and its listen address moved to a free loopback port; then
its probes are polled (with a deadline) and it is stopped with SIGTERM.
"""

from __future__ import annotations

import os
import re
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


class RunningContainer:
    """A rendered container started with the real binary (see ``start_container``)."""

    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path, grace: int):
        self.proc, self.port, self.log_path, self.grace = proc, port, log_path, grace

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        """SIGTERM (pod deletion); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=self.grace)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _rewrite(value: str, prefixes: list[tuple[str, str]]) -> str:
    """Moves absolute container paths starting with a mount path into the emulated filesystem."""
    for path, local in prefixes:
        if value == path or value.startswith(path + "/"):
            return local + value[len(path):]
    return value


def _rewrite_text(text: str, prefixes: list[tuple[str, str]]) -> str:
    """Like ``_rewrite`` for every path inside a config file (at path boundaries, in one pass)."""
    if not prefixes:
        return text
    local = dict(prefixes)
    alternatives = "|".join(re.escape(p) for p, _ in sorted(prefixes, key=lambda p: -len(p[0])))
    pattern = r"(?<![\w/.-])(" + alternatives + r")(?=[/\s\"',\]}]|$)"
    return re.sub(pattern, lambda m: local[m.group(1)], text, flags=re.M)


def start_container(wl: dict, by_key: dict, root: Path, host_paths: dict[str, str] | None = None,
                    extra_env: dict[str, str] | None = None) -> RunningContainer:
    """Starts the first container of workload ``wl`` the way the kubelet would, minus the runtime.

    The container's filesystem is emulated under ``root/fs``: each mount path becomes a directory
    there (a ConfigMap's files written out, an emptyDir empty) or, for a hostPath volume, a link to
    the host directory when mounted read-only (``host_paths`` maps a host path to a stand-in
    directory; a writable one gets a fresh directory unless mapped). Mount paths (and
    ``TIDEWATCH_HOST_ROOT``) in the args, the plain env values and the ConfigMap files are moved
    there; the listen address goes to a free loopback port. Env values from Secrets are not
    resolved (``extra_env`` may supply them).
    """
    host_paths = host_paths or {}
    pod = pod_spec(wl)
    c = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    fs = root / "fs"
    plain_env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    mounts = sorted(c["volumeMounts"], key=lambda m: m["mountPath"])
    prefixes = [(m["mountPath"], str(fs) + m["mountPath"]) for m in mounts]
    if "TIDEWATCH_HOST_ROOT" in plain_env:
        hr = plain_env["TIDEWATCH_HOST_ROOT"]
        prefixes.append((hr, str(fs) + hr))
    prefixes.sort(key=lambda p: -len(p[0]))
    config_files = []
    for m in mounts:
        local = Path(str(fs) + m["mountPath"])
        vol = volumes.get(m["name"], {})
        host = dig(vol, "hostPath", "path")
        if host and (host in host_paths or m.get("readOnly")):
            # A read-only host directory (logs, procfs, sysfs) is the host's own, or a stand-in.
            target = host_paths.get(host, host)
            if local.exists():
                # Already visible through a parent mount's link (/host/sys, then /host/sys/fs/cgroup).
                if local.resolve() != Path(target).resolve():
                    raise AssertionError(f"cannot emulate mount {m['mountPath']} of {host}: "
                                         f"it lies inside another mount that shows {local.resolve()}")
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            local.symlink_to(target)
            continue
        local.mkdir(parents=True, exist_ok=True)
        cm = dig(vol, "configMap", "name")
        if cm:
            for key in by_key[("ConfigMap", cm)]["data"]:
                config_files.append((local / key, by_key[("ConfigMap", cm)]["data"][key]))
    for path, text in config_files:
        path.write_text(_rewrite_text(text, prefixes))
    port = free_port()
    args = []
    for a in c["args"]:
        if a.startswith("--listen="):
            a = f"--listen=127.0.0.1:{port}"
        elif "=" in a:
            flag, value = a.split("=", 1)
            a = f"{flag}={_rewrite(value, prefixes)}"
        args.append(a)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    for k, v in plain_env.items():
        env[k] = _rewrite(v, prefixes)
    env.update(extra_env or {})
    log_path = root / "container.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([os.environ["TIDEWATCH_BIN"], *args], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return RunningContainer(proc, port, log_path, pod.get("terminationGracePeriodSeconds", 30))


def wait_probes(test: unittest.TestCase, wl: dict, run: RunningContainer) -> None:
    """Polls the container's probes until each answers 200 (deadline 60 s)."""
    c = pod_spec(wl)["containers"][0]
    probes = {name: c[name]["httpGet"]["path"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    deadline = time.monotonic() + 60
    pending = dict(probes)
    while pending and time.monotonic() < deadline and run.proc.poll() is None:
        for name, path in list(pending.items()):
            status = http_status(run.url(path))
            if status == 200:
                del pending[name]
            elif status == 404:
                test.fail(f"{c['name']}: {name} path {path} does not exist (404)")
        if pending:
            time.sleep(0.1)
    test.assertEqual(pending, {}, f"{c['name']}: probes not answering 200 (exit {run.proc.poll()}): {run.log()}")


def run_container_and_probe(test: unittest.TestCase, wl: dict, by_key: dict, root: Path) -> None:
    c = pod_spec(wl)["containers"][0]
    run = start_container(wl, by_key, root)
    try:
        wait_probes(test, wl, run)
        # The role the pod asked for is the role that runs.
        with urllib.request.urlopen(run.url("/metrics"), timeout=5) as resp:
            test.assertIn(f'role="{c["args"][0]}"', resp.read().decode())
        # SIGTERM (pod deletion) ends it cleanly within the grace period.
        test.assertEqual(run.stop(), 0, run.log())
    finally:
        run.kill()
