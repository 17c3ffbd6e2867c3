"""The ``assay train``, ``assay compare`` and ``assay sweep`` commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from assay.cli.common import console, fail, guarded, inert, warn
from assay.io.ownership import check_file_output
from assay.quantities import parse_count
from assay.train.config import TrainConfig

# Options shared by the three commands (typer needs them on each function).
Model = Annotated[str, typer.Option(help="preset (tiny, 1m, 5m, 20m, gpt2), LAYERSxWIDTH (4x128) or N (2M)")]
Context = Annotated[int | None, typer.Option(help="sequence length (default: the shards' packing context)")]
Tokens = Annotated[str | None, typer.Option(help="training tokens D, e.g. 20M (default: all, once)")]
BatchTokens = Annotated[str | None, typer.Option(help="tokens per step (default: Step Law, Li et al. 2025)")]
MicroBatch = Annotated[str | None, typer.Option(help="tokens per forward/backward (gradient accumulation)")]
Lr = Annotated[float | None, typer.Option(help="peak learning rate (default: Step Law, Li et al. 2025)")]
ScheduleOpt = Annotated[str, typer.Option(help="cosine, wsd, power or constant")]
Warmup = Annotated[float, typer.Option(help="warmup: a fraction of the steps (<1) or steps (>=1)")]
Decay = Annotated[float, typer.Option(help="wsd/power: fraction of the steps that decay")]
DecayShapeOpt = Annotated[str, typer.Option(help="wsd/power decay shape: sqrt, linear or cosine")]
Mlp = Annotated[str, typer.Option(help="gelu or swiglu")]
Positions = Annotated[str, typer.Option(help="rope or learned")]
PackingOpt = Annotated[str, typer.Option(help="concat (windows) or buckets (Dataset Decomposition)")]
Seed = Annotated[int, typer.Option(help="seed of the initialisation and of the batch order")]
PrecisionOpt = Annotated[str, typer.Option(help="auto (bf16 where faster), bf16 or fp32")]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the model (a minute of warm-up)")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")]
Threads = Annotated[int | None, typer.Option(help="CPU threads (torch.set_num_threads)")]
EvalEvery = Annotated[int, typer.Option(help="evaluate every N steps (0: at the end only)")]
EvalDocs = Annotated[int | None, typer.Option(help="evaluate on N held-out documents, evenly spread")]
LogEvery = Annotated[int, typer.Option(help="log every N steps")]
AsJson = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


def _count(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_count(text)
    except ValueError:
        raise typer.BadParameter(f"{what} {text!r} is not a count (e.g. 20M, 16k, 5e6)") from None


def _config(shards: str, **options: Any) -> TrainConfig:
    for key in ("tokens", "batch_tokens", "micro_batch_tokens"):
        options[key] = _count(options.get(key), key.replace("_", "-"))
    choices = {"schedule": ("cosine", "wsd", "power", "constant"),
               "decay_shape": ("sqrt", "linear", "cosine"),
               "mlp": ("gelu", "swiglu"), "positions": ("rope", "learned"), "packing": ("concat", "buckets"),
               "precision": ("auto", "bf16", "fp32")}
    for key, valid in choices.items():
        if key in options and options[key] not in valid:
            raise typer.BadParameter(f"--{key.replace('_', '-')} {options[key]!r}: one of {', '.join(valid)}")
    return TrainConfig(shards=shards, **options)


class _Bars:
    """A progress bar per run: steps, loss, tokens/s and the trainer's ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, label: str, record: dict[str, Any]) -> None:
        if record["kind"] == "start":
            if label not in self.tasks:
                self.tasks[label] = self.progress.add_task(inert(label), total=record["steps"], loss="-",
                                                           speed="-", eta="-")
            self.progress.update(self.tasks[label], completed=record["step"])
            for w in record.get("warnings", []):
                warn(w, to=self.progress.console)
        elif record["kind"] == "train":
            eta = int(record["eta_s"])
            self.progress.update(self.tasks[label], completed=record["step"], loss=f"{record['loss']:.4f}",
                                 speed=f"{record['tokens_per_s']:,.0f}",
                                 eta=f"{eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
        elif record["kind"] == "eval":
            h = record["heldout"]
            self.progress.console.print(f"{label} step {record['step']:,}: held-out loss "
                                        f"{h['loss']:.4f}, {h['bpb']:.4f} bits/byte")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}", markup=False),
                    TextColumn("{task.fields[speed]} tok/s", markup=False),
                    TextColumn("ETA {task.fields[eta]}", markup=False), TimeElapsedColumn(), console=console)


