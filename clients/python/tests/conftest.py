"""A real stack for the test session: `tessera-dev up` from the repository's debug build
(nats-server, redis-server, the workers and a demo plugin server), and the `tessera` CLI
for admin steps. TESSERA_BIN_DIR overrides where the two binaries are."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN_DIR = Path(
    os.environ.get("TESSERA_BIN_DIR")
    or Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug"
)
READY_LINE = "Ctrl-C stops everything."
START_TIMEOUT = 60.0
#: The local user every test logs in as (`ann` fixture).
PASSWORD = "correct horse battery"


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]

    @property
    def env_file(self) -> Path:
        return self.data_dir / "tessera.env"

    def tessera(self, *args: str, stdin: str | None = None) -> str:
        """Runs the `tessera` CLI against this stack; its stdout, stripped."""
        done = subprocess.run(
            [str(BIN_DIR / "tessera"), "--env-file", str(self.env_file), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=self.data_dir,
        )
        if done.returncode != 0:
            raise AssertionError(f"tessera {' '.join(args)}: {done.stderr}")
        return done.stdout.strip()


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = v.strip().strip("'\"")
    return env


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="tessera-py-") as tmp:
        data_dir = Path(tmp)
        env = dict(os.environ)
        tools = REPO / ".tools" / "nats" / "bin"
        env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
        log = open(data_dir / "up.log", "w+")
        proc = subprocess.Popen(
            [str(BIN_DIR / "tessera-dev"), "up", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=REPO,
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + START_TIMEOUT
            for line in proc.stdout:
                if READY_LINE in line:
                    break
                if time.monotonic() > deadline:
                    break
            else:
                log.seek(0)
                raise RuntimeError(f"tessera-dev up exited early:\n{log.read()[-4000:]}")
            yield Stack(data_dir, read_env(data_dir / "tessera.env"))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@pytest.fixture(scope="session")
def ann(stack: Stack) -> str:
    """A local user, and the route `weather` -> the stack's demo plugin server."""
    stack.tessera("users", "add", "ann", "--password-stdin", stdin=PASSWORD + "\n")
    stack.tessera("routes", "set", "weather", "demo")
    return "ann"
