"""Learning-rate schedules: pure functions of the step, returning a multiplier of the peak.

Every schedule starts with a linear warmup from ``1/warmup`` of the peak to the peak over
``warmup`` steps, then:

- ``cosine``: half a cosine from the peak down to ``min_ratio`` x peak at the last step
  (Loshchilov & Hutter 2017, SGDR; GPT-3, nanoGPT with ``min_lr = lr / 10``).
- ``wsd``: warmup-stable-decay (Hu et al. 2024, "MiniCPM: Unveiling the Potential of Small
  Language Models with Scalable Training Strategies"): constant at the peak, then a decay over
  the last ``decay`` fraction of the steps to ``min_ratio`` (default 0). The decay shape is
  ``linear``, ``cosine`` or ``sqrt`` (1 - sqrt, which Hägele et al. 2024, "Scaling Laws and
  Compute-Optimal Training Beyond Fixed Training Durations", found best, with 20% of the
  steps, the default here).
- ``power``: the Power scheduler (Shen et al. 2024, "Power Scheduler: A Batch Size and Token
  Number Agnostic Learning Rate Scheduler"): ``lr = min(peak, beta a n^b)`` in tokens seen
  n, with ``b = -0.51``, followed by the same decay as ``wsd``. Their ``beta a`` (batch size
  times a) belongs to muP models; here it is set so that the power law meets the peak at
  the end of the warmup, i.e. the multiplier is ``(step / warmup)^b`` (with a constant
  batch, tokens are proportional to steps).
- ``constant``: the peak after the warmup.

Steps count from 0; :func:`lr_multiplier` gives the multiplier used for the update of step
``step`` of ``total``.
"""

from __future__ import annotations

import math

from assay.train.config import DecayShape, Schedule, TrainError

POWER_EXPONENT = -0.51  # b of Shen et al. 2024


def warmup_steps(total: int, warmup: float) -> int:
    """Warmup steps: ``warmup`` itself when >= 1, else that fraction of ``total`` (at least 1)."""
    if warmup >= 1:
        return min(int(warmup), total)
    return max(1, min(round(warmup * total), total))


def decay_curve(progress: float, shape: DecayShape) -> float:
    """From 1 at ``progress`` 0 to 0 at 1."""
    p = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return 1.0 - p
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if shape == "sqrt":
        return 1.0 - math.sqrt(p)
    raise TrainError(f"unknown decay shape {shape!r}")


def lr_multiplier(step: int, total: int, schedule: Schedule = "cosine", warmup: int = 1,
                  decay: float = 0.2, min_ratio: float = 0.0, shape: DecayShape = "sqrt",
                  power_exponent: float = POWER_EXPONENT) -> float:
    """Learning rate of update ``step`` (0-based) of ``total``, as a multiple of the peak."""
    if total < 1 or not 0 <= step < total:
        raise TrainError(f"step {step} outside 0..{total - 1}")
    if not 0 <= min_ratio <= 1:
        raise TrainError("min_ratio must be in [0, 1]")
    warmup = max(1, min(warmup, total))
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = total - warmup
        progress = (step - warmup + 1) / span if span else 1.0
        return min_ratio + (1.0 - min_ratio) * decay_curve(progress, "cosine")
    if schedule not in ("wsd", "power"):
        raise TrainError(f"unknown schedule {schedule!r}; known: cosine, wsd, power, constant")
    if not 0 <= decay <= 1:
        raise TrainError("decay must be a fraction of the steps in [0, 1]")
    n_decay = round(decay * total)
    start = max(total - n_decay, warmup)

    def level(s: int) -> float:
        return 1.0 if schedule == "wsd" else min(1.0, (s / warmup) ** power_exponent)

    if step < start or n_decay == 0:
        return level(step)
    progress = (step - start + 1) / (total - start)
    return level(start) * (min_ratio + (1.0 - min_ratio) * decay_curve(progress, shape))