def _run(work: Callable[[_Bars], Any]) -> Any:
    with _progress() as progress:
        return work(_Bars(progress))


def _dump(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                  | orjson.OPT_NON_STR_KEYS).decode() + "\n")


@guarded
def train_command(
    shards: Annotated[Path, typer.Argument(help="a folder written by `assay prepare`")],
    out: Annotated[Path | None, typer.Option(help="run folder: config, log.jsonl, checkpoint, result")]
    = None,
    model: Model = "tiny", context: Context = None, tokens: Tokens = None, batch_tokens: BatchTokens = None,
    micro_batch_tokens: MicroBatch = None, lr: Lr = None, schedule: ScheduleOpt = "cosine",
    warmup: Warmup = 0.05, decay: Decay = 0.2, decay_shape: DecayShapeOpt = "sqrt", mlp: Mlp = "gelu",
    positions: Positions = "rope", packing: PackingOpt = "concat", seed: Seed = 0,
    precision: PrecisionOpt = "auto", compile_model: Compile = False, device: Device = "auto",
    threads: Threads = None, eval_every: EvalEvery = 0, eval_documents: EvalDocs = None,
    eval_shards: Annotated[Path | None, typer.Option("--eval", help="score on this shards' held-out split")]
    = None,
    cloze: Annotated[Path | None, typer.Option(help="cloze JSONL: {context, choices, answer} per line")]
    = None,
    log_every: LogEvery = 10,
    checkpoint_every: Annotated[int, typer.Option(help="checkpoint every N steps (0: at the end)")] = 0,
    save_every: Annotated[int, typer.Option(help="keep the weights every N steps in OUT/checkpoints (for "
                                            "loss trajectories: assay select s2l)")] = 0,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoint.safetensors")] = False,
    init: Annotated[Path | None, typer.Option(
        help="start from this run's weights (its folder or checkpoint): continual pre-training, "
             "with this run's own optimizer and schedule")] = None,
    init_optimizer: Annotated[bool, typer.Option(
        help="with --init: also take its optimizer state (continue that run under a new schedule)")] = False,
    plot: Annotated[Path | None, typer.Option(
        help="PNG of the held-out loss per source over training (with --eval-every; needs the plot extra)")]
    = None,
    as_json: AsJson = False,
) -> None:
    """Train a proxy GPT on prepared shards and score it on their held-out split.

    Learning rate and batch default to the Step Law (Li et al. 2025) for the model's
    non-embedding parameters and the training tokens. With --out, the run writes
    config.json, log.jsonl, checkpoint.safetensors and result.json, and --resume continues
    it exactly. With --init RUN, the model starts from another run's weights (same --model
    and tokenizer) and the learning rate warms up and decays again: continual pre-training on
    new shards (put the old data in their mixture to replay it; --eval-every N logs the
    held-out loss per source, where forgetting shows).

    Example: assay train out/sweep-shards --model 2x32 --tokens 100k --out out/train
    """
    from assay.train.trainer import Trainer

    if resume and out is None:
        raise fail("--resume needs --out (the run folder holding checkpoint.safetensors)")
    if init_optimizer and init is None:
        raise fail("--init-optimizer needs --init (the run whose optimizer state to take)")
    if save_every and out is None:
        raise fail("--save-every needs --out (the run folder that keeps them)")
    if plot is not None:
        if not eval_every:
            raise fail("--plot needs --eval-every N (the held-out losses it draws)")
        check_file_output(plot)
    config = _config(str(shards), out=str(out) if out else None, model=model, context=context, tokens=tokens,
                     batch_tokens=batch_tokens, micro_batch_tokens=micro_batch_tokens, lr=lr,
                     schedule=schedule, warmup=warmup, decay=decay, decay_shape=decay_shape, mlp=mlp,
                     positions=positions, packing=packing, seed=seed, precision=precision,
                     compile=compile_model, device=device, threads=threads, eval_every=eval_every,
                     eval_documents=eval_documents, eval_shards=str(eval_shards) if eval_shards else None,
                     cloze=str(cloze) if cloze else None, log_every=log_every,
                     checkpoint_every=checkpoint_every, save_every=save_every,
                     init=str(init) if init else None,
                     init_optimizer=init_optimizer)

    records: list[dict[str, Any]] = []

    def work(bars: _Bars) -> tuple[Trainer, dict[str, Any]]:
        trainer = Trainer(config, callback=lambda r: (records.append(r), bars(shards.name, r)))
        if resume:
            trainer.resume()
        return trainer, trainer.train()

    trainer, result = _run(work)
    if plot is not None:
        from assay.train.plots import plot_heldout_sources

        if out is not None and (out / "log.jsonl").is_file():  # a resumed run's whole log
            records = [orjson.loads(line) for line in (out / "log.jsonl").read_bytes().splitlines()]
        plot_heldout_sources(records, plot, title=f"{shards}" + (f", from {init}" if init else ""))
    if as_json:
        _dump({**result, "plan": trainer.plan.to_dict()})
        return
    _print_run(trainer, result)
    if plot is not None:
        console.print(f"held-out loss per source: {inert(str(plot), one_line=True)}")


