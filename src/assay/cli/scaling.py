"""The ``assay fit`` and ``assay plan`` commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table
from rich.text import Text

from assay.cli.common import console, fail, guarded, warn
from assay.errors import EXIT_NOT_CONVERGED
from assay.io.ownership import WRITTEN_BY, check_file_output
from assay.io.writers import write_json
from assay.quantities import parse_quantity
from assay.scaling.compare import compare_tokens
from assay.scaling.fit import FittedLaw, LawFit, fit_groups
from assay.scaling.laws import LAWS, make_law
from assay.scaling.plan import Plan, PlanError, flops_from_gpu_hours, make_plan
from assay.scaling.published import GPU_PEAK_FLOPS, PUBLISHED
from assay.scaling.runs import RunsError, read_runs


def quantity(text: str) -> float:
    """:func:`assay.quantities.parse_quantity` for an option: a bad value is a usage error."""
    try:
        return parse_quantity(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_point(text: str) -> dict[str, float]:
    """'N=7e9,D=2e12' -> {'N': 7e9, 'D': 2e12} (names N, D, U; case-insensitive)."""
    point: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        key = name.strip().upper()
        if not sep or key not in ("N", "D", "U"):
            raise typer.BadParameter(f"{part!r}: expected N=..., D=... or U=...")
        point[key] = quantity(value)
    return point


@guarded
def fit_command(
    runs_csv: Annotated[Path, typer.Argument(help="runs CSV: params, tokens, loss[, unique_tokens, group]")],
    law: Annotated[str, typer.Option(help=f"law to fit: {', '.join(LAWS)}")] = "chinchilla",
    x: Annotated[str, typer.Option(help="input of the power law: N or D")] = "D",
    y: Annotated[str, typer.Option(help="target column (loss, or a metric for 'downstream')")] = "loss",
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for intervals (0: none)")] = 1000,
    confidence: Annotated[float, typer.Option(help="interval coverage")] = 0.95,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    predict: Annotated[list[str] | None, typer.Option(
        help="predict at a point, e.g. N=7e9,D=2e12 (repeatable)")] = None,
    compare_at: Annotated[str, typer.Option(
        help="where groups are compared: N=...[,D=...] (D defaults to 20 N)")] = "N=1e9",
    plot: Annotated[Path | None, typer.Option(help="write a PNG plot here (needs the plot extra)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the fit as JSON (for assay plan --law)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """Fit a scaling law to training runs, per group, with bootstrap intervals.

    Laws: chinchilla (Hoffmann et al. 2022, fitted as Besiroglu et al. 2024), kaplan
    (Kaplan et al. 2020), power (Hestness et al. 2017), data-constrained (Muennighoff et al.
    2023) and downstream (Isik et al. 2024). Exits 4 if a fit did not converge.

    Example: assay fit examples/sweep-runs.csv --predict N=1e9,D=20e9 --out fit.json
    """
    for path in (out, plot):
        if path is not None:
            check_file_output(path)
    try:
        if not 0 < confidence < 1:
            raise typer.BadParameter("--confidence must be between 0 and 1")
        if bootstrap < 0:
            raise typer.BadParameter("--bootstrap must be >= 0")
        the_law = make_law(law, x=x.upper()) if law == "power" else make_law(law)
        points = [parse_point(p) for p in predict or []]
        for point in points:
            missing = [k for k in the_law.inputs if k not in point]
            if missing:
                raise typer.BadParameter(f"--predict needs {', '.join(missing)} for the {law} law")
        where = parse_point(compare_at)
        runs = read_runs(runs_csv, target=y)
        fits = fit_groups(the_law, runs, bootstrap=bootstrap, confidence=confidence, seed=seed)
    except (RunsError, ValueError) as exc:
        raise fail(str(exc)) from None
    predictions = [_prediction(fit.model, point) for fit in fits.values() for point in points]
    comparisons = _comparisons(fits, where)
    report = {"written_by": WRITTEN_BY, "fits": [f.to_dict() for f in fits.values()],
              "predictions": predictions, "comparisons": comparisons}
    if out is not None:
        write_json(str(out), report)
    if plot is not None:
        from assay.scaling.plot import PlotUnavailable, plot_fits

        try:
            plot_fits(fits, runs, plot)
        except PlotUnavailable as exc:
            raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print_fits(fits, predictions, comparisons)
        if plot is not None:
            console.print(f"plot: {plot}")
        if out is not None:
            console.print(f"fit: {out}")
    for name, fit in fits.items():
        for problem in fit.problems():
            warn(f"{'' if name is None else f'group {name}: '}fit not identified: {problem}")
    failed = [str(g) for g, f in fits.items() if not f.converged]
    if failed:
        warn(f"the fit did not converge{'' if failed == ['None'] else ' for ' + ', '.join(failed)}: "
             "its parameters are not a minimum; do not use them")
        raise typer.Exit(EXIT_NOT_CONVERGED)


def _prediction(model: FittedLaw, point: dict[str, float]) -> dict[str, Any]:
    pred = model.predict(**{k: point[k] for k in model.law.inputs})
    return {"group": model.group, "inputs": point, "target": model.law.target,
            "value": float(pred.value[0]), "low": _num(pred.low[0]), "high": _num(pred.high[0]),
            "confidence": model.confidence, "law": f"{model.law.title} ({model.law.citation})"}


def _comparisons(fits: dict[str | None, LawFit], where: dict[str, float]) -> list[dict[str, Any]]:
    models = [f.model for f in fits.values() if f.converged]
    if len(models) < 2 or "D" not in models[0].law.inputs or "N" not in where:
        return []
    n = where["N"]
    d = where.get("D", 20.0 * n)
    savings = [compare_tokens(models[0], other, n, d) for other in models[1:]]
    return [s.to_dict() | {"sentence": s.sentence()} for s in savings]


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _fmt(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e5 else f"{x:.4e}"


def _print_fits(fits: dict[str | None, LawFit], predictions: list[dict[str, Any]],
                comparisons: list[dict[str, Any]]) -> None:
    for name, fit in fits.items():
        model = fit.model
        pct = f"{100 * model.confidence:.0f}%"
        title = f"{model.law.title}: {model.law.formula}" + ("" if name is None else f"  [group {name}]")
        table = Table("parameter", "value", f"{pct} low", f"{pct} high", title=title,
                      caption=model.law.citation)
        intervals = model.intervals()
        for key, value in model.params().items():
            table.add_row(key, _fmt(value), _fmt(intervals[key][0]), _fmt(intervals[key][1]))
        console.print(table)
        good = fit.goodness()
        identified = not fit.problems()
        verdict = (Text("NOT CONVERGED", "red") if not fit.converged else Text("converged", "green")
                   if identified else Text("converged, but NOT IDENTIFIED (see the warnings)", "yellow"))
        console.print(verdict + Text(
            f" ({fit.message}); {fit.starts_converged}/{fit.starts} starts converged; "
            f"{len(fit.observed)} runs; Huber objective {good['huber']:.6g}; RMSE(log) "
            f"{good['rmse_log']:.4g}; mean |error| {good['mean_abs_pct']:.2f}% (max "
            f"{good['max_abs_pct']:.2f}%); R^2 {good['r2']:.4f}; "
            f"{fit.bootstrap_converged}/{fit.bootstrap_requested} bootstrap refits converged"))
    if predictions:
        table = Table("group", "at", "prediction", "low", "high", title="predictions")
        for p in predictions:
            at = ", ".join(f"{k}={v:.3g}" for k, v in p["inputs"].items())
            table.add_row(str(p["group"] or "-"), at, _fmt(p["value"]), _fmt(p["low"]),
                          _fmt(p["high"]))
        console.print(table)
    for c in comparisons:
        console.print(c["sentence"])


@guarded
def plan_command(
    flops: Annotated[str | None, typer.Option(help="compute budget in FLOPs, e.g. 1e21")] = None,
    gpu_hours: Annotated[str | None, typer.Option(help="GPU-hours (instead of --flops)")] = None,
    gpu: Annotated[str, typer.Option(help=f"GPU for --gpu-hours: {', '.join(GPU_PEAK_FLOPS)}")] = "h100",
    mfu: Annotated[float, typer.Option(help="model FLOPs utilisation for --gpu-hours")] = 0.4,
    unique_tokens: Annotated[str | None, typer.Option(help="unique tokens available, e.g. 25e9")] = None,
    law: Annotated[str, typer.Option(
        help=f"published constants ({', '.join(PUBLISHED)}) or a fit file from assay fit --out")
    ] = "besiroglu",
    group: Annotated[str | None, typer.Option(help="group of a fit file with several")] = None,
    force: Annotated[bool, typer.Option("--force", help="plan with a fit its runs do not identify")] = False,
    d_model: Annotated[int | None, typer.Option(help="model width, for the vocabulary size")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Plan a compute-optimal run: parameters, tokens, epochs, learning rate, batch, vocabulary.

    N* and D* from a loss law (published constants or a fit file); epochs and the repetition
    penalty when unique tokens are short (Muennighoff et al. 2023); learning rate and batch
    size (Step Law, Li et al. 2025; DeepSeek LLM, Bi et al. 2024); vocabulary size (Tao et
    al. 2024). Every number names its law.

    Example: assay plan --flops 1e21 --unique-tokens 25e9
    """
    try:
        if (flops is None) == (gpu_hours is None):
            raise PlanError("give exactly one of --flops or --gpu-hours")
        if flops is not None:
            budget, budget_source = quantity(flops), "given"
        else:
            budget = flops_from_gpu_hours(quantity(gpu_hours or ""), gpu, mfu)
            budget_source = (f"{gpu_hours} {gpu.upper()} GPU-hours x {GPU_PEAK_FLOPS[gpu.lower()]:.4g} "
                             f"FLOP/s (dense BF16 peak) x MFU {mfu}")
        fitted = _load_law(law, group, force)
        result = make_plan(budget, fitted, flops_source=budget_source, d_model=d_model,
                           unique_tokens=None if unique_tokens is None else quantity(unique_tokens))
    except (PlanError, RunsError, ValueError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    _print_plan(result)


def _load_law(name: str, group: str | None, force: bool = False) -> FittedLaw:
    if name in PUBLISHED:
        return PUBLISHED[name].fitted()
    path = Path(name)
    if not path.exists():
        raise PlanError(f"--law {name!r} is neither published constants ({', '.join(PUBLISHED)}) "
                        "nor a fit file")
    try:
        fits = json.loads(path.read_text())["fits"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise PlanError(f"{path}: not a fit file written by assay fit --out") from None
    if group is not None:
        fits = [f for f in fits if str(f.get("group")) == group]
    if len(fits) != 1:
        groups = ", ".join(str(f.get("group")) for f in json.loads(path.read_text())["fits"])
        raise PlanError(f"{path}: choose one group with --group ({groups})")
    if not fits[0].get("fit", {}).get("converged", True):
        raise PlanError(f"{path}: that fit did not converge; refit before planning with it")
    problems = fits[0].get("problems") or []
    if problems and not force:
        raise PlanError(f"{path}: its runs do not identify that fit ({problems[0]}; "
                        f"{len(problems)} problem(s) in all, see assay fit): a plan from it would "
                        "extrapolate noise; refit with more runs or a smaller law, or pass --force")
    model = FittedLaw.from_dict(fits[0])
    return FittedLaw(model.law, model.theta, model.samples, model.confidence, model.group,
                     f"fit {path.name}" + ("" if model.group is None else f" [{model.group}]"))


def _print_plan(plan: Plan) -> None:
    table = Table("quantity", "value", "interval", "unit", "law / source", title="compute-optimal plan")
    for item in plan.items:
        band = f"{_fmt(item.low)} - {_fmt(item.high)}" if item.low is not None else ""
        table.add_row(item.quantity, _fmt(item.value), band, item.unit, item.source)
    console.print(table)
    for note in plan.notes:
        console.print(f"note: {note}")
