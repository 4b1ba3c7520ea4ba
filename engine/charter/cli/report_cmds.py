"""`charter report`: an audit-readiness report per framework, bound to a signed checkpoint and issued in the ledger."""

import os
import stat
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CharterError
from .common import catalog_for, out, parse_time, policies_dir, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption, open_ledger, pinned_public_key


class FrameworkName(StrEnum):
    """The frameworks a report can be about."""

    ISO_42001 = "iso-42001"
    EU_AI_ACT = "eu-ai-act"
    NIST_AI_RMF = "nist-ai-rmf"


class ReportFormat(StrEnum):
    """Report formats."""

    HTML = "html"
    MD = "md"
    JSON = "json"


class ReportFile:
    """Publishes a report at `path` atomically, and takes it back if issuing it fails.

    Entering checks the destination and creates the temporary file beside it, so an unwritable path
    fails before any checkpoint is signed. `publish` renames the finished bytes into place (a reader
    never sees half a report); leaving the block with an error restores whatever `path` held before.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary: Path | None = None
        self._backup: Path | None = None
        self._published = False

    def _fail(self, exc: OSError, path: Path | None = None) -> CharterError:
        return CharterError.single("write_failed", exc.strerror or str(exc), file=str(path or self.path))

    def __enter__(self) -> "ReportFile":
        import tempfile

        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise self._fail(exc) from exc
        if mode is not None and not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode) else "not a file"
            raise CharterError.single("write_failed", f"the destination is {kind}; name a regular file",
                                      file=str(self.path))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            os.close(handle)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(name, 0o666 & ~umask)  # mkstemp makes the file private; a report is meant to be shared
        except OSError as exc:
            raise self._fail(exc) from exc
        self._temporary = Path(name)
        return self

    def publish(self, data: bytes) -> None:
        """Write `data` and move it into place, keeping a hard link to the previous file until the block ends."""
        assert self._temporary is not None, "publish inside the with block"
        try:
            with self._temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if self.path.exists():
                self._backup = self._temporary.with_suffix(".previous")
                os.link(self.path, self._backup)
            os.replace(self._temporary, self.path)
            self._published = True
        except OSError as exc:
            raise self._fail(exc) from exc

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is not None and self._published:
            if self._backup is not None:
                os.replace(self._backup, self.path)
                self._backup = None
            else:
                self.path.unlink(missing_ok=True)
        for leftover in (self._temporary, self._backup):
            if leftover is not None:
                leftover.unlink(missing_ok=True)


def report(
    framework: Annotated[FrameworkName, typer.Option("--framework", help="The framework to report on.")],
    output_file: Annotated[Path, typer.Option("-o", "--output", help="Where to write the report.")],
    output: Annotated[ReportFormat, typer.Option("--format", help="html (self-contained), md or json.")]
    = ReportFormat.HTML,
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    at: Annotated[str, typer.Option("--at", help="The report's time: evidence freshness and waivers are judged "
                                    "then (ISO 8601 or 'now'; not before the newest evidence, not in the future).")]
    = "now",
    policies: Annotated[Path | None, typer.Option("--policies", help="For custom KPIs (kpis.yaml); the policies "
                                                  "and escalation configuration are those in force in the "
                                                  "ledger.")] = None,
    full_verify: Annotated[bool, typer.Option("--full-verify", help="Read every entry again instead of "
                                              "resuming from the verified state the last report recorded.")]
    = False,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Write an audit-readiness report: controls, rules, evidence, incidents, gaps, scores, KPI trends.

    The report is bound to a checkpoint signed just before it is built, states the verify result,
    and its SHA-256 is recorded in the ledger as it is issued.
    """
    from ..authority import active_escalation, active_policies
    from ..ledger.store import format_time
    from ..notify import FUTURE_TOLERANCE
    from ..report import bind, build_report, issue, render
    from ..submission import default_compiler, systems_in_ledger

    as_of = parse_time(at)
    ledger = open_ledger(db, ledger_key, writable=True)
    # The policies and escalation configuration in force in the ledger, not a folder's: the report
    # describes what governed the evidence. --policies only adds custom KPIs and control catalogs.
    compiler = default_compiler(catalog_for(policies_dir(policies), None))
    frameworks = compiler.frameworks
    policy_set = active_policies(ledger, compiler).policy_set
    graph, _ = active_escalation(ledger)
    ledger_now = ledger.clock()
    if as_of > ledger_now + FUTURE_TOLERANCE:
        raise CharterError.single("future_time", f"--at {format_time(as_of)} is later than now "
                                  f"({format_time(ledger_now)}); a report cannot describe evidence as it will be")
    if system is not None and system not in systems_in_ledger(ledger):
        raise CharterError.single("unknown_system", f"system {system!r} is not registered in the ledger")
    with ReportFile(output_file) as target:
        snapshot, binding = bind(ledger, pinned_public_key(ledger_key, None), as_of, full=full_verify)
        document = build_report(snapshot, framework.value, frameworks, policy_set.policies, graph, binding, as_of,
                                system)
        text = render(document, output.value, graph)
        target.publish(text.encode())
        entry = issue(ledger, document, output.value, text, output_file.name)
    score = document.scores.framework
    out.print(f"{safe(str(output_file))}: {framework.value} readiness {score.readiness:.0%}, coverage "
              f"{score.coverage:.0%} ({score.covered} of {score.assessed} controls), bound to checkpoint "
              f"{binding.checkpoint_size}; issued at seq {entry.seq} (sha256 {entry.payload['sha256'][:16]}…)")
