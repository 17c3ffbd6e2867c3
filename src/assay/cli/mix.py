"""``assay mix``: fit the mixing law and RegMix's regressor to proxy runs, and choose a
mixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.table import Table

from assay.cli.common import ExecutorKind, console, fail, guarded, inert, ray_settings, warn
from assay.io.ownership import YAML_MARK, check_file_output
from assay.io.writers import write_bytes
from assay.prepare.mixture import DEFAULT_MAX_EPOCHS
from assay.quantities import parse_count

if TYPE_CHECKING:
    from assay.mix.law import LawFit
    from assay.mix.runs import MixRuns

ExecutorOpt = Annotated[ExecutorKind, typer.Option(
    help="train the proxies here (local) or as Ray tasks on a cluster (ray)")]
AddressOpt = Annotated[str | None, typer.Option(help="with --executor ray: auto, local, HOST:PORT or ray://HOST:PORT")]

mix_app = typer.Typer(help="Find a data mixture from proxy runs (RegMix, Data Mixing Laws).",
                      no_args_is_help=True)


def _unique(text: str) -> dict[str, float]:
    """'web=300M,code=40M' -> {'web': 3e8, 'code': 4e7}."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{part!r}: expected DOMAIN=TOKENS, e.g. web=300M")
        try:
            out[name.strip()] = float(parse_count(value))
        except ValueError as exc:
            raise typer.BadParameter(f"{part!r}: {exc}") from None
    return out


