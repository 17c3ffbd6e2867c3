"""HTML reports of ``assay fit --out FILE`` and ``assay compare``, one self-contained page each.

The fit page, per group: the law with its verdict and goodness of fit, the parameters with
their bootstrap intervals, the fitted curve over the runs with the interval band into the
extrapolation (log axes; for a law of N and D, one curve per model size as in
:mod:`assay.scaling.plot`), and the residuals; then the predictions and the token savings
between groups. The runs' N and D are not in the fit file: they are read back from the runs
CSV it names (``source``), used only if its targets equal the fit's observations line by
line; otherwise the chart shows observed against predicted.

The compare page: the recipes, the held-out set, the comparison table (mean ± std per recipe,
the paired difference to the baseline with its interval), every run, and the training loss
curves (mean over seeds) with the held-out losses from ``curves.json``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from assay.report import html as h
from assay.report.kinds import COMPARE, CURVES, ReportError, is_compare, is_fit, read_json
from assay.scaling.fit import FittedLaw
from assay.scaling.plot import EXTRAPOLATE, SLICES
from assay.scaling.runs import ALIASES, GROUP_ALIASES, RunsError, read_runs

Points = dict[int, dict[str, float]]  # CSV line -> {"N": ..., "D": ..., "U": ...}
AXIS = {"N": "parameters N", "D": "tokens D"}


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e5 else f"{x:.4e}"


def fit_chart(model: FittedLaw, residuals: list[dict[str, Any]], points: Points | None) -> str:
    """The runs and the fitted law with its band; observed against predicted without ``points``."""
    law = model.law
    observed = [float(r["observed"]) for r in residuals]
    log_y = law.target == "loss"
    if points is None:
        predicted = [float(r["predicted"]) for r in residuals]
        ends = [min(observed + predicted), max(observed + predicted)]
        return h.chart_svg(
            [
                h.Series(ends, ends, "line", "#999999", "y = x"),
                h.Series(observed, predicted, "points", h.PALETTE[0], "runs"),
            ],
            log_x=log_y,
            log_y=log_y,
            x_label=f"observed {law.target}",
            y_label=f"predicted {law.target}",
        )
    run = [points[int(r["line"])] for r in residuals]
    x_name = "D" if "D" in law.inputs else law.inputs[0]
    x = np.array([p[x_name] for p in run])
    grid = np.geomspace(x.min(), x.max() * EXTRAPOLATE, 120)
    inside = grid <= x.max()
    beyond = ~inside | np.roll(~inside, -1)  # the extrapolation, from the last point inside
    series: list[h.Series] = []
    if "N" in law.inputs and x_name == "D":
        n = np.array([p["N"] for p in run])
        levels = np.unique(n)
        if len(levels) > SLICES:
            levels = np.unique(np.quantile(n, np.linspace(0, 1, SLICES)))
        nearest = np.abs(np.log(n)[:, None] - np.log(levels)[None, :]).argmin(axis=1)
        u = float(np.median([p["U"] for p in run])) if "U" in law.inputs else None
        extra = {} if u is None else {"U": np.full_like(grid, u)}
        curves = [
            (
                {"N": np.full_like(grid, level), "D": grid} | extra,
                f"N={level:.3g}" + ("" if u is None else f", U={u:.3g}"),
            )
            for level in levels
        ]
        groups = [nearest == i for i in range(len(levels))]
    else:
        curves = [({x_name: grid}, "fit")]
        groups = [np.ones(len(run), dtype=bool)]
    for i, ((inputs, label), mine) in enumerate(zip(curves, groups, strict=True)):
        colour = h.PALETTE[i % len(h.PALETTE)]
        pred = model.predict(**inputs)
        series += [
            h.Series(grid, pred.low, "band", colour, high=pred.high),
            h.Series(grid, np.where(inside, pred.value, np.nan), "line", colour, label),
            h.Series(grid, np.where(beyond, pred.value, np.nan), "line", colour, dashed=True),
            h.Series(x[mine], np.array(observed)[mine], "points", colour, label),
        ]
    return h.chart_svg(series, log_x=True, log_y=log_y, x_label=AXIS[x_name], y_label=law.target)


def fit_section(fit: dict[str, Any], points: Points | None) -> str:
    model = FittedLaw.from_dict(fit)
    info, good = fit["fit"], fit["goodness"]
    level = f"{100 * model.confidence:.0f}%"
    verdict = (
        f'<span class="badge ok">converged ({h.text(info["message"])})</span>'
        if info["converged"]
        else f'<span class="badge bad">NOT CONVERGED ({h.text(info["message"])}): do not use</span>'
    )
    group = "" if fit.get("group") is None else f" · group {h.text(fit['group'])}"
    params = h.table(
        ["parameter", "value", f"{level} low", f"{level} high"],
        [(k, _fmt(v["value"]), _fmt(v["low"]), _fmt(v["high"])) for k, v in fit["params"].items()],
        attrs=' class="params"',
    )
    keys = [k for k in ("N", "D", "U") if points and k in model.law.inputs]
    rows = []
    for r in fit["residuals"]:
        at = [_fmt(points[int(r["line"])][k]) for k in keys] if points else []
        rows.append(
            (
                r["line"],
                *at,
                _fmt(r["observed"]),
                _fmt(r["predicted"]),
                f"{r['log_residual']:+.5f}",
                f"{100 * (r['predicted'] / r['observed'] - 1):+.2f}%",
            )
        )
    residuals = h.table(["line", *keys, "observed", "predicted", "log pred - log obs", "error"], rows)
    note = (
        ""
        if points
        else (
            '<p class="muted">the runs file this fit names is not here or no longer holds '
            "these runs: observed against predicted instead of the curve</p>"
        )
    )
    return (
        f"<h2>{h.text(fit['title'])}{group}</h2>"
        f"<p><code>{h.text(fit['formula'])}</code> · {h.text(fit['citation'])}</p><p>{verdict}</p>"
        f'<p class="muted">{info["starts_converged"]:,}/{info["starts"]:,} starts converged · '
        f"{info['runs']:,} runs · Huber objective {good['huber']:.6g} · RMSE(log) {good['rmse_log']:.4g} · "
        "mean |error| "
        f"{good['mean_abs_pct']:.2f}% (max {good['max_abs_pct']:.2f}%) · R² {_fmt(good['r2'])} · "
        f"{info['bootstrap_converged']:,}/{info['bootstrap_samples']:,} bootstrap refits converged</p>"
        f'<div class="sides"><div>{params}</div><figure>{fit_chart(model, fit["residuals"], points)}'
        f"</figure></div>{note}<h3>Residuals</h3>{residuals}"
    )


def fit_page(data: dict[str, Any], name: str, points: Points | None) -> str:
    """The fit page of ``data`` (what ``assay fit --out`` wrote)."""
    body = [f"<h1>assay fit: {h.text(name)}</h1>"]
    sources = sorted({str(f.get("source", "")) for f in data["fits"]})
    body.append(f'<p class="muted">runs {h.text(", ".join(sources))} · {len(data["fits"])} fit(s)</p>')
    body += [fit_section(f, points) for f in data["fits"]]
    if data.get("predictions"):
        rows = [
            (
                p["group"] or "-",
                ", ".join(f"{k}={v:.3g}" for k, v in p["inputs"].items()),
                _fmt(p["value"]),
                _fmt(p["low"]),
                _fmt(p["high"]),
            )
            for p in data["predictions"]
        ]
        table = h.table(["group", "at", "prediction", "low", "high"], rows, left=2)
        body.append(f"<h2>Predictions</h2>{table}")
    if data.get("comparisons"):
        items = "".join(f"<li>{h.text(c['sentence'])}</li>" for c in data["comparisons"])
        body.append(f"<h2>Recipes compared</h2><ul>{items}</ul>")
    return h.page(f"assay fit: {name}", body)


def read_points(path: Path, residuals: list[dict[str, Any]]) -> Points | None:
    """N, D, U by line of the runs CSV at ``path``, if some column of it holds the fit's
    observations on the fit's lines (the fit file does not say which column was ``--y``)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return None
    taken = {s for spellings in ALIASES.values() for s in spellings} | set(GROUP_ALIASES)
    for target in (c.strip().lower() for c in header):
        if target in taken:
            continue
        try:
            runs = read_runs(path, target=target)
        except RunsError:
            continue
        row = {int(line): i for i, line in enumerate(runs.lines)}
        y = runs.columns[target]
        if all(
            int(r["line"]) in row and math.isclose(y[row[int(r["line"])]], r["observed"], rel_tol=1e-9)
            for r in residuals
        ):
            return {
                line: {k: float(runs.columns[k][i]) for k in ("N", "D", "U") if k in runs.columns}
                for line, i in row.items()
            }
    return None


