"""Compute-optimal planning: model size, tokens, epochs, learning rate, batch, vocabulary.

Pure functions of a compute budget C (FLOPs, C = 6 N D) and a law. Each number of a
``Plan`` carries the law and paper it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assay.errors import AssayError
from assay.scaling.fit import FittedLaw
from assay.scaling.laws import ChinchillaLaw, DataConstrainedLaw, Law
from assay.scaling.published import (
    DEEPSEEK,
    GPU_PEAK_FLOPS,
    MUENNIGHOFF_R_D,
    MUENNIGHOFF_R_N,
    STEP_LAW,
    VOCABULARY,
    DeepSeekLaw,
    StepLaw,
    VocabularyLaw,
)


class PlanError(AssayError, ValueError):
    """A planning request that cannot be answered (unknown GPU, bad budget, ...)."""


def flops_from_gpu_hours(hours: float, gpu: str, mfu: float) -> float:
    """Training FLOPs of ``hours`` GPU-hours at model FLOPs utilisation ``mfu``."""
    try:
        peak = GPU_PEAK_FLOPS[gpu.lower()]
    except KeyError:
        raise PlanError(f"unknown GPU {gpu!r}; known: {', '.join(GPU_PEAK_FLOPS)}") from None
    if not (hours > 0 and 0 < mfu <= 1):
        raise PlanError("--gpu-hours must be positive and --mfu in (0, 1]")
    return hours * 3600.0 * peak * mfu


def chinchilla_allocation(theta: np.ndarray, flops: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form compute-optimal N*, D* of the Chinchilla law (Hoffmann et al. 2022, eq. 4).

    N* = G (C/6)^(beta/(alpha+beta)), D* = G^-1 (C/6)^(alpha/(alpha+beta)),
    G = (alpha A / (beta B))^(1/(alpha+beta)). ``theta`` rows are (a, b, e, alpha, beta).
    """
    theta = np.atleast_2d(theta)
    a, b, alpha, beta = theta[:, 0], theta[:, 1], theta[:, 3], theta[:, 4]
    log_g = (np.log(alpha) + a - np.log(beta) - b) / (alpha + beta)
    log_c6 = np.log(flops / 6.0)
    return (np.exp(log_g + log_c6 * beta / (alpha + beta)),
            np.exp(-log_g + log_c6 * alpha / (alpha + beta)))


def iso_flop_optimum(law: Law, theta: np.ndarray, flops: float,
                     unique: float | None = None, span: float = 12.0,
                     points: int = 2401) -> tuple[np.ndarray, np.ndarray]:
    """N*, D* minimising the law along C = 6 N D, numerically, for parameter rows theta.

    A grid over log N (``span`` nats either side of sqrt(C/6)) refined by a parabola
    through the best grid point and its neighbours. With ``unique`` tokens U the law sees
    U as the unique tokens (the data-constrained law repeats them).
    """
    theta = np.atleast_2d(theta)
    centre = 0.5 * np.log(flops / 6.0)
    log_n = np.linspace(centre - span, centre + span, points)
    logx = {"N": log_n[None, :], "D": np.log(flops / 6.0) - log_n[None, :]}
    if "U" in law.inputs:
        if unique is None:
            raise PlanError(f"the {law.name} law needs unique tokens U to plan")
        logx["U"] = np.full_like(logx["N"], np.log(unique))
    with np.errstate(invalid="ignore", over="ignore"):
        loss = law.log_predict(theta, logx)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    i = np.clip(np.argmin(loss, axis=1), 1, points - 2)
    rows = np.arange(len(theta))
    y0, y1, y2 = loss[rows, i - 1], loss[rows, i], loss[rows, i + 1]
    h = log_n[1] - log_n[0]
    denom = y0 - 2.0 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom > 0, 0.5 * h * (y0 - y2) / denom, 0.0)
    best = log_n[i] + np.clip(np.nan_to_num(shift), -h, h)
    return np.exp(best), flops / (6.0 * np.exp(best))


def step_law(n: float, d: float, law: StepLaw = STEP_LAW) -> tuple[float, float]:
    """Learning rate and batch size (tokens) of the Step Law (Li et al. 2025)."""
    return (law.lr_coef * n ** law.lr_n * d ** law.lr_d, law.batch_coef * d ** law.batch_d)


def deepseek(flops: float, law: DeepSeekLaw = DEEPSEEK) -> dict[str, float]:
    """DeepSeek LLM (Bi et al. 2024) learning rate, batch (tokens), M_opt and D_opt at C."""
    return {"lr": law.lr_coef * flops ** law.lr_c, "batch_tokens": law.batch_coef * flops ** law.batch_c,
            "flops_per_token": law.m_coef * flops ** law.m_c, "tokens": law.d_coef * flops ** law.d_c}