def _print_run(trainer: Any, result: dict[str, Any]) -> None:
    plan = trainer.plan
    m = plan.model
    console.print(f"model {m.n_layer} layers x {m.d_model} ({m.n_head} heads, {m.mlp}, {m.positions}): "
                  f"N = {plan.params['non_embedding']:,} non-embedding + {plan.params['embedding']:,} "
                  "embedding parameters")
    speed = result["tokens_per_s"]
    console.print(f"{result['tokens']:,} tokens in {result['step']:,}/{plan.steps:,} steps of "
                  f"{plan.batch_tokens:,} tokens ({plan.sources['batch']}); peak lr {plan.lr:.3g} "
                  f"({plan.sources['lr']})" + (f"; {speed:,.0f} tokens/s" if speed else ""))
    heldout = result["heldout"]
    if heldout is None:
        return
    table = Table("source", "documents", "tokens", "loss (nats/token)", "bits/byte",
                  title="held-out evaluation (never trained on)")
    for name, s in heldout["sources"].items():
        table.add_row(name, f"{s['documents']:,}", f"{s['tokens']:,}", f"{s['loss']:.4f}", f"{s['bpb']:.4f}")
    table.add_row(Text("all", style="bold"), f"{sum(s['documents'] for s in heldout['sources'].values()):,}",
                  f"{heldout['tokens']:,}", f"{heldout['loss']:.4f}", f"{heldout['bpb']:.4f}")
    console.print(table)
    if "cloze" in heldout:
        c = heldout["cloze"]
        console.print(f"cloze: acc {c['acc']:.3f}, acc_norm {c['acc_norm']:.3f} on {c['items']:,} items")