def fit_report(path: Path, runs_csv: Path | None = None) -> str:
    """The report of a fit file written by ``assay fit --out``; its runs CSV is ``runs_csv``,
    else the ``source`` it names (as given, then next to the fit file)."""
    path = Path(path)
    data = read_json(path)
    if not is_fit(data):
        raise ReportError("not a fit file written by `assay fit --out`", file=str(path))
    residuals = [r for f in data["fits"] for r in f.get("residuals", [])]
    named = {str(f.get("source", "")) for f in data["fits"]}
    candidates = (
        [runs_csv]
        if runs_csv is not None
        else [place for s in named if s for place in (Path(s), path.parent / s)]
    )
    found = (read_points(c, residuals) for c in candidates if c.is_file())
    points = next((p for p in found if p is not None), None)
    return fit_page(data, path.name, points)


def comparison(result: dict[str, Any]) -> str:
    names = [r["name"] for r in result["recipes"]]
    base, level = result["baseline"], f"{result['confidence']:.0%}"
    rows = []
    for metric in result["metrics"]:
        cells: list[object] = [metric]
        for n in names:
            s = result["summaries"][n][metric]
            cells.append(f"{s['mean']:.4f} ± {'-' if s['std'] is None else format(s['std'], '.4f')}")
        for n in names[1:]:
            d = result["differences"][n][metric]
            band = "" if d["low"] is None else f" [{d['low']:+.4f}, {d['high']:+.4f}]"
            cells.append(f"{d['mean']:+.4f}{band}{' *' if d['significant'] else ''}")
        rows.append(cells)
    header = ["metric", *[f"{n} mean ± std" for n in names], *[f"{n} − {base} [{level}]" for n in names[1:]]]
    return (
        f"<h2>Comparison</h2><p>{h.text(result['seeds'])} seed(s) per recipe, paired by seed; lower is "
        f"better; * the {level} interval of the difference excludes zero</p>"
        + h.table(header, rows, attrs=' id="comparison"')
    )


