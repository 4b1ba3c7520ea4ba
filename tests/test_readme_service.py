"""The README's service walkthrough (its ```shell block under "### The service") runs as shown.

`tests/test_docs.py` runs the ```sh blocks, but `charter serve` never returns, so this block is run
here, line by line in one working directory: each line through bash (with ``charter`` meaning this
checkout's CLI, and the variables the block exports kept for the lines after), the serve line in
the background, waited for on its readiness endpoint. One substitution: the PostgreSQL URL the
README names is replaced by a fresh schema of the test database (CHARTER_TEST_DATABASE_URL), so the
run starts from an empty database; the port is kept as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, wait_for_service

README = (REPO / "README.md").read_text(encoding="utf-8")
#: what the README's lines call `charter`: this checkout's package, as `run_cli` runs it
_CHARTER = f"charter() {{ {shlex.quote(sys.executable)} -m charter \"$@\"; }}\n"


def service_block() -> list[str]:
    """The lines of the ```shell block of the README's service section."""
    section = README.split("### The service", 1)[1]
    block = re.search(r"```shell\n(.*?)```", section, flags=re.S)
    assert block is not None, "the service section has no ```shell block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_service_walkthrough_names_the_commands_it_documents() -> None:
    lines = service_block()
    assert any(line.startswith("charter serve ") and line.endswith("&") for line in lines)
    assert any(line.startswith("curl ") and "/v1/bundles" in line for line in lines)
    assert any(line.startswith("charter whoami") for line in lines)


def _bash(line: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", _CHARTER + line], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def _wait_ready(port: str, server: subprocess.Popen[bytes], log: Path) -> None:
    wait_for_service(f"http://127.0.0.1:{port}", server, 60, log)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_service_walkthrough_runs_as_shown(db_url: str, tmp_path: Path) -> None:
    lines = service_block()
    documented = {m.group(0) for line in lines for m in re.finditer(r"postgresql://[^\s'\"]+", line)}
    assert len(documented) == 1, documented
    [readme_url] = documented
    (tmp_path / "evidence").symlink_to(REPO / "evidence")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARTER_") or k == "CHARTER_TEST_DATABASE_URL"}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    server: subprocess.Popen[bytes] | None = None
    log = tmp_path / "serve.log"
    outputs: list[str] = []
    try:
        for line in lines:
            line = line.replace(readme_url, shlex.quote(db_url))
            command, _, comment = line.partition("   # ")
            if command.startswith("charter serve "):
                words = shlex.split(command.rstrip("& "))
                port = words[words.index("--port") + 1]
                with log.open("wb") as sink:
                    server = subprocess.Popen([sys.executable, "-m", "charter", *words[1:]], cwd=tmp_path, env=env,
                                              stdout=sink, stderr=subprocess.STDOUT)
                _wait_ready(port, server, log)
                continue
            if command.startswith("export "):
                name = command.split()[1].split("=", 1)[0]
                result = _bash(f"{command}\nprintf %s \"${name}\"", env, tmp_path)
                assert result.returncode == 0 and result.stdout, f"{line}\n{result.stderr}"
                env[name] = result.stdout
                continue
            expected = int(m.group(1)) if (m := re.search(r"exit (\d)", comment)) else 0
            result = _bash(command, env, tmp_path)
            assert "Traceback" not in result.stderr, f"{line}\n{result.stderr}"
            assert result.returncode == expected, f"{line}\n{result.stdout}\n{result.stderr}"
            outputs.append(result.stdout + result.stderr)
            if command.startswith("curl ") and "/v1/bundles" in command:
                answer = json.loads(result.stdout)
                assert answer["receipt"]["log"] == "charter.demo/ledger" and answer["duplicate"] is True
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    token = env.get("CHARTER_TOKEN", "")
    assert token.startswith("chtr_")
    assert not any(token in output for output in outputs), "a command printed the token"
    assert token not in log.read_text(errors="replace")
    assert any("tom.berger" in output and "system_owner" in output for output in outputs)  # charter whoami