@guarded
def compare_command(
    recipes: Annotated[list[Path], typer.Argument(help="two or more shards folders or prepare recipes")],
    seeds: Annotated[int, typer.Option(help="seeds per recipe (paired across recipes)")] = 3,
    out: Annotated[Path, typer.Option(help="folder for the runs, compare.json and curves.json")]
    = Path("out/compare"),
    eval_shards: Annotated[Path | None, typer.Option("--eval", help="score on this shards' held-out split "
                                                     "(default: the first recipe's)")] = None,
    plot: Annotated[Path | None, typer.Option(help="PNG of the loss curves (needs the plot extra)")] = None,
    confidence: Annotated[float, typer.Option(help="coverage of the intervals")] = 0.95,
    metric: Annotated[str, typer.Option(help="what the verdicts judge by: loss, bpb, or bpb:SOURCE "
                                        "(one source's held-out bits per byte)")] = "loss",
    model: Model = "tiny", context: Context = None, tokens: Tokens = None, batch_tokens: BatchTokens = None,
    micro_batch_tokens: MicroBatch = None, lr: Lr = None, schedule: ScheduleOpt = "cosine",
    warmup: Warmup = 0.05, mlp: Mlp = "gelu", positions: Positions = "rope", packing: PackingOpt = "concat",
    seed: Annotated[int, typer.Option(help="first seed")] = 0, precision: PrecisionOpt = "auto",
    compile_model: Compile = False, device: Device = "auto", threads: Threads = None,
    eval_every: EvalEvery = 0, eval_documents: EvalDocs = None, log_every: LogEvery = 10,
    as_json: AsJson = False,
) -> None:
    """Train the same proxy model on each data recipe with several seeds and compare held-out
    loss and bits per byte: mean, std and a 95% interval of the difference to the first recipe.

    Every recipe must use the same tokenizer. Runs are paired by seed (same initialisation
    and batch order), and all are scored on one held-out set that no recipe trains on.

    Example: assay compare out/shards-a out/shards-b --seeds 3 --tokens 200k
    """
    from assay.train.compare import resolve_recipes, run_compare
    from assay.train.plots import plot_curves

    if plot is not None:
        check_file_output(plot)

    base = _config("", model=model, context=context, tokens=tokens, batch_tokens=batch_tokens,
                   micro_batch_tokens=micro_batch_tokens, lr=lr, schedule=schedule, warmup=warmup, mlp=mlp,
                   positions=positions, packing=packing, seed=seed, precision=precision,
                   compile=compile_model, device=device, threads=threads, eval_every=eval_every,
                   eval_documents=eval_documents,
                   log_every=log_every)

    def work(bars: _Bars) -> dict[str, Any]:
        resolved = resolve_recipes(recipes, log=lambda m: bars.progress.console.print(m))
        return run_compare(resolved, base, seeds, out, eval_shards, confidence,
                           callback=lambda name, s, r: bars(f"{name} seed {s}", r), metric=metric)

    result = _run(work)
    curves = result.pop("curves")
    if plot is not None:
        plot_curves(curves, plot)
    if as_json:
        _dump(result)
        return
    _print_compare(result)
    if plot is not None:
        console.print(f"loss curves: {plot}")
    console.print(f"runs and compare.json in {out}/")


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _print_compare(result: dict[str, Any]) -> None:
    ev = result["eval"]
    console.print(f"held-out set: {ev['documents']:,} documents, {ev['tokens']:,} tokens of {ev['shards']} "
                  f"({ev['left_out']:,} left out: some recipe trains on them)")
    names = [r["name"] for r in result["recipes"]]
    base = result["baseline"]
    level = f"{result['confidence']:.0%}"
    table = Table("metric", *[f"{n} mean ± std" for n in names],
                  *[f"{n} - {base} [{level} interval]" for n in names[1:]],
                  title=f"{result['seeds']} seed(s) per recipe; lower is better")
    for metric in result["metrics"]:
        cells = []
        for n in names:
            s = result["summaries"][n][metric]
            cells.append(f"{s['mean']:.4f} ± {_fmt(s['std'])}")
        for n in names[1:]:
            d = result["differences"][n][metric]
            mark = " *" if d["significant"] else ""
            cells.append(f"{d['mean']:+.4f} [{_fmt(d['low'])}, {_fmt(d['high'])}]{mark}")
        table.add_row(metric, *cells)
    console.print(table)
    console.print("* the interval excludes zero")
    for sentence in result.get("verdicts", []):
        console.print(inert(sentence))


@guarded
def sweep_command(
    shards: Annotated[Path, typer.Argument(help="a folder of `assay prepare` with a held-out split")],
    sizes: Annotated[list[str], typer.Option(help="model sizes: presets, LAYERSxWIDTH or N; comma-separated "
                                             "or repeated")],
    tokens: Annotated[list[str], typer.Option(help="training tokens per run, e.g. 1M,2M,4M")],
    out: Annotated[Path, typer.Option(help="folder for the runs and runs.csv")] = Path("out/sweep"),
    group: Annotated[str | None, typer.Option(help="the runs.csv group (default: the shards' name)")] = None,
    context: Context = None, batch_tokens: BatchTokens = None, micro_batch_tokens: MicroBatch = None,
    lr: Lr = None, schedule: ScheduleOpt = "cosine", warmup: Warmup = 0.05, mlp: Mlp = "gelu",
    positions: Positions = "rope", packing: PackingOpt = "concat", seed: Seed = 0,
    precision: PrecisionOpt = "auto", compile_model: Compile = False, device: Device = "auto",
    threads: Threads = None, eval_documents: EvalDocs = None, log_every: LogEvery = 10,
) -> None:
    """Train every model size for every token budget and write runs.csv for `assay fit`.

    Each point gets its own Step Law learning rate and batch unless --lr/--batch-tokens are
    given. A sweep run again skips the points already in runs.csv.

    Example: assay sweep out/sweep-shards --sizes 2x32,2x64 --tokens 250k,500k,1M
    """
    from assay.train.sweep import parse_list, run_sweep

    base = _config(str(shards), context=context, batch_tokens=batch_tokens,
                   micro_batch_tokens=micro_batch_tokens, lr=lr, schedule=schedule, warmup=warmup, mlp=mlp,
                   positions=positions, packing=packing, seed=seed, precision=precision,
                   compile=compile_model, device=device, threads=threads, eval_documents=eval_documents,
                   log_every=log_every)
    size_list, token_list = parse_list(sizes), parse_list(tokens)
    for t in token_list:
        _count(t, "--tokens")

    def work(bars: _Bars) -> Path:
        return run_sweep(base, size_list, token_list, out, group,
                         callback=lambda m, d, r: bars(f"{m} x {d:,} tokens", r))

    csv_path = _run(work)
    table = Table("model", "N (non-embedding)", "D (tokens)", "held-out loss", "bits/byte", "lr", "seconds")
    import csv

    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            table.add_row(row["model"], f"{int(row['params']):,}", f"{int(row['tokens']):,}", row["loss"],
                          row["bpb"], row["lr"], row["seconds"])
    console.print(table)
    console.print(f"fit it: assay fit {csv_path}")