def vocabulary_parameters(n_nonvocab: float, approach: int = 2,
                          law: VocabularyLaw = VOCABULARY) -> float:
    """Optimal vocabulary parameters N_v = V d for N_nv non-vocabulary parameters (Tao et al. 2024)."""
    if approach == 2:
        return law.base_nv * (n_nonvocab / law.base_nnv) ** law.gamma
    if approach == 1:
        flops = (n_nonvocab / np.exp(law.nnv_log_coef)) ** 2
        return float(np.exp(law.nv_log_coef) * flops ** law.nv_flops_exp)
    raise PlanError("vocabulary approach must be 1 or 2")


# Hidden sizes Tao et al.'s code assumes for a non-vocabulary parameter count (upper bounds).
_HIDDEN_SIZES = ((50e6, 512), (200e6, 768), (500e6, 1024), (1e9, 1536), (2e9, 2048),
                 (5e9, 3200), (10e9, 4096), (20e9, 5120), (50e9, 6048), (100e9, 8192),
                 (200e9, 12288), (500e9, 16384), (1e12, 20480))


def typical_hidden_size(n_nonvocab: float) -> int:
    """The model width Tao et al. pair with N_nv (their ``Nnv_to_d`` table)."""
    return next((d for bound, d in _HIDDEN_SIZES if n_nonvocab <= bound), 24576)


def with_repetition(fitted: FittedLaw, r_d: float = MUENNIGHOFF_R_D,
                    r_n: float = MUENNIGHOFF_R_N) -> FittedLaw | None:
    """The data-constrained law for a fitted law: itself, or a Chinchilla law with R_D*, R_N*.

    Muennighoff et al. 2023 fitted R_D* and R_N* on top of their own base law; applying them
    to another Chinchilla-form law assumes repetition decays the same way. None for other laws.
    """
    if isinstance(fitted.law, DataConstrainedLaw):
        return fitted
    if not isinstance(fitted.law, ChinchillaLaw):
        return None
    extra = np.log([r_d, r_n])
    samples = (np.hstack([fitted.samples, np.tile(extra, (len(fitted.samples), 1))])
               if len(fitted.samples) else np.empty((0, 7)))
    return FittedLaw(DataConstrainedLaw(), np.concatenate([fitted.theta, extra]), samples,
                     fitted.confidence, fitted.group, fitted.source)


@dataclass(frozen=True)
class PlanItem:
    """One number of a plan: what it is, its value (and interval), and where it comes from."""

    quantity: str
    value: float
    unit: str
    source: str
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"quantity": self.quantity, "value": self.value, "unit": self.unit,
                "low": self.low, "high": self.high, "source": self.source}


@dataclass(frozen=True)
class Plan:
    """The numbers of a compute-optimal plan, in order, plus notes on their assumptions."""

    items: list[PlanItem]
    notes: list[str] = field(default_factory=list)

    def value(self, quantity: str) -> float:
        """The value of the item named ``quantity``."""
        for item in self.items:
            if item.quantity == quantity:
                return item.value
        raise KeyError(quantity)

    def to_dict(self) -> dict[str, Any]:
        return {"items": [i.to_dict() for i in self.items], "notes": self.notes}


def _interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    tail = 50.0 * (1.0 - confidence)
    return float(np.percentile(values, tail)), float(np.percentile(values, 100.0 - tail))


