"""The ``assay`` command: ``run``, ``steps`` and ``inspect``; the other verbs register here."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, get_args

import click
import orjson
import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from assay import __version__
from assay.cli.common import ExecutorKind, console, fail, guarded, inert, options, warn
from assay.cli.mix import mix_app
from assay.cli.prepare import prepare_command
from assay.cli.scaling import fit_command, plan_command
from assay.cli.select import select_app
from assay.cli.train import compare_command, detect_command, sweep_command, train_command
from assay.engine.settings import RunError
from assay.pipeline import run_recipe, with_executor
from assay.recipe import load_recipe
from assay.report import print_funnel
from assay.report.docstrings import as_text, first_line
from assay.report.funnel import funnel
from assay.steps import step_class, step_names

# The verbs in the order of the work (typer would list a command group such as select last).
VERBS = ("run", "steps", "inspect", "select", "prepare", "train", "compare", "sweep", "fit", "plan")


class _InWorkOrder(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(super().list_commands(ctx), key=lambda n: VERBS.index(n) if n in VERBS else len(VERBS))


app = typer.Typer(cls=_InWorkOrder, add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  pretty_exceptions_enable=False,
                  help="assay turns raw text into LLM pretraining data and measures what it is worth.")


def _version(value: bool) -> None:
    if value:
        console.print(f"assay {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of a failure")] = False,
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True,
                                                 help="print the version and exit")] = None,
) -> None:
    options.debug = debug


class _RichProgress:
    """One progress bar per stage, counting shards and documents."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[int, TaskID] = {}
        self.docs: dict[int, int] = {}

    def stage_started(self, stage: int, description: str, total: int | None) -> None:
        self.docs[stage] = 0
        self.tasks[stage] = self.progress.add_task(inert(description), total=total, docs=0)

    def stage_total(self, stage: int, total: int) -> None:
        self.progress.update(self.tasks[stage], total=total)

    def shard_done(self, stage: int, docs: int) -> None:
        self.docs[stage] += docs
        self.progress.update(self.tasks[stage], advance=1, docs=self.docs[stage])

    def stage_finished(self, stage: int) -> None:
        task = self.tasks[stage]
        done = self.progress.tasks[self.tasks[stage]].completed
        self.progress.update(task, total=done, completed=done)


@app.command()
@guarded
def run(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    workers: Annotated[int | None, typer.Option(help="worker processes (default: CPU count)")] = None,
    resume: Annotated[bool, typer.Option(help="finish an interrupted run into the same output")] = False,
    strict: Annotated[bool, typer.Option(help="stop at the first malformed input record")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace the run in an output folder assay wrote")] = False,
    executor: Annotated[ExecutorKind | None, typer.Option(
        help="run the tasks here (local) or on a Ray cluster (ray); default: the recipe's")] = None,
    address: Annotated[str | None, typer.Option(
        help="with --executor ray: auto, local, HOST:PORT or ray://HOST:PORT")] = None,
    report: Annotated[bool, typer.Option(
        help="write OUTPUT/report.html at the end (see assay report)")] = True,
) -> None:
    """Run a recipe: read, curate, and write kept, rejected and quarantined documents,
    then the run's report (OUTPUT/report.html).

    Re-running into the same output skips the shards that are already finished, so a
    killed run is finished by running the same command again (or with --resume), on
    either executor.

    Example: assay run examples/web-quality.yaml --executor ray --address 10.0.0.5:6379
    """
    if resume and overwrite:
        raise typer.BadParameter("--resume and --overwrite contradict each other")
    spec = with_executor(load_recipe(recipe), executor and executor.value, address)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
        MofNCompleteColumn(), TextColumn("shards · {task.fields[docs]:,} docs", markup=False),
        TimeElapsedColumn(), console=console, transient=False,
    ) as bars:
        result = run_recipe(spec, workers=workers, strict=strict, overwrite=overwrite,
                            resume=resume, progress=_RichProgress(bars), notice=warn)
    print_funnel(result.manifest, console)
    for warning in result.manifest.get("warnings", []):
        warn(warning)
    if report:
        output = spec.output.path
        if "://" in output and not output.startswith("file://"):
            warn(f"no report for an output at {output}: `assay report` writes one from a local copy")
            return
        try:
            _write_report(Path(output.removeprefix("file://")), None, seed=0, samples=5)
        except Exception as exc:  # the run is done and its books balance: a report never fails it
            if options.debug:
                raise
            warn(f"the report could not be written ({type(exc).__name__}: {exc}); the run's output is "
                 "complete; try `assay report` (--debug shows the traceback)")


@app.command()
@guarded
def steps(name: Annotated[str | None, typer.Argument(help="a step to describe")] = None) -> None:
    """List the registered steps, or show one step's parameters and defaults.

    Example: assay steps gopher_quality
    """
    if name is None:
        table = Table("step", "kind", "summary")
        for step in step_names():
            cls = step_class(step)
            table.add_row(step, cls.kind, first_line(cls.__doc__))
        console.print(table)
        return
    try:
        cls = step_class(name)
    except KeyError as exc:
        raise fail(exc.args[0]) from None
    console.print(Text.assemble((name, "bold"), f" ({cls.kind})"))
    console.print()
    console.print(as_text(cls.__doc__))
    table = Table("parameter", "type", "default", "description", title="parameters")
    for field, info in cls.Params.model_fields.items():
        default = "required" if info.default is PydanticUndefined else repr(info.default)
        table.add_row(field, _type_name(info.annotation), default, info.description or "")
    console.print(table)
    if cls.signal_types:
        console.print("signals: " + ", ".join(f"{name}.{s}" for s in cls.signal_types))