@guarded
def detect_command(
    run: Annotated[Path, typer.Argument(help="an `assay train --out` run folder: the model to ask")],
    texts: Annotated[Path, typer.Argument(help="JSONL of candidate texts, each with a membership label")],
    label: Annotated[str, typer.Option(help="the field saying whether the model trained on the text "
                                       "(true/false or 1/0)")] = "member",
    text_field: Annotated[str, typer.Option(help="the field holding the text")] = "text",
    k: Annotated[float, typer.Option(help="Min-K%'s share of least likely tokens (Shi et al.: 0.2)")] = 0.2,
    device: Device = "cpu", threads: Threads = 1, as_json: AsJson = False,
) -> None:
    """Membership inference: how well the model's loss, Min-K% Prob (Shi et al. 2024) and
    Min-K%++ (Zhang et al. 2024) tell texts it trained on from texts it did not, as the
    area under the ROC curve (0.5: no better than chance; 1: every member scores above
    every non-member).

    Example: assay detect out/run candidates.jsonl --label member
    """
    import numpy as np
    import torch

    from assay.train.score import auc, document_scores, load_run
    from assay.train.trainer import resolve_device

    if not 0 < k <= 1:
        raise fail(f"--k must be in (0, 1], not {k}")
    texts_in, members = _labelled_texts(texts, text_field, label)
    if threads is not None:
        torch.set_num_threads(threads)
    where = resolve_device(device)
    scores = document_scores(load_run(run, where), texts_in, k, where)
    labels = np.asarray(members, dtype=bool)
    higher_is_member = {"loss": -scores["loss"], "min_k": scores["min_k"],
                        "min_k_plus_plus": scores["min_k_plus_plus"]}
    result = {"run": str(run), "texts": str(texts), "members": int(labels.sum()),
              "non_members": int((~labels).sum()), "k": k, "scores": {name: {"auc": auc(values, labels),
                                        "members_mean": float(np.nanmean(scores[name][labels])),
                                        "non_members_mean": float(np.nanmean(scores[name][~labels]))}
                                 for name, values in higher_is_member.items()}}
    if as_json:
        _dump(result)
        return
    table = Table("score", "members mean", "non-members mean", "AUC",
                  title=f"{result['members']:,} members, {result['non_members']:,} non-members; k = {k:g}")
    for name, s in result["scores"].items():
        table.add_row(name, f"{s['members_mean']:.4f}", f"{s['non_members_mean']:.4f}", f"{s['auc']:.3f}")
    console.print(table)
    console.print("AUC: the chance that a member scores as more likely seen than a non-member (loss: lower)")


def _labelled_texts(path: Path, text_field: str, label: str) -> tuple[list[str], list[bool]]:
    """Texts and membership labels of a JSONL file; a bad line is an error naming it."""
    texts, members = [], []
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise fail(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise fail(f"{path}:{number}: no text in field {text_field!r}")
        value = record.get(label)
        if value not in (True, False, 0, 1):
            raise fail(f"{path}:{number}: field {label!r} must be true/false or 1/0, not {value!r}")
        texts.append(record[text_field])
        members.append(bool(value))
    if not any(members) or all(members):
        raise fail(f"{path}: an AUC needs both members and non-members ({sum(members)} of {len(members)} "
                   "are members)")
    return texts, members