@mix_app.command("fit")
@guarded
def fit_command(
    runs_csv: Annotated[Path, typer.Argument(help="proxy runs: weight:<domain> columns and the target loss")],
    target: Annotated[str, typer.Option(help="the target loss column")] = "target",
    constant: Annotated[bool, typer.Option("--constant/--no-constant",
                                           help="fit c, the loss no mixture removes")] = True,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for intervals")] = 200,
    seed: Annotated[int, typer.Option(help="seed of the bootstrap, the folds and the candidates")] = 0,
    optimize: Annotated[bool, typer.Option("--optimize", help="choose the mixture with the lowest "
                                           "predicted target loss")] = False,
    tokens: Annotated[str | None, typer.Option(
        help="tokens the real run will train on (for epoch caps)")] = None,
    unique: Annotated[str | None, typer.Option(
        help="unique tokens per domain, e.g. web=300M,code=40M")] = None,
    max_epochs: Annotated[float, typer.Option(
        help="passes over a domain a mixture may ask")] = DEFAULT_MAX_EPOCHS,
    model: Annotated[str, typer.Option(help="which model's optimum to write: law or gbm")] = "law",
    out: Annotated[Path | None, typer.Option(
        help="write the chosen mixture as a prepare `mixture:` block")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Fit the mixing law (Ye et al. 2024) and a gradient-boosted regressor (RegMix, Liu et
    al. 2024) from mixture weights to the target loss; report each one's cross-validated
    rank correlation and R^2, the law's parameters with bootstrap intervals and what the
    runs leave unidentified; with --optimize, the mixture each predicts best under the
    epoch caps (--tokens, --unique, --max-epochs).

    Example: assay mix fit runs.csv --optimize --tokens 2B --unique web=300M,code=40M,books=90M --out mix.yaml
    """
    # Imported here: scipy's optimisers and statistics are not needed by the other verbs.
    from assay.mix.law import fit_law
    from assay.mix.optimize import caps_from_tokens
    from assay.mix.regress import cross_validate
    from assay.mix.runs import read_runs

    if model not in ("law", "gbm"):
        raise typer.BadParameter("--model is law or gbm")
    if (tokens is None) != (unique is None):
        raise typer.BadParameter("give --tokens and --unique together (they set the epoch caps)")
    if out is not None:
        if not optimize:
            raise typer.BadParameter("--out writes the chosen mixture: add --optimize")
        check_file_output(out)
    runs = read_runs(runs_csv, target)
    caps = np.ones(len(runs.domains))
    if tokens is not None and unique is not None:
        caps = caps_from_tokens(runs.domains, _unique(unique), float(parse_count(tokens)), max_epochs)
    fit = fit_law(runs.weights, runs.target, constant=constant, bootstrap=bootstrap, seed=seed,
                  domains=runs.domains)
    scores = cross_validate(runs.weights, runs.target, constant=constant, seed=seed)
    report: dict[str, Any] = {
        "runs": len(runs.target), "domains": list(runs.domains), "target": target,
        "law": {**fit.law.to_json(runs.domains), "rmse": fit.rmse, "identified": fit.identified,
                "problems": fit.problems, "intervals": _named(fit.parameter_intervals(), runs.domains)},
        "cross_validation": {name: {"spearman": s.spearman, "r2": s.r2} for name, s in scores.items()},
    }
    if optimize:
        report["optimum"] = _optima(runs, fit, caps, seed)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print(report)
    for problem in fit.problems:
        warn(f"mixing law not identified: {problem}")
    if out is not None:
        chosen = report["optimum"][model]
        write_bytes(str(out), _mixture_yaml(runs_csv, runs, chosen, model, fit).encode())
        console.print(inert(f"wrote {out} ({model}'s mixture)"))
    if optimize and model == "law" and not fit.identified:
        raise fail("the law's mixture rests on an unidentified fit (see the warnings); "
                   "--model gbm writes RegMix's instead")


def _named(intervals: dict[str, tuple[float, float]], domains: tuple[str, ...]) -> dict[str, list[float]]:
    return {(f"t:{domains[int(k[1:])]}" if k.startswith("t") else k): list(v) for k, v in intervals.items()}


def _optima(runs: MixRuns, fit: LawFit, caps: np.ndarray, seed: int) -> dict[str, Any]:
    """The law's exact optimum and RegMix's (the tree model's best candidates, averaged)."""
    from assay.mix.law import law_optimum
    from assay.mix.optimize import regmix_optimum
    from assay.mix.regress import gbm

    prior = runs.weights.mean(axis=0)
    law_w = law_optimum(fit.law.t, caps)
    lo, hi = fit.interval(law_w)
    tree = gbm(seed).fit(runs.weights, runs.target)
    gbm_w = regmix_optimum(tree.predict, prior, caps, seed=seed)
    return {
        "caps": dict(zip(runs.domains, caps.tolist(), strict=True)),
        "law": {"weights": dict(zip(runs.domains, law_w.tolist(), strict=True)),
                "predicted": float(fit.law.predict(law_w)), "interval": [lo, hi]},
        "gbm": {"weights": dict(zip(runs.domains, gbm_w.tolist(), strict=True)),
                "predicted": float(tree.predict(gbm_w[None])[0]),
                "law_predicted": float(fit.law.predict(gbm_w))},
        "best_run": {"weights": dict(zip(runs.domains, runs.weights[np.argmin(runs.target)].tolist(),
                                         strict=True)), "loss": float(runs.target.min())},
    }


def _mixture_yaml(source: Path, runs: MixRuns, chosen: dict[str, Any], model: str, fit: LawFit) -> str:
    lines = [YAML_MARK.rstrip("\n"),
             f"# assay mix fit {source.name}: the {model}'s mixture under the epoch caps"]
    if model == "law":
        lo, hi = chosen["interval"]
        lines.append(f"# predicted target loss {chosen['predicted']:.4f} (95% interval {lo:.4f}-{hi:.4f})")
    else:
        lines.append(f"# predicted target loss {chosen['predicted']:.4f} (tree model)")
    lines += [f"# not identified: {p}" for p in fit.problems]
    lines += ["# add each source's path (and select) as in the prepare recipe", "mixture:", "  sources:"]
    for name, weight in chosen["weights"].items():
        lines.append(f"    {json.dumps(name)}: {{weight: {weight:.4f}}}")
    return "\n".join(lines) + "\n"


def _print(report: dict[str, Any]) -> None:
    law = report["law"]
    console.print(inert(f"{report['runs']} runs, {len(report['domains'])} domains, "
                        f"target {report['target']}"))
    table = Table(title="mixing law L(r) = c + k exp(r . t)", title_justify="left")
    for column in ("parameter", "value", "95% interval"):
        table.add_column(column)
    intervals = law["intervals"]
    rows = [("c", law["c"]), ("k", law["k"]), *((f"t:{d}", v) for d, v in law["t"].items())]
    for name, value in rows:
        lo_hi = intervals.get(name)
        table.add_row(inert(name), f"{value:.4g}", f"{lo_hi[0]:.4g} .. {lo_hi[1]:.4g}" if lo_hi else "-")
    console.print(table)
    cv = report["cross_validation"]
    law_cv = ("too few runs to fit it in every fold" if not np.isfinite(cv["law"]["r2"]) else
              f"Spearman {cv['law']['spearman']:.3f}, R^2 {cv['law']['r2']:.3f}")
    console.print(inert(f"held-out runs (5-fold): law {law_cv}; gbm Spearman {cv['gbm']['spearman']:.3f}, "
                        f"R^2 {cv['gbm']['r2']:.3f}"))
    if "optimum" in report:
        opt = report["optimum"]
        table = Table(title="mixtures", title_justify="left")
        table.add_column("domain")
        for column in ("cap", "law", "gbm (RegMix)", "best run"):
            table.add_column(column, justify="right")
        for d in report["domains"]:
            table.add_row(inert(d), f"{opt['caps'][d]:.3f}", f"{opt['law']['weights'][d]:.3f}",
                          f"{opt['gbm']['weights'][d]:.3f}", f"{opt['best_run']['weights'][d]:.3f}")
        lo, hi = opt["law"]["interval"]
        table.add_row("predicted loss", "", f"{opt['law']['predicted']:.4f} [{lo:.4f}, {hi:.4f}]",
                      f"{opt['gbm']['predicted']:.4f}", f"{opt['best_run']['loss']:.4f} (observed)")
        console.print(table)



@mix_app.command("search")
@guarded
def search_command(
    spec_file: Annotated[Path, typer.Argument(
        help="the search's spec (YAML): domains, target, proxy, mixtures")],
    executor: ExecutorOpt = ExecutorKind.local,
    address: AddressOpt = None,
) -> None:
    """Train a small proxy on each of the spec's mixtures (the natural one, then draws around
    it under the epoch caps; RegMix, Liu et al. 2024) and append each one's weights and
    held-out losses to OUTPUT/runs.csv for `assay mix fit`. Run again, it skips the proxies
    already there. With `--executor ray` the proxies are Ray tasks of one CPU each (the
    output must be on storage every node sees); the rows are the same.

    Example: assay mix search examples/mix-search.yaml && assay mix fit out/mix/runs.csv --optimize
    """
    from assay.mix.search import load_mix_spec, run_search

    ray = ray_settings(executor, address)
    spec = load_mix_spec(spec_file)
    csv_path = run_search(spec, log=lambda message: console.print(inert(message)), ray=ray)
    console.print(inert(f"runs: {csv_path} (next: assay mix fit {csv_path} --optimize)"))


@mix_app.command("anneal")
@guarded
def anneal_command(
    spec_file: Annotated[Path, typer.Argument(help="a mix spec (YAML) with an anneal block")],
    executor: ExecutorOpt = ExecutorKind.local,
    address: AddressOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """What each domain is worth at the end of training (Blakeney et al. 2024): a proxy
    trains on the natural mixture at a constant learning rate, then, from its checkpoint, an
    anneal (the rate decaying to zero over the last `anneal.fraction` of the tokens) runs once
    on the natural mixture and once per domain with that domain at `anneal.upsample`. A
    domain's gain is how much lower its anneal leaves the target loss than the natural one,
    paired by seed. Rows in OUTPUT/anneal/anneal.csv; run again, it skips what finished.

    Example: assay mix anneal examples/mix-search.yaml
    """
    from assay.mix.anneal import CONTROL, gains, read_anneal, run_anneal
    from assay.mix.search import load_mix_spec

    ray = ray_settings(executor, address)
    spec = load_mix_spec(spec_file)
    path = run_anneal(spec, log=lambda message: console.print(inert(message)), ray=ray)
    rows = read_anneal(path)
    result = gains(rows)
    if as_json:
        sys.stdout.write(json.dumps({"anneal": str(path), "arms": result}, indent=2) + "\n")
        return
    table = Table(title=f"target loss after the anneal (upsampled to {spec.anneal.upsample:.0%}); gain: "
                        f"{CONTROL} minus the arm, paired by seed", title_justify="left")
    for column in ("arm", "target loss", "gain", "std of gain", "seeds"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm, g in sorted(result.items(), key=lambda kv: -kv[1]["gain"]):
        table.add_row(inert(arm), f"{g['target']:.4f}", "" if arm == CONTROL else f"{g['gain']:+.4f}",
                      "" if arm == CONTROL or np.isnan(g["gain_std"]) else f"{g['gain_std']:.4f}",
                      str(g["seeds"]))
    console.print(table)
    console.print(inert(f"rows: {path}"))