def loss_curves(curves: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """Training loss against tokens, mean over seeds, and the held-out losses, per recipe."""
    series = []
    for i, (name, per_seed) in enumerate(curves.items()):
        colour = h.PALETTE[i % len(h.PALETTE)]
        train = [
            [(x["tokens"], x["loss"]) for x in recs if x["kind"] == "train"] for recs in per_seed.values()
        ]
        length = min((len(t) for t in train), default=0)
        if length:
            loss = np.mean([[v for _, v in t[:length]] for t in train], axis=0)
            series.append(
                h.Series(
                    [t for t, _ in train[0][:length]],
                    loss,
                    "line",
                    colour,
                    f"{name} (train, mean of {len(train)})",
                )
            )
        evals = [
            (x["tokens"], x["heldout"]["loss"])
            for recs in per_seed.values()
            for x in recs
            if x["kind"] == "eval"
        ]
        if evals:
            series.append(
                h.Series([t for t, _ in evals], [v for _, v in evals], "points", colour, f"{name} (held-out)")
            )
    if not series:
        return ""
    chart = h.chart_svg(series, x_label="tokens", y_label="loss (nats/token)")
    return f"<h2>Loss curves</h2><figure>{chart}</figure>"


def compare_page(result: dict[str, Any], curves: dict[str, Any] | None) -> str:
    """The compare page of ``result`` (``compare.json``) and its ``curves.json``."""
    names = [r["name"] for r in result["recipes"]]
    ev = result["eval"]
    recipes = h.table(["recipe", "shards"], [(r["name"], r["shards"]) for r in result["recipes"]], left=2)
    config = h.table(
        ["setting", "value"],
        [(k, v) for k, v in result["config"].items() if v is not None and k not in ("shards", "out")],
        left=2,
    )
    runs = h.table(
        ["recipe", "seed", "held-out loss", "bits/byte", "tokens", "final train loss", "train seconds"],
        [
            (
                r["recipe"],
                r["seed"],
                f"{r['loss']:.4f}",
                f"{r['bpb']:.4f}",
                f"{r['tokens']:,}",
                _fmt(r.get("final_train_loss")),
                f"{r['train_seconds']:.2f}",
            )
            for r in result["runs"]
        ],
    )
    body = [
        f"<h1>assay compare: {h.text(' vs '.join(names))}</h1>",
        f'<p class="muted">baseline {h.text(result["baseline"])} · {h.text(result["seeds"])} seed(s) · '
        f"{result['confidence']:.0%} intervals</p>",
        f"<p>held-out set: {ev['documents']:,} documents, {ev['tokens']:,} tokens of {h.text(ev['shards'])} "
        f"({ev['left_out']:,} left out: some recipe trains on them)</p>",
        comparison(result),
        loss_curves(curves or {}),
        "<h2>Runs</h2>" + runs,
        f'<h2>Recipes and settings</h2><div class="sides"><div>{recipes}</div><div>{config}</div></div>',
    ]
    return h.page(f"assay compare: {' vs '.join(names)}", [part for part in body if part])


def compare_report(path: Path) -> str:
    """The report of ``assay compare``'s output folder (or its ``compare.json``)."""
    path = Path(path)
    file = path / COMPARE if path.is_dir() else path
    result = read_json(file)
    if not is_compare(result):
        raise ReportError("not the compare.json of `assay compare`", file=str(file))
    curves = read_json(file.parent / CURVES) if (file.parent / CURVES).is_file() else None
    return compare_page(result, curves)
