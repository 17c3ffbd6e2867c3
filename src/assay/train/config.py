"""The configuration of a training run: plain values with defaults (nanoGPT-style), and no
PyTorch import, so the ``assay`` command starts without it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from assay.errors import AssayError
from assay.steps.base import MAX_SEED

Packing = Literal["concat", "buckets"]
Precision = Literal["auto", "bf16", "fp32"]
Schedule = Literal["cosine", "wsd", "power", "constant"]
DecayShape = Literal["linear", "cosine", "sqrt"]
Mlp = Literal["gelu", "swiglu"]
Positions = Literal["rope", "learned"]
# Fields that may differ between a run and its resumption (they do not change the result).
RESUME_FREE = ("out", "threads", "log_every", "checkpoint_every", "save_every", "eval_every",
               "eval_documents", "eval_shards", "cloze", "compile", "device")


class TrainError(AssayError, ValueError):
    """A run that cannot start: bad configuration, shards without what it needs, a checkpoint
    of another run."""


@dataclass
class TrainConfig:
    """A training run. ``None`` means: from the shards (context, tokens) or from the Step Law
    (learning rate, batch)."""

    shards: str
    out: str | None = None
    model: str = "tiny"
    mlp: Mlp = "gelu"
    positions: Positions = "rope"
    context: int | None = None
    tokens: int | None = None
    batch_tokens: int | None = None
    micro_batch_tokens: int | None = None
    lr: float | None = None
    schedule: Schedule = "cosine"
    warmup: float = 0.05
    decay: float = 0.2
    decay_shape: DecayShape = "sqrt"
    min_lr_ratio: float | None = None
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    packing: Packing = "concat"
    phases: list[str] | None = None
    seed: int = 0
    precision: Precision = "auto"
    compile: bool = False
    device: str = "auto"
    threads: int | None = None
    eval_every: int = 0
    eval_documents: int | None = None
    eval_shards: str | None = None
    cloze: str | None = None
    log_every: int = 10
    checkpoint_every: int = 0
    save_every: int = 0  # keep the weights every N steps (OUT/checkpoints/step-N), e.g. for S2L
    init: str | None = None  # continual pre-training: start from this run's (or file's) weights
    init_optimizer: bool = False  # and from its optimizer state (a continuation, e.g. WSD's decay)

    def __post_init__(self) -> None:
        """Refuse values no run can use (NaN, negative, out of range) before any work."""
        positive = {"lr": self.lr, "context": self.context, "tokens": self.tokens,
                    "batch_tokens": self.batch_tokens, "micro_batch_tokens": self.micro_batch_tokens,
                    "threads": self.threads, "eval_documents": self.eval_documents,
                    "log_every": self.log_every}
        at_least_zero = {"warmup": self.warmup, "decay": self.decay, "min_lr_ratio": self.min_lr_ratio,
                         "weight_decay": self.weight_decay, "grad_clip": self.grad_clip,
                         "eval_every": self.eval_every, "checkpoint_every": self.checkpoint_every,
                         "save_every": self.save_every}
        unit = {"beta1": self.beta1, "beta2": self.beta2, "min_lr_ratio": self.min_lr_ratio}
        for name, value in positive.items():
            if value is not None and not (math.isfinite(value) and value > 0):
                raise TrainError(f"{name} must be a positive number, not {value!r}")
        for name, value in at_least_zero.items():
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise TrainError(f"{name} must be a number >= 0, not {value!r}")
        for name, value in unit.items():
            if value is not None and not 0 <= value <= 1:
                raise TrainError(f"{name} must be between 0 and 1, not {value!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise TrainError(f"seed must be between 0 and {MAX_SEED}, not {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