@app.command("inspect")
@guarded
def inspect_output(
    output: Annotated[Path, typer.Argument(help="an output folder written by `assay run`")],
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest's totals as JSON")] = False,
    rejected: Annotated[bool, typer.Option("--rejected", help="show sampled rejected documents")] = False,
    step: Annotated[str | None, typer.Option(help="--rejected: only this step's")] = None,
    reason: Annotated[str | None, typer.Option(help="--rejected: only this reason's")] = None,
    samples: Annotated[int, typer.Option(min=1, help="--rejected: documents per step and reason")] = 3,
    seed: Annotated[int, typer.Option(help="--rejected: seed of the sample")] = 0,
) -> None:
    """Print the funnel and top reasons of a finished run, from its manifest; with
    --rejected, a sample of the rejected documents with the signal values that decided them.

    Examples: assay inspect out/web-quality
              assay inspect out/web-quality --rejected --step gopher_repetition --reason top_3_gram
    """
    manifest_path = output / "manifest.json"
    if not manifest_path.is_file():
        raise RunError(f"{manifest_path} not found: is {output} an assay output of a finished run?")
    try:
        manifest: dict[str, Any] = orjson.loads(manifest_path.read_bytes())
        if not isinstance(manifest.get("totals"), dict) or not isinstance(manifest.get("steps"), list):
            raise ValueError("no totals or steps")
        funnel(manifest)  # a manifest of another shape fails here, before anything is printed
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"not a manifest written by assay run ({type(exc).__name__}: {exc})",
                       file=str(manifest_path)) from None
    if rejected:
        _print_rejected(output, seed, samples, step, reason)
        return
    if as_json:
        sys.stdout.write(orjson.dumps(
            {"totals": manifest["totals"], "steps": manifest["steps"]}, option=orjson.OPT_INDENT_2
        ).decode() + "\n")
        return
    print_funnel(manifest, console)


def _print_rejected(output: Path, seed: int, samples: int, step: str | None, reason: str | None) -> None:
    from assay.report.rejected import format_signals, sample_rejected

    groups = sample_rejected(output, seed, samples, step, reason)
    if not groups:
        console.print(inert(f"no rejected documents{' of step ' + step if step else ''}"
                            f"{' with reason ' + reason if reason else ''}", one_line=True))
        return
    for group in groups:
        console.print(Text(inert(f"{group.step}: {group.reason} ({group.total:,} rejected)", one_line=True),
                           style="bold"))
        for record in group.records:
            text = record["text"] or ""
            cut = text[:400] + (f" … ({len(text):,} characters)" if len(text) > 400 else "")
            console.print(Text(inert(f"  {record['id']} · {record['source']} · "
                                     f"{format_signals(group.signals(record))}", one_line=True), style="dim"))
            console.print(Text("    " + inert(cut).replace("\n", "\n    ")))


@app.command("report")
@guarded
def report_command(
    output: Annotated[Path, typer.Argument(
        help="an output of assay run, prepare or compare, or the file assay fit --out wrote")],
    out: Annotated[Path | None, typer.Option(
        help="the HTML file to write (default OUTPUT/report.html; beside a fit file, NAME.html)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the document samples")] = 0,
    samples: Annotated[int, typer.Option(help="rejected documents shown per step and reason")] = 5,
) -> None:
    """Write one self-contained HTML page showing what a run, a prepare, a compare or a fit
    did (no network, no script).

    Examples: assay report out/web-quality
              assay report shards/ --out prepare.html
              assay report fit.json
    """
    _write_report(output, out, seed=seed, samples=samples)


def _write_report(output: Path, out: Path | None, seed: int, samples: int) -> None:
    """Write the report of the output ``output`` (into it, beside a fit file, or to ``out``)
    and say where."""
    from assay.io.ownership import check_file_output, read_marker
    from assay.io.writers import write_bytes
    from assay.report.kinds import report_kind
    from assay.report.prepare_report import prepare_report
    from assay.report.run_report import run_report
    from assay.report.scaling_report import compare_report, fit_report

    kind = report_kind(output)
    if out is None and kind == "fit":
        out = output.with_suffix(".html")
    elif out is None and read_marker(str(output)) is None:
        raise RunError(f"{output} is not a folder assay marked as its own; give --out FILE")
    target = out or output / "report.html"
    check_file_output(target)
    started = time.perf_counter()
    if kind == "run":
        page = run_report(output, seed=seed, per_reason=samples)
    elif kind == "prepare":
        page = prepare_report(output, seed=seed)
    elif kind == "compare":
        page = compare_report(output)
    else:
        page = fit_report(output)
    data = page.encode()
    write_bytes(str(target.resolve()), data)
    console.print(f"report → {inert(str(target), one_line=True)} ({len(data):,} bytes, "
                  f"{time.perf_counter() - started:.1f} s)")


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__ if not issubclass(annotation, BaseModel) else "mapping"
    return str(annotation).replace("typing.", "")


# The other verbs, in the order of the work.
app.add_typer(select_app, name="select")
app.add_typer(mix_app, name="mix")
app.command("prepare")(prepare_command)
app.command("train")(train_command)
app.command("detect")(detect_command)
app.command("compare")(compare_command)
app.command("sweep")(sweep_command)
app.command("fit")(fit_command)
app.command("plan")(plan_command)


if __name__ == "__main__":
    app()
