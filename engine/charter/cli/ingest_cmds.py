"""`charter ingest`: compute a bundle's KPIs from prediction logs, evaluation labels or agent traces.

The rows stay in the engine (DuckDB embedded, Spark, or PostgreSQL where the table lives); only
aggregates come back. The bundle names every input by digest, the mapping and declared-values files
by digest, and `charter ingest --verify BUNDLE` recomputes it from them.
"""

import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import CharterError
from .common import OutputFormat, catalog_for, err, out, parse_time, policies_dir, print_listing, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption

if TYPE_CHECKING:
    from ..ingest import Measurement


def ingest(
    source: Annotated[str | None, typer.Argument(help="Parquet, CSV or JSON-lines file or folder; "
                                                "postgresql://user@host:port/DATABASE/TABLE; or spark:TABLE.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="The registered system the data is of.")] = None,
    window: Annotated[str | None, typer.Option("--window", help="The measured window: 2026-06 (a month), "
                                               "2026-06-03 (a day) or START/END (ISO 8601).")] = None,
    mapping: Annotated[Path | None, typer.Option("--mapping", help="Which column holds what (YAML; JSON Schema: "
                                                 "`charter schema mapping`).")] = None,
    reference: Annotated[str | None, typer.Option("--reference", help="A window of the same source to measure "
                                                  "drift against (the mapping's `drift` section).")] = None,
    declared: Annotated[Path | None, typer.Option("--declared", help="KPI values stated, not computable from the "
                                                  "rows (YAML: kpis: {monitoring_coverage: 0.97}); recorded by "
                                                  "digest and marked as declared.")] = None,
    model_version: Annotated[str | None, typer.Option("--model-version", help="The model version measured "
                                                      "(or model_version in the declared file).")] = None,
    measured_at: Annotated[str | None, typer.Option("--measured-at", help="When the measurement counts as made "
                                                    "(ISO 8601); default: now.")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="duckdb (default for files), spark, or postgres "
                                               "(default for PostgreSQL tables).")] = None,
    spark_master: Annotated[str | None, typer.Option("--spark-master", help="Spark master URL (spark://host:7077); "
                                                     "default local[2] or CHARTER_SPARK_MASTER.")] = None,
    submitter: Annotated[str | None, typer.Option("--submitter", help="Who submits (default: the --key's "
                                                  "principal).")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Your private key: signs the bundle.")] = None,
    output_file: Annotated[Path | None, typer.Option("--out", help="Write the bundle here (default: standard "
                                                     "output, unless --submit).")] = None,
    submit: Annotated[bool, typer.Option("--submit", help="Submit the signed bundle to the ledger (or the server "
                                         "at CHARTER_URL), as `charter submit` does.")] = False,
    verify: Annotated[Path | None, typer.Option("--verify", help="Recompute this bundle from the inputs it names; "
                                                "exit 1 if any digest or value differs.")] = None,
    base: Annotated[Path | None, typer.Option("--base", help="Where the relative paths a bundle names are "
                                              "resolved (--verify; default: the working directory).")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json (the summary).")]
    = OutputFormat.TABLE,
    policies: Annotated[Path | None, typer.Option("--policies", help="For custom KPIs (policies/kpis.yaml).")]
    = None,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Compute KPIs from raw data into an evidence bundle (and sign and submit it), or verify one."""
    from ..ingest import ENGINES, Window, load_declared, load_mapping, measure

    chosen = _engine(engine, ENGINES)
    spark = _spark(chosen, spark_master)
    if verify is not None:
        _verify(verify, base, chosen, spark, policies, output)
        return
    missing = [name for name, value in (("SOURCE", source), ("--system", system), ("--window", window),
                                        ("--mapping", mapping)) if value is None]
    if missing:
        raise CharterError.single("usage", f"charter ingest needs {', '.join(missing)} (or --verify BUNDLE)")
    assert source is not None and system is not None and window is not None and mapping is not None
    if submit and key is None:
        raise CharterError.single("usage", "--submit sends a signed bundle: give --key")
    parsed_mapping = load_mapping(mapping)
    values = load_declared(declared) if declared is not None else None
    version = model_version or (values.model_version if values else None)
    if version is None:
        raise CharterError.single("usage", "give --model-version (or model_version in the declared file)")
    at = parse_time(measured_at, "--measured-at") if measured_at else (values.measured_at if values else None)
    measured_window = Window.parse(window)
    reference_window = Window.parse(reference, option="--reference") if reference else None
    when = at or datetime.datetime.now(datetime.UTC)
    if when < measured_window.end:  # refused before the rows are read, not after
        raise CharterError.single("window_open", f"the window {measured_window.label()} has not closed at "
                                  f"{when.isoformat()}: a window is measured once it ended")
    if output_file is not None and output_file.exists():
        raise CharterError.single("output_exists", "refusing to overwrite", file=str(output_file))
    measurement = measure(source, parsed_mapping, measured_window, reference=reference_window, engine=chosen,
                          spark=spark)
    signer = _load_key(key)
    who = submitter or (signer.principal if signer is not None else None)
    if who is None:
        raise CharterError.single("usage", "give --submitter (or --key, whose principal submits)")
    if submit:
        from .ledger import catalog_in_force

        # Submitted bundles are read with the ledger's catalog; the folder may only repeat it.
        catalog = catalog_in_force(db, ledger_key, policies_dir(policies) if policies is not None else None)
    else:
        catalog = catalog_for(policies_dir(policies), None)
    from ..ingest import bundle_from

    bundle = bundle_from(measurement, system_id=system, model_version=version, submitter=who,
                         mapping_file=mapping, declared=dict(values.kpis) if values else None,
                         declared_file=declared, measured_at=when,
                         min_label_coverage=parsed_mapping.labels.min_coverage, catalog=catalog)
    data = bundle.model_dump(mode="json", exclude={"signature"})
    if signer is not None:
        from ..submission import sign_bundle_data

        data = sign_bundle_data(data, signer)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    # Standard output carries one document: the bundle, the submission's receipts, or (with --out) the summary.
    _summary(measurement, bundle.kpis, values.kpis if values else {}, output,
             to_stderr=submit or output_file is None)
    if output_file is not None:
        output_file.write_text(text, encoding="utf-8")
        err.print(f"bundle written to {safe(str(output_file))}")
    if submit:
        from ..submission import prepare_bundle
        from .ledger import submit_prepared
        from .remote import remote_client

        if remote_client(db) is None:
            _warn_unmet_needs(bundle, db, ledger_key, catalog)
        prepared = prepare_bundle(text, catalog, file=str(output_file or f"ingest:{source}"))
        submit_prepared([prepared], catalog, output, db=db, ledger_key=ledger_key)
    elif output_file is None:
        typer.echo(text, nl=False)


def _warn_unmet_needs(bundle: Any, db: str | None, ledger_key: Path, catalog: Any) -> None:
    """Say, before submitting, which KPIs the policies in force read for this system that the bundle lacks."""
    from ..authority import active_policies
    from ..ingest import needed_kpis
    from ..submission import default_compiler, registry_in_ledger
    from .ledger import open_ledger

    ledger = open_ledger(db, ledger_key, writable=False)
    system = registry_in_ledger(ledger).get(bundle.system_id)
    if system is None:
        return  # the submission refuses it, naming the unknown system
    needed = needed_kpis(active_policies(ledger, default_compiler(catalog)).policy_set.policies, system)
    present = set(bundle.kpis) | {kpi for values in bundle.segments.values() for kpi in values}
    unmet = sorted(needed - present)
    if unmet:
        err.print(f"[yellow]warning[/]: the policies in force for {safe(system.id)} read {', '.join(unmet)}, which "
                  "the mapping does not compute and --declared does not state: those rules will report missing "
                  "evidence")


def _engine(engine: str | None, engines: tuple[str, ...]) -> Any:
    if engine is not None and engine not in engines:
        raise CharterError.single("usage", f"--engine {engine!r}: use {', '.join(engines)}")
    return engine


def _spark(engine: str | None, master: str | None) -> Any:
    if engine != "spark":
        if master is not None:
            raise CharterError.single("usage", "--spark-master goes with --engine spark")
        return None
    try:
        from ..ingest.sources import spark_session

        return spark_session(master)
    except ImportError as exc:
        raise CharterError.single("engine_unavailable", "the spark engine is not installed (pip install "
                                  f"'charter-governance[spark]'): {exc}") from None


def _load_key(path: Path | None) -> Any:
    if path is None:
        return None
    from ..ledger import SigningKey

    return SigningKey.load(path)


def _summary(measurement: "Measurement", kpis: dict[str, float], declared: dict[str, float],
             output: OutputFormat, *, to_stderr: bool) -> None:
    computed = measurement.computed
    if output is OutputFormat.JSON:
        if not to_stderr:
            typer.echo(json.dumps({"engine": measurement.engine, "rows": computed.rows, "kpis": measurement.kpis,
                                   "declared": declared, "segments": measurement.segments,
                                   "provenance": json.loads(json.dumps(measurement.provenance, default=str))},
                                  indent=2, sort_keys=True))
        return
    console = err if to_stderr else out
    window = measurement.window
    console.print(f"{safe(measurement.source.redacted())} on {measurement.engine}: {computed.rows:,} rows in "
                  f"{window.label()}" + (f", label coverage {computed.label_coverage:.1%}"
                                         if computed.label_coverage is not None else ""))
    rows = [[kpi, f"{value:.6g}", "declared" if kpi in declared else "computed"] for kpi, value in sorted(kpis.items())]
    if to_stderr:
        for kpi, value, how in rows:
            console.print(f"  {kpi} = {value} ({how})")
    else:
        print_listing("KPIs", ["kpi", "value", "how"], rows, ids={"kpi"})
    for column, counts in sorted(computed.quality.items()):
        console.print(f"[yellow]{safe(column)}[/]: {counts['nulls']:,} null and {counts['nan']:,} NaN values in the "
                      "window, left out of the KPIs that read it")
    for note in computed.notes:
        console.print(f"[yellow]note[/]: {safe(note)}")


def _verify(path: Path, base: Path | None, engine: Any, spark: Any, policies: Path | None,
            output: OutputFormat) -> None:
    from ..bundle import EvidenceBundle
    from ..ingest import verify_bundle

    catalog = catalog_for(policies_dir(policies), None)
    bundle = EvidenceBundle.from_file(path, catalog)
    report = verify_bundle(bundle, base=base, engine=engine, spark=spark)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"ok": report.ok, "problems": report.problems, "inputs": report.checked_inputs,
                               "values": report.checked_values}, indent=2, sort_keys=True))
    elif report.ok:
        out.print(f"ok: {safe(str(path))} recomputed from {report.checked_inputs} input(s): {report.checked_values} "
                  "values match")
    else:
        for problem in report.problems:
            err.print(f"[red]differs[/]: {safe(problem)}")
        err.print(f"{safe(str(path))}: {len(report.problems)} difference(s); the bundle does not follow from the "
                  "inputs it names")
    if not report.ok:
        raise typer.Exit(1)