def _allocate(fitted: FittedLaw, flops: float,
              unique: float | None) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Point N*, D* and their bootstrap draws (empty without samples).

    Without ``unique`` a data-constrained law allocates as its base Chinchilla law (fresh
    data); with it, numerically along the iso-FLOP line.
    """
    law, theta, samples = fitted.law, fitted.theta, fitted.samples
    if isinstance(law, DataConstrainedLaw) and unique is None:
        law, theta, samples = ChinchillaLaw(), theta[:5], samples[:, :5]
    if isinstance(law, ChinchillaLaw):
        n, d = chinchilla_allocation(theta, flops)
        ns, ds = chinchilla_allocation(samples, flops) if len(samples) else (np.empty(0),) * 2
    else:
        n, d = iso_flop_optimum(law, theta, flops, unique)
        ns, ds = (iso_flop_optimum(law, samples, flops, unique) if len(samples)
                  else (np.empty(0),) * 2)
    return float(n[0]), float(d[0]), ns, ds


def make_plan(flops: float, fitted: FittedLaw, *, unique_tokens: float | None = None,
              d_model: int | None = None, flops_source: str = "given") -> Plan:
    """Compute-optimal N and D, the repetition penalty when unique tokens are short, and the
    learning rate, batch size and vocabulary that published laws give for that model.
    """
    if not flops > 0:
        raise PlanError("the compute budget must be positive")
    if unique_tokens is not None and not unique_tokens > 0:
        raise PlanError("--unique-tokens must be positive")
    law_name = fitted.source or fitted.law.citation
    items = [PlanItem("compute", flops, "FLOPs", flops_source)]
    notes = [f"loss law: {fitted.law.title} {fitted.law.formula} ({law_name}); "
             "C = 6 N D throughout."]
    n_opt, d_opt, ns, ds = _allocate(fitted, flops, None)
    conf = fitted.confidence
    items += [PlanItem("params", n_opt, "parameters", law_name, *_interval(ns, conf)),
              PlanItem("tokens", d_opt, "tokens", law_name, *_interval(ds, conf)),
              PlanItem("tokens_per_param", d_opt / n_opt, "ratio", law_name)]
    inputs = {"N": n_opt, "D": d_opt, "U": d_opt}  # the optimum on fresh (unrepeated) data
    loss = fitted.predict(**{k: inputs[k] for k in fitted.law.inputs})
    items.append(PlanItem("loss", float(loss.value[0]), "nats/token", law_name,
                          *_finite(loss.low[0], loss.high[0])))
    n_run, d_run = n_opt, d_opt
    if unique_tokens is not None:
        epochs = d_opt / unique_tokens
        items.append(PlanItem("epochs", epochs, "epochs of the unique tokens", law_name))
        repeated = with_repetition(fitted)
        if repeated is None:
            notes.append(f"no repetition penalty: the {fitted.law.name} law has no data-"
                         "constrained form (use a Chinchilla-form law)")
        elif epochs > 1:
            dc_source = (law_name if repeated is fitted else
                         f"Muennighoff et al. 2023 (R_D*={MUENNIGHOFF_R_D:.2f}, "
                         f"R_N*={MUENNIGHOFF_R_N:.2f}) on {law_name}")
            at_opt = repeated.predict(N=n_opt, D=d_opt, U=unique_tokens)
            fresh = repeated.predict(N=n_opt, D=d_opt, U=d_opt)
            items.append(PlanItem("repetition_penalty", float(at_opt.value[0] - fresh.value[0]),
                                  "nats/token at N*, D*", dc_source))
            n_dc, d_dc, nds, dds = _allocate(repeated, flops, unique_tokens)
            dc_loss = repeated.predict(N=n_dc, D=d_dc, U=unique_tokens)
            items += [PlanItem("constrained_params", n_dc, "parameters", dc_source,
                               *_interval(nds, conf)),
                      PlanItem("constrained_tokens", d_dc, "tokens", dc_source,
                               *_interval(dds, conf)),
                      PlanItem("constrained_epochs", d_dc / unique_tokens, "epochs", dc_source),
                      PlanItem("constrained_loss", float(dc_loss.value[0]), "nats/token", dc_source,
                               *_finite(dc_loss.low[0], dc_loss.high[0]))]
            n_run, d_run = n_dc, d_dc
    lr, batch = step_law(n_run, d_run)
    items += [PlanItem("lr_step_law", lr, "peak learning rate", STEP_LAW.source),
              PlanItem("batch_step_law", batch, "tokens per batch", STEP_LAW.source)]
    ds_law = deepseek(flops)
    items += [PlanItem("lr_deepseek", ds_law["lr"], "peak learning rate", DEEPSEEK.source),
              PlanItem("batch_deepseek", ds_law["batch_tokens"], "tokens per batch", DEEPSEEK.source),
              PlanItem("params_deepseek", ds_law["flops_per_token"] / 6.0,
                       "non-embedding parameters (M/6)", DEEPSEEK.source),
              PlanItem("tokens_deepseek", ds_law["tokens"], "tokens", DEEPSEEK.source)]
    n_v = vocabulary_parameters(n_run)
    width = d_model or typical_hidden_size(n_run)
    items += [PlanItem("vocab_params", n_v, "vocabulary parameters V*d",
                       VOCABULARY.source + " (approach 2)"),
              PlanItem("vocab_size", n_v / width, f"tokens (d_model={width})",
                       VOCABULARY.source + " (approach 2)")]
    notes.append(
        "Step Law, DeepSeek and vocabulary laws take N as non-embedding parameters; the plan "
        "passes the loss law's N* unchanged.")
    if d_model is None:
        notes.append(f"vocab_size assumes d_model={width}, the width Tao et al.'s code pairs "
                     "with this size; pass --d-model for yours.")
    return Plan(items, notes)


def _finite(low: float, high: float) -> tuple[float | None, float | None]:
    return (float(low), float(high)) if np.isfinite(low) and np.isfinite(high) else (None, None)
