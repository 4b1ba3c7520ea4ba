"""`charter serve --config FILE`: a flag typed on the command line overrides the file (and says so when it
replaces another value); a flag left at its default changes nothing the file says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from charter.api.settings import SETTINGS_ENV
from charter.cli import app
from charter.errors import CharterError
from tests.governed import governed_ledger


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file over a governed SQLite ledger; uvicorn is replaced by a recorder of the settings."""
    governed_ledger(tmp_path)
    path = tmp_path / "service.yaml"
    path.write_text(yaml.safe_dump({
        "database_url": f"sqlite:///{tmp_path / '.charter' / 'ledger.db'}",
        "ledger_key": str(tmp_path / ".charter" / "ledger.key"),
        "reports_dir": str(tmp_path / "from-file"), "checkpoint_every": 10}), encoding="utf-8")
    monkeypatch.setenv(SETTINGS_ENV, "")
    monkeypatch.delenv("CHARTER_DATABASE_URL", raising=False)
    monkeypatch.delenv("CHARTER_LEDGER_KEY", raising=False)
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    return path


def _serve(*args: str) -> tuple[Any, dict[str, Any]]:
    import os

    result = CliRunner().invoke(app, ["serve", *args])
    settings = json.loads(os.environ[SETTINGS_ENV]) if os.environ.get(SETTINGS_ENV) else {}
    return result, settings


def test_defaults_leave_the_files_settings_alone(config: Path) -> None:
    result, settings = _serve("--config", str(config))
    assert result.exit_code == 0, result.output
    assert settings["reports_dir"].endswith("from-file") and settings["checkpoint_every"] == 10
    assert "overrides" not in result.output


def test_a_flag_given_overrides_the_file_and_says_so(config: Path, tmp_path: Path) -> None:
    result, settings = _serve("--config", str(config), "--reports-dir", str(tmp_path / "from-flag"),
                              "--checkpoint-every", "10")
    assert result.exit_code == 0, result.output
    assert settings["reports_dir"].endswith("from-flag") and settings["checkpoint_every"] == 10
    assert "--reports-dir" in result.output and "overrides reports_dir" in result.output
    assert "--checkpoint-every" not in result.output  # the same value as the file's: nothing to say


def test_the_files_workers_are_not_replaced_by_the_flags_default(config: Path) -> None:
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    config.write_text(yaml.safe_dump({**document, "workers": 2}), encoding="utf-8")
    # SQLite takes one worker: refused, since the file's 2 is kept rather than overwritten with the default 1
    result, _ = _serve("--config", str(config))
    assert isinstance(result.exception, CharterError) and "one worker" in str(result.exception)
    result, settings = _serve("--config", str(config), "--workers", "1")
    assert result.exit_code == 0, result.output
    assert settings["workers"] == 1 and "--workers 1 overrides workers: 2" in result.output


def test_a_db_flag_is_not_ignored_with_a_config(config: Path, tmp_path: Path) -> None:
    result, _ = _serve("--config", str(config), "--db", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    # the flag's database is the one opened (and it has no ledger): before, the file's was used silently
    assert result.exception is not None and "elsewhere" in result.output + str(result.exception)


def test_oidc_flags_with_a_config_are_refused_not_ignored(config: Path) -> None:
    result, _ = _serve("--config", str(config), "--oidc-issuer", "https://id.example", "--oidc-audience", "charter")
    assert isinstance(result.exception, CharterError) and "oidc section" in str(result.exception)
