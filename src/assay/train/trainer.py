"""Training a proxy GPT on prepared shards.

A run is a :class:`TrainConfig` (plain values with defaults, nanoGPT-style), resolved
against the shards into a :class:`RunPlan` by the pure function :func:`plan_run`, then
executed by :class:`Trainer`:

- **Defaults from the Step Law** (Li et al. 2025, "Predictable Scale: Part I", through
  :func:`assay.scaling.plan.step_law`, the code of ``assay plan``): peak learning rate
  ``1.79 N^-0.713 D^0.307`` and batch ``0.58 D^0.571`` tokens, N the non-embedding
  parameters and D the training tokens. The law was fitted on models of 60M parameters and
  more; below that it is an extrapolation, and ``--lr``/``--batch-tokens`` override it.
- **AdamW** (Loshchilov & Hutter 2019) with betas (0.9, 0.95), weight decay 0.1 on matrices
  and embeddings only, gradient clipping at norm 1.0 (GPT-3, nanoGPT); fused on CPU and CUDA
  where PyTorch has it.
- **Schedules** of :mod:`assay.train.schedule`: cosine (default), WSD, Power, constant.
- **Precision**: bf16 autocast where it is faster (``auto``: CUDA with bf16 support, or a
  CPU on which a bf16 matrix product measures faster than fp32 — CPUs without native bf16
  emulate it several times slower); ``torch.compile`` when asked.
- **Data**: :mod:`assay.train.data`, a pure function of the step, so :meth:`Trainer.resume`
  continues bit for bit (on CPU) where a checkpoint stopped.

A run with an output folder writes ``config.json`` (the config and the resolved plan),
``log.jsonl`` (one JSON object per logged step and per evaluation), ``checkpoint.safetensors``
(:mod:`assay.train.checkpoint`) and ``result.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import orjson
import torch

from assay.io.ownership import claim_folder
from assay.io.writers import write_json
from assay.prepare.reader import Shards
from assay.scaling.plan import step_law
from assay.scaling.published import STEP_LAW
from assay.train import checkpoint
from assay.train.config import RESUME_FREE, Precision, TrainConfig, TrainError
from assay.train.data import BucketBatches, ConcatBatches
from assay.train.evaluate import ClozeItem, EvalSet, cloze_accuracy, evaluate, heldout_set, read_cloze
from assay.train.model import GPT, GPTConfig, count_parameters, flops_per_token, shape_for
from assay.train.schedule import lr_multiplier, warmup_steps

Callback = Callable[[dict[str, Any]], None]
@dataclass(frozen=True)
class RunPlan:
    """A config resolved against its shards: the model, the batch, the steps, the learning rate."""

    model: GPTConfig
    params: dict[str, int]
    context: int
    batch_size: int  # sequences (rows) per step
    micro_batch: int  # sequences per forward/backward
    batch_tokens: int  # predicted tokens per step
    steps: int
    tokens: int  # steps x batch_tokens: the D of the run
    available_tokens: int  # training tokens of the chosen phases
    lr: float
    warmup_steps: int
    min_lr_ratio: float
    sources: dict[str, str] = field(default_factory=dict)  # where lr and batch came from

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["flops_per_token"] = flops_per_token(self.model)
        return d


def plan_run(config: TrainConfig, vocab_size: int, shard_context: int, available_tokens: int) -> RunPlan:
    """Resolve ``config`` for shards with this vocabulary, packing context and training tokens."""
    context = config.context or shard_context
    if context < 1:
        raise TrainError("context must be positive")
    try:
        model = shape_for(config.model, vocab_size, context, mlp=config.mlp, positions=config.positions)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    params = count_parameters(model)
    target = config.tokens or available_tokens
    if target < context:
        raise TrainError(f"{target:,} training tokens is less than one sequence of {context}")
    lr_law, batch_law = step_law(params["non_embedding"], target)
    sources = {"lr": "given" if config.lr else STEP_LAW.source,
               "batch": "given" if config.batch_tokens else STEP_LAW.source}
    batch_size = max(1, round((config.batch_tokens or batch_law) / context))
    batch_tokens = batch_size * context
    steps = max(1, round(target / batch_tokens))
    micro = batch_size if not config.micro_batch_tokens else max(1, min(batch_size,
                                                                       config.micro_batch_tokens // context))
    min_ratio = config.min_lr_ratio if config.min_lr_ratio is not None else (
        0.1 if config.schedule == "cosine" else 0.0)
    return RunPlan(model, params, context, batch_size, micro, batch_tokens, steps, steps * batch_tokens,
                   available_tokens, float(config.lr or lr_law), warmup_steps(steps, config.warmup),
                   min_ratio, sources)


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@cache
def bf16_faster_on_cpu(size: int = 256, reps: int = 5) -> bool:
    """Whether a bf16-autocast matrix product beats fp32 on this CPU (best of ``reps``).
    CPUs with AMX or AVX512-BF16 run bf16 natively; others emulate it, several times slower."""
    a, b = torch.randn(size, size), torch.randn(size, size)

    def best_time(enabled: bool) -> float:
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                for _ in range(4):
                    (a @ b).sum()
            times.append(time.perf_counter() - start)
        return min(times)  # the least disturbed by other work on the machine

    best_time(True)
    return best_time(True) < 0.8 * best_time(False)


def resolve_precision(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (bf16) or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and bf16_faster_on_cpu() else None


def make_optimizer(model: torch.nn.Module, config: TrainConfig, lr: float) -> torch.optim.AdamW:
    """AdamW with weight decay on tensors of two or more dimensions only (nanoGPT)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    device = next(model.parameters()).device.type
    fused = device in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=lr, betas=(config.beta1, config.beta2), fused=fused)


def phase_tokens(shards: Shards, phases: list[str]) -> int:
    """Training tokens of ``phases`` (the held-out split is never one)."""
    by_name = {p["name"]: p for p in shards.manifest["phases"]}
    return sum(int(by_name[p]["tokens"]) for p in phases)


class Trainer:
    """Builds the model, optimizer and batches of a config, trains, evaluates, checkpoints."""

    def __init__(self, config: TrainConfig, shards: Shards | None = None,
                 callback: Callback | None = None, eval_set: EvalSet | None = None) -> None:
        """``eval_set`` replaces the held-out split of the shards (``assay compare`` shares one
        between recipes)."""
        self.config = config
        self.callback = callback
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            self.shards = shards or Shards(config.shards)
        except (OSError, ValueError) as exc:
            raise TrainError(str(exc)) from None
        phases = config.phases or self.shards.phases
        unknown = [p for p in phases if p not in self.shards.phases]
        if unknown:
            raise TrainError(f"no phase {', '.join(unknown)} in {config.shards}; phases: "
                             f"{', '.join(self.shards.phases)}")
        needed = "concat" if config.packing == "concat" else "decompose"
        if any(needed not in self.shards.packings(p) for p in phases):
            raise TrainError(f"{config.shards} has no {needed} files (packing.method of the prepare recipe)")
        tok = self.shards.manifest["tokenizer"]
        self.plan = plan_run(config, int(tok["vocab_size"]), int(self.shards.manifest["packing"]["context"]),
                             phase_tokens(self.shards, phases))
        self.device = resolve_device(config.device)
        self.autocast = resolve_precision(config.precision, self.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        torch.manual_seed(config.seed)
        self.model = GPT(self.plan.model).to(self.device)
        self.forward = torch.compile(self.model) if config.compile else self.model
        self.flops_per_token = flops_per_token(self.plan.model)
        self.optimizer = make_optimizer(self.model, config, self.plan.lr)
        if config.init:
            self._start_from(config.init, tok["sha256"])
        p = self.plan
        if config.packing == "concat":
            self.batches: ConcatBatches | BucketBatches = ConcatBatches(
                self.shards, phases, p.context, p.batch_size, p.steps, config.seed)
        else:
            self.batches = BucketBatches(self.shards, phases, p.context, p.batch_tokens, p.steps, config.seed)
        self.step = 0
        self.tokens = 0
        self.train_seconds = 0.0
        self.out = Path(config.out) if config.out else None
        self._eval_set = eval_set
        self.warnings: list[str] = []
        # Opened once: evaluation runs every eval_every steps.
        self.eval_shards = Shards(config.eval_shards) if config.eval_shards else self.shards
        eval_shards = self.eval_shards
        if eval_set is None and not eval_shards.has_heldout:
            self.warnings.append(f"{eval_shards.path} has no held-out split: no evaluation (add `heldout: "
                                 "{fraction: 0.01}` to the prepare recipe)")
        if eval_shards.manifest["tokenizer"]["sha256"] != tok["sha256"]:
            raise TrainError(f"{eval_shards.path} uses another tokenizer than {config.shards}")
        epochs = max(self.batches.epochs())
        if epochs > 1.0 + 1e-9:
            self.warnings.append(f"the run repeats the training data: up to {epochs:.2f} passes over a phase")

    @cached_property
    def cloze_items(self) -> list[ClozeItem]:
        """The cloze file's items (read on first use)."""
        return read_cloze(self.config.cloze)

    @property
    def eval_set(self) -> EvalSet | None:
        """The held-out windows (built on first use), or None without a held-out split."""
        if self._eval_set is None:
            shards = self.eval_shards
            if shards.has_heldout:
                self._eval_set = heldout_set(shards, self.plan.context, self.config.eval_documents)
        return self._eval_set

    def _start_from(self, init: str, tokenizer_sha256: str) -> None:
        """Continual pre-training: the model starts from the weights of ``init`` (a run folder
        or its checkpoint file); the optimizer and the learning-rate schedule are this run's
        own, so the rate warms up and decays again (re-warming and re-decaying: Gupta et al.
        2023, "Continual Pre-Training of Large Language Models: How to (re)warm your model?";
        Ibrahim et al. 2024, "Simple and Scalable Strategies to Continually Pre-train Large
        Language Models"). With ``init_optimizer`` the optimizer's state (AdamW's moments)
        comes from the checkpoint too: a continuation of that run under a new schedule, such
        as the decay phase of a warmup-stable-decay run from a checkpoint of its stable phase
        (a fresh AdamW state at a high rate would take full-size steps at once)."""
        path = Path(init)
        if path.is_dir():
            path = path / checkpoint.FILE
        if not path.is_file():
            raise TrainError(f"{init}: no checkpoint to start from (a run folder holding "
                             f"{checkpoint.FILE}, or such a file)")
        try:
            meta = checkpoint.read_meta(path)
        except TrainError:
            raise
        except Exception as exc:  # safetensors' own error for a file that is not one
            raise TrainError(f"{path}: not an assay checkpoint ({exc})") from None
        theirs = meta.get("tokenizer_sha256")
        if theirs is not None and theirs != tokenizer_sha256:
            raise TrainError(f"{path} was trained with another tokenizer than {self.config.shards}: "
                             "its token ids mean other things here")
        try:
            optimizer = self.optimizer if self.config.init_optimizer else None
            checkpoint.load_checkpoint(path, self.model, optimizer)
        except (RuntimeError, ValueError, KeyError):
            shape = meta.get("plan", {}).get("model", {})
            raise TrainError(f"{path} holds another model ({shape.get('n_layer')} layers x "
                             f"{shape.get('d_model')}, vocabulary {shape.get('vocab_size')}) than this run's "
                             f"({self.plan.model.n_layer} x {self.plan.model.d_model}, vocabulary "
                             f"{self.plan.model.vocab_size}): give the same --model") from None

    def _meta(self) -> dict[str, Any]:
        return {"step": self.step, "tokens": self.tokens, "train_seconds": self.train_seconds,
                "config": self.config.to_dict(), "plan": self.plan.to_dict(),
                "tokenizer_sha256": self.shards.manifest["tokenizer"]["sha256"]}

    def save(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint (default: ``OUT/checkpoint.safetensors``)."""
        if path is None:
            if self.out is None:
                raise TrainError("no output folder to save the checkpoint in")
            path = self.out / checkpoint.FILE
        return checkpoint.save_checkpoint(path, self.model, self.optimizer, self._meta())

    def resume(self, path: str | Path | None = None) -> None:
        """Continue from a checkpoint of the same run (same config but for :data:`RESUME_FREE`)."""
        if path is None:
            if self.out is None:
                raise TrainError("no output folder to resume from")
            path = self.out / checkpoint.FILE
        try:
            meta = checkpoint.read_meta(path)
        except (OSError, ValueError) as exc:
            raise TrainError(f"cannot resume from {path}: {exc}") from None
        mine, theirs = self.config.to_dict(), meta["config"]
        # A setting added after the checkpoint was written is absent there: it had its default.
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        differ = sorted(k for k in mine if k not in RESUME_FREE and mine[k] != theirs.get(k, defaults.get(k)))
        if differ:
            raise TrainError(f"{path} is a checkpoint of another run: {', '.join(differ)} differ")
        checkpoint.load_checkpoint(path, self.model, self.optimizer)
        self.step, self.tokens = int(meta["step"]), int(meta["tokens"])
        self.train_seconds = float(meta.get("train_seconds", 0.0))

    def _emit(self, record: dict[str, Any]) -> None:
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "log.jsonl", "ab") as f:
                f.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        if self.callback is not None:
            self.callback(record)

    def evaluate(self) -> dict[str, Any] | None:
        """Held-out loss and bits per byte (and cloze accuracy when configured) now."""
        data = self.eval_set
        if data is None:
            return None
        result = evaluate(self.model, data, self.device, self.autocast)
        if self.config.cloze:
            shards = self.eval_shards
            result["cloze"] = cloze_accuracy(self.model, shards.encoder.encode, shards.eos_id,
                                             self.cloze_items, self.plan.context, self.device)
        return result

    def train(self, until: int | None = None) -> dict[str, Any]:
        """Train from the current step to ``until`` (default: the end of the plan); evaluate at
        the end of the plan; return the result (also ``OUT/result.json``). The run folder
        must be new, empty or a training run's (:mod:`assay.io.ownership`), and is locked
        meanwhile."""
        if self.out is None:
            return self._train(until)
        sources = [self.config.shards, *(p for p in (self.config.eval_shards, self.config.cloze) if p)]
        with claim_folder(str(self.out), "train", inputs=sources):
            return self._train(until)

    def _train(self, until: int | None) -> dict[str, Any]:
        plan, cfg = self.plan, self.config
        end = plan.steps if until is None else min(until, plan.steps)
        if self.step == plan.steps:  # a finished run, resumed: its result again
            saved = self.out / "result.json" if self.out is not None else None
            if saved is not None and saved.exists():
                return orjson.loads(saved.read_bytes())
            return self._result(self.evaluate())
        if self.out is not None and self.step == 0:  # a fresh run: a fresh log
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "log.jsonl").unlink(missing_ok=True)
            write_json(str(self.out / "config.json"),
                       {"config": cfg.to_dict(), "plan": plan.to_dict(), "device": str(self.device),
                        "precision": "bf16" if self.autocast else "fp32", "torch": torch.__version__,
                        "warnings": self.warnings})
        self._emit({"kind": "start", "step": self.step, "steps": plan.steps, "tokens": self.tokens,
                    "planned_tokens": plan.tokens, "params": plan.params, "lr": plan.lr,
                    "batch_tokens": plan.batch_tokens, "precision": "bf16" if self.autocast else "fp32",
                    "device": str(self.device), "warnings": self.warnings})
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        loss_sum = torch.zeros((), device=self.device)
        norm_sum = torch.zeros((), device=self.device)
        window_steps, window_tokens, window_start = 0, 0, time.perf_counter()
        schedule = {"schedule": cfg.schedule, "warmup": plan.warmup_steps, "decay": cfg.decay,
                    "min_ratio": plan.min_lr_ratio, "shape": cfg.decay_shape}
        last_eval: dict[str, Any] | None = None
        if cfg.init and cfg.eval_every and self.step == 0:  # where the weights it starts from stand
            start = self.evaluate()
            if start is not None:
                self._emit({"kind": "eval", "step": 0, "tokens": 0, "heldout": start})
        while self.step < end:
            step = self.step
            lr = plan.lr * lr_multiplier(step, plan.steps, **schedule)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = self.batches.batch(step)
            if int(batch.max()) >= plan.model.vocab_size:  # corrupt shards, or another tokenizer's
                raise TrainError(f"{cfg.shards}: a token id of step {step}'s batch ({int(batch.max()):,}) is "
                                 f"outside the tokenizer's vocabulary of {plan.model.vocab_size:,}; the "
                                 "token files are damaged or were written with another tokenizer")
            batch = batch.to(self.device, non_blocking=True)
            rows = batch.shape[0]
            for a in range(0, rows, plan.micro_batch):
                chunk = batch[a: a + plan.micro_batch]
                with torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16,
                                    enabled=self.autocast is not None):
                    loss = self.forward(chunk[:, :-1], chunk[:, 1:])
                if chunk.shape[0] != rows:
                    loss = loss * (chunk.shape[0] / rows)
                loss.backward()
                loss_sum += loss.detach()
            norm_sum += torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            n_tokens = rows * (batch.shape[1] - 1)
            self.step += 1
            self.tokens += n_tokens
            window_steps += 1
            window_tokens += n_tokens
            final = self.step == plan.steps
            evaluate_now = bool(cfg.eval_every and self.step % cfg.eval_every == 0) or final
            save_now = self.out is not None and (
                bool(cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or self.step == end)
            keep_now = self.out is not None and bool(cfg.save_every and self.step % cfg.save_every == 0)
            # A log window also closes where an evaluation or a checkpoint falls, so that
            # --eval-every, --checkpoint-every and --save-every hold whatever --log-every is.
            boundary = evaluate_now or save_now or keep_now
            if self.step % max(cfg.log_every, 1) == 0 or self.step == end or boundary:
                seconds = time.perf_counter() - window_start
                self.train_seconds += seconds
                speed = window_tokens / seconds if seconds > 0 else math.nan
                self._emit({"kind": "train", "step": self.step, "steps": plan.steps, "tokens": self.tokens,
                            "loss": loss_sum.item() / window_steps,
                            "grad_norm": norm_sum.item() / window_steps,
                            "lr": lr, "tokens_per_s": speed, "seconds": self.train_seconds,
                            "model_flops_per_s": speed * self.flops_per_token,
                            "eta_s": (plan.steps - self.step) * seconds / window_steps})
                loss_sum.zero_()
                norm_sum.zero_()
                window_steps, window_tokens = 0, 0
                if evaluate_now:
                    last_eval = self.evaluate()
                    if last_eval is not None:
                        self._emit({"kind": "eval", "step": self.step, "tokens": self.tokens,
                                    "heldout": last_eval})
                if keep_now:  # the weights alone, kept: a trajectory's points
                    checkpoint.save_checkpoint(saved_checkpoint(self.out, self.step), self.model, None,
                                               self._meta())
                if save_now:
                    self.save()
                window_start = time.perf_counter()
        return self._result(last_eval)

    def _result(self, last_eval: dict[str, Any] | None) -> dict[str, Any]:
        result = {"step": self.step, "steps": self.plan.steps, "tokens": self.tokens,
                  "finished": self.step == self.plan.steps, "params": self.plan.params,
                  "lr": self.plan.lr, "batch_tokens": self.plan.batch_tokens,
                  "train_seconds": self.train_seconds,
                  "tokens_per_s": self.tokens / self.train_seconds if self.train_seconds else None,
                  "heldout": last_eval, "warnings": self.warnings}
        if self.out is not None and result["finished"]:
            write_json(str(self.out / "result.json"), result)
        return result


def saved_checkpoint(out: Path, step: int) -> Path:
    """Where ``--save-every`` keeps the weights of ``step``."""
    return Path(out) / "checkpoints" / f"step-{step:08d}.safetensors"


def saved_checkpoints(out: str | Path) -> list[Path]:
    """The weights a run kept with ``--save-every``, by step."""
    return sorted((Path(out) / "checkpoints").glob("step-*.safetensors"))


def train(config: TrainConfig, *, resume: bool = False, callback: Callback | None = None) -> dict[str, Any]:
    """Build a :class:`Trainer`, resume it from ``OUT/checkpoint.safetensors`` when asked,
    and train to the end of the plan."""
    trainer = Trainer(config, callback=callback)
    if resume:
        trainer.resume()
    return trainer.train()
