"""``assay mix search``: train small proxies on mixtures drawn around the domains' token
shares and record each one's losses, for ``assay mix fit``.

RegMix (Liu et al. 2024): many tiny proxies, each on a mixture drawn from a Dirichlet
around the natural (token-proportional) mixture, give the data a regression from weights to
loss needs. Here:

1. the domains are tokenized once, as they are (``OUT/base``, an ``assay prepare`` of every
   document once), which fixes the tokenizer, the held-out documents and each domain's
   unique tokens;
2. the mixtures are drawn from the spec's seed (the natural one first), each under the epoch
   caps a proxy's token budget sets (``max_epochs`` passes over a domain at most);
3. each mixture is prepared with the base tokenizer and the same held-out split
   (``OUT/mixtures/K``), a proxy is trained on it per seed (``OUT/runs/K-sSEED``), and a row
   is appended to ``OUT/runs.csv``: weights, held-out loss per domain, the target loss (the
   held-out loss over the target domains' documents, or the loss on a target text no proxy
   trains on, tokenized once into ``OUT/target``), tokens, and the proxy's training
   seconds.

Proxies train ``workers`` at a time in processes here, or, given Ray settings, as Ray tasks
on a cluster (one CPU each; the output must be storage every node sees). Run again, the
search skips the proxies already in ``runs.csv`` and takes a proxy whose run folder finished
as it is (a killed search goes on with the proxies that finished). Everything a search cannot
do is refused before any proxy trains.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assay.engine.worker import die_with
from assay.io.ownership import claim_folder
from assay.io.writers import append_csv_row, write_json
from assay.mix.law import n_parameters
from assay.mix.optimize import caps_from_tokens
from assay.mix.runs import LOSS, WEIGHT, MixError
from assay.prepare import prepare
from assay.prepare.recipe import HeldoutSpec, PrepareRecipe, TokenizerSpec
from assay.quantities import parse_count
from assay.specfile import RecipeError, load_yaml, located_error

if TYPE_CHECKING:
    from assay.engine.settings import RaySettings

Log = Callable[[str], None]
# Each mixture is a Dirichlet draw around the natural shares with its own concentration, drawn
# log-uniformly from this range (per domain): RegMix varies it so that the proxies see both
# mixtures near the natural one and far from it (a few domains dominating).
CONCENTRATIONS = (0.1, 5.0)
TARGET = "target"  # OUT/target: a target text's shards (its one phase is the prepare default's)
TARGET_PHASE = "main"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DomainSpec(_Strict):
    """A domain: documents of a curated output, optionally only some of its sources."""

    path: str
    select: list[str] | None = None


class ProxySpec(_Strict):
    """The proxy model every mixture trains (``assay train`` settings)."""

    model: str = "2x32"
    tokens: int | str = Field(1_000_000, description="training tokens per proxy, e.g. 1M")
    context: int = Field(64, ge=8)
    seeds: list[int] = Field(default_factory=lambda: [0])
    lr: float | None = None
    batch_tokens: int | None = None
    threads: int | None = 1


class TargetSpec(_Strict):
    """The loss to minimise: held-out loss over some domains' documents (``domains``), or
    loss on a text no proxy trains on (``text``: a curated output, e.g. a benchmark's text)."""

    domains: list[str] = Field(default_factory=list)
    text: DomainSpec | None = None


class AnnealSpec(_Strict):
    """``assay mix anneal``: the last ``fraction`` of a proxy's tokens, with each domain in
    turn at ``upsample`` of the mixture (Blakeney et al. 2024)."""

    fraction: float = Field(0.2, gt=0, lt=1, description="share of the proxy's tokens in the anneal")
    upsample: float = Field(0.5, gt=0, le=1, description="the upsampled domain's share of the anneal")


class MixSpec(_Strict):
    """A validated mixture-search spec."""

    name: str
    output: str
    seed: int = 0
    domains: dict[str, DomainSpec]
    tokenizer: TokenizerSpec
    heldout: HeldoutSpec
    target: TargetSpec
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    mixtures: int = Field(16, ge=1, description="mixtures to train proxies on")
    workers: int = Field(1, ge=1, description="proxies trained at once (a process each, one thread)")
    max_epochs: float = Field(16.0, gt=0, description="passes over a domain a proxy's mixture may ask")
    anneal: AnnealSpec = Field(default_factory=AnnealSpec)

    def proxy_tokens(self) -> int:
        tokens = self.proxy.tokens
        return int(parse_count(tokens)) if isinstance(tokens, str) else tokens


def load_mix_spec(path: str | Path) -> MixSpec:
    """Read and validate a spec; every problem with the file and line, before any work."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(source, None, f"cannot read the spec: {exc.strerror}") from None
    data, lines = load_yaml(text, source)
    if not isinstance(data, dict):
        raise RecipeError(source, 1, "a mix spec is a mapping with keys name, output, domains, tokenizer, "
                                     "heldout, target and proxy")
    try:
        spec = MixSpec.model_validate(data)
    except ValidationError as exc:
        raise located_error(exc, source, lines, (), MixSpec) from None
    check_spec(spec, source)
    return spec


def check_spec(spec: MixSpec, source: str = "<spec>") -> None:
    """What can be refused before tokenizing anything."""
    if len(spec.domains) < 2:
        raise MixError(f"{source}: a mixture needs at least two domains")
    text = spec.target.text
    if (text is None) == (not spec.target.domains):
        raise MixError(f"{source}: the target is target.domains (held-out loss of domains) or target.text "
                       "(a curated output no proxy trains on): give one of them")
    unknown = [d for d in spec.target.domains if d not in spec.domains]
    if unknown:
        raise MixError(f"{source}: target.domains must name domains of the spec "
                       f"({', '.join(unknown)} is not one)")
    if text is not None:
        for name, domain in spec.domains.items():
            shared = (None if text.select is None or domain.select is None
                      else set(text.select) & set(domain.select))
            if Path(domain.path).resolve() == Path(text.path).resolve() and (shared is None or shared):
                raise MixError(f"{source}: target.text shares documents with domain {name!r} (the same "
                               "curated output, the same sources): the proxies would train on their target")
    if spec.heldout.fraction <= 0:
        raise MixError(f"{source}: heldout.fraction must be above 0: the runs hold held-out loss per domain")
    need = n_parameters(len(spec.domains)) + 1
    proxies = spec.mixtures * len(spec.proxy.seeds)
    if spec.mixtures < need:
        raise MixError(f"{source}: {spec.mixtures} mixtures are fewer than the regressors need: the "
                       f"mixing law over {len(spec.domains)} domains has {need - 1} free parameters, so at "
                       f"least {need} mixtures (better {2 * (need - 1)}+; {proxies} proxies with the seeds)")


def prepare_recipe(spec: MixSpec, out: Path, tokenizer: TokenizerSpec, weights: dict[str, float] | None,
                   total_tokens: int | None = None) -> PrepareRecipe:
    """The prepare recipe of the base (every document once) or of one mixture (of the proxy's
    tokens, or ``total_tokens``)."""
    if weights is None:
        sources = {d: {"path": s.path, "select": s.select, "epochs": 1} for d, s in spec.domains.items()}
        mixture: dict[str, Any] = {"sources": sources}
    else:
        sources = {d: {"path": s.path, "select": s.select, "weight": weights[d]}
                   for d, s in spec.domains.items()}
        mixture = {"sources": sources, "total_tokens": total_tokens or spec.proxy_tokens(),
                   "max_epochs": spec.max_epochs}
    for entry in sources.values():
        if entry["select"] is None:
            del entry["select"]
    return PrepareRecipe.model_validate({
        "name": f"{spec.name}-{out.name}", "output": str(out), "seed": spec.seed,
        "tokenizer": tokenizer.model_dump(exclude_none=True), "mixture": mixture,
        "packing": {"method": "concat", "context": spec.proxy.context},
        "heldout": spec.heldout.model_dump(exclude_none=True),
    })


def _target_recipe(spec: MixSpec, out: Path, base: Path) -> PrepareRecipe:
    """The prepare recipe of a target text: every document once, with the base's tokenizer,
    in the one phase the proxies are scored on."""
    assert spec.target.text is not None
    source: dict[str, Any] = {"path": spec.target.text.path, "epochs": 1}
    if spec.target.text.select is not None:
        source["select"] = spec.target.text.select
    return PrepareRecipe.model_validate({
        "name": f"{spec.name}-{TARGET}", "output": str(out), "seed": spec.seed,
        "tokenizer": {"path": str(base / "tokenizer.json"), "eos": spec.tokenizer.eos},
        "mixture": {"sources": {TARGET: source}},
        "packing": {"method": "concat", "context": spec.proxy.context},
    })


def draw_mixtures(spec: MixSpec, unique: dict[str, float]) -> np.ndarray:
    """The spec's mixtures (rows, in the order of ``spec.domains``): the natural mixture
    (token shares) first, then draws from Dirichlets around it (each with a concentration of
    its own, :data:`CONCENTRATIONS`), each under the caps."""
    domains = list(spec.domains)
    caps = caps_from_tokens(domains, unique, spec.proxy_tokens(), spec.max_epochs)
    natural = np.array([unique[d] for d in domains], dtype=np.float64)
    natural /= natural.sum()
    rng = np.random.default_rng(spec.seed)
    rows = [natural] if (natural <= caps + 1e-12).all() else []
    low, high = np.log(CONCENTRATIONS[0]), np.log(CONCENTRATIONS[1])
    for _ in range(100 * spec.mixtures):
        if len(rows) >= spec.mixtures:
            break
        concentration = np.exp(rng.uniform(low, high)) * len(domains)
        drawn = rng.dirichlet(np.maximum(natural * concentration, 1e-3))
        if (drawn <= caps + 1e-12).all():
            rows.append(drawn)
    if len(rows) < spec.mixtures:
        raise MixError(f"only {len(rows)} of {spec.mixtures} mixtures fit under the epoch caps: raise "
                       "max_epochs or lower proxy.tokens")
    return np.array(rows)


COLUMNS_AFTER = ("target", "tokens", "seconds")


def run_search(spec: MixSpec, log: Log | None = None, ray: RaySettings | None = None) -> Path:
    """Train the spec's proxies (those not in ``OUT/runs.csv`` yet), here or, with ``ray``,
    as Ray tasks; the CSV's path."""
    say = log or (lambda _msg: None)
    out = Path(spec.output)
    with claim_folder(str(out), "mix", inputs=spec_inputs(spec)):
        return _search(spec, out, say, ray)


def spec_inputs(spec: MixSpec) -> list[str]:
    """What a search reads (its output may neither be nor hold any of them)."""
    inputs = [s.path for s in spec.domains.values()]
    inputs += [spec.tokenizer.path] if spec.tokenizer.path else []
    return inputs + ([spec.target.text.path] if spec.target.text else [])


def spec_identity(spec: MixSpec, exclude: set[str]) -> dict[str, Any]:
    """The settings that make runs comparable (unset options left out, so that an option
    added later does not make an earlier output another spec's)."""
    return spec.model_dump(mode="json", exclude=exclude, exclude_none=True)


def _without_none(value: Any) -> Any:
    """``value`` without the unset (None) entries of its mappings, as an identity compares it."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def check_identity(recorded: Path, mine: dict[str, Any], what: str) -> None:
    """Record ``mine`` (a spec's settings) at ``recorded``, or refuse another: the runs an
    output holds belong to one spec, and resuming with another would mix them."""
    if recorded.exists() and _without_none(json.loads(recorded.read_text())) != mine:
        raise MixError(f"{recorded.parent} holds {what} of a different spec ({recorded}); "
                       "choose another output")
    if not recorded.exists():
        write_json(str(recorded), mine)


def prepare_base(spec: MixSpec, out: Path, say: Log) -> dict[str, float]:
    """Tokenize every domain once (``OUT/base``) and the target text if any (``OUT/target``);
    check the target has documents; each domain's unique tokens."""
    from assay.prepare.reader import Shards

    base = out / "base"
    if not (base / "manifest.json").exists():
        say("tokenizing every domain once (base)")
        prepare(prepare_recipe(spec, base, spec.tokenizer, None), overwrite=base.exists())
    shards = Shards(base)
    if spec.target.text is not None and not (out / TARGET / "manifest.json").exists():
        say("tokenizing the target text (target)")
        prepare(_target_recipe(spec, out / TARGET, base), overwrite=(out / TARGET).exists())
    held = shards.manifest.get("heldout", {}).get("sources", {})
    empty = [d for d in spec.target.domains if not held.get(d, {}).get("documents")]
    if empty:
        raise MixError(f"the target is empty: no held-out document of {', '.join(empty)} (raise "
                       "heldout.fraction, or give the domain more documents)")
    return {d: float(shards.manifest["sources"][d]["unique_tokens"]) for d in spec.domains}


def base_tokenizer(spec: MixSpec, out: Path) -> TokenizerSpec:
    return TokenizerSpec(path=str(out / "base" / "tokenizer.json"), eos=spec.tokenizer.eos)


def _search(spec: MixSpec, out: Path, say: Log, ray: RaySettings | None) -> Path:
    check_identity(out / "spec.json", spec_identity(spec, exclude={"workers", "anneal"}), "a search")
    unique = prepare_base(spec, out, say)
    mixtures = draw_mixtures(spec, unique)
    tokenizer = base_tokenizer(spec, out)
    csv_path = out / "runs.csv"
    done = _done(csv_path)
    domains = list(spec.domains)
    columns = ["mixture", "seed", *(WEIGHT + d for d in domains), *(LOSS + d for d in domains),
               *COLUMNS_AFTER]
    todo = [(k, seed, dict(zip(domains, weights.tolist(), strict=True)))
            for k, weights in enumerate(mixtures) for seed in spec.proxy.seeds if (k, seed) not in done]

    def record(row: dict[str, Any]) -> None:
        append_csv_row(csv_path, columns, row)
        say(f"mixture {row['mixture']} seed {row['seed']}: target loss {row['target']}")

    run_jobs(partial(_train_proxy_job, spec, out, tokenizer), todo, spec.workers, ray, record)
    return csv_path


def run_jobs(fn: Callable[[Any], dict[str, Any]], jobs: list[Any], workers: int, ray: RaySettings | None,
             record: Callable[[dict[str, Any]], None]) -> None:
    """``record(fn(job))`` for every job, in order: here one at a time, in ``workers``
    processes (spawned, bound to this one so none outlives it; each result recorded as soon
    as those before it are in), or as Ray tasks (recorded when the last finishes; ``fn`` must
    make a killed run resumable from what it wrote)."""
    if ray is not None and jobs:
        from assay.engine.ray import RayExecutor

        executor = RayExecutor(None, ray)
        try:
            rows = executor.map(fn, jobs)
        finally:
            executor.close()
        for row in rows:
            record(row)
        return
    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            record(fn(job))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=die_with,
                             initargs=(os.getpid(),)) as pool:
        for future in [pool.submit(fn, job) for job in jobs]:
            record(future.result())


def _train_proxy_job(spec: MixSpec, out: Path, tokenizer: TokenizerSpec,
                     job: tuple[int, int, dict[str, float]]) -> dict[str, Any]:
    """Prepare mixture ``k`` of a job ``(k, seed, weights)`` (once) and train its proxy with
    ``seed``: its row of runs.csv."""
    k, seed, mixture = job
    folder = out / "mixtures" / str(k)
    if not (folder / "manifest.json").exists():  # an unfinished one (killed) is done again
        prepare(prepare_recipe(spec, folder, tokenizer, mixture), overwrite=folder.exists())
    result, target = train_proxy(spec, out, folder, out / "runs" / f"{k}-s{seed}", seed)
    return {"mixture": k, "seed": seed, **proxy_row(mixture, result, target)}


def proxy_row(weights: dict[str, float], result: dict[str, Any], target: float) -> dict[str, Any]:
    """A trained proxy's columns of a runs table: its weights, held-out loss per domain, the
    target loss, its tokens and training seconds."""
    sources = result["heldout"]["sources"]
    return {**{WEIGHT + d: f"{w:.6f}" for d, w in weights.items()},
            **{LOSS + d: f"{sources[d]['loss']:.6f}" for d in weights if d in sources},
            "target": f"{target:.6f}", "tokens": result["tokens"],
            "seconds": f"{result['train_seconds']:.1f}"}


def train_proxy(spec: MixSpec, out: Path, shards: Path, run: Path, seed: int,
                **changes: Any) -> tuple[dict[str, Any], float]:
    """Train the spec's proxy on ``shards`` into ``run`` (``changes``: other train settings,
    e.g. tokens, a schedule, ``init``); its result and its target loss. A run folder that
    holds the proxy's checkpoint is resumed from it (a finished run gives its saved result)."""
    from assay.prepare.reader import Shards
    from assay.train.checkpoint import FILE as CHECKPOINT
    from assay.train.trainer import TrainConfig, Trainer

    proxy = spec.proxy
    config = TrainConfig(**{"shards": str(shards), "out": str(run), "model": proxy.model,
                            "tokens": spec.proxy_tokens(), "context": proxy.context, "seed": seed,
                            "lr": proxy.lr, "batch_tokens": proxy.batch_tokens, "threads": proxy.threads,
                            "precision": "fp32", **changes})
    trainer = Trainer(config, shards=Shards(shards))
    if (run / CHECKPOINT).exists():
        trainer.resume()
    result = trainer.train()
    if spec.target.text is not None:  # the trained proxy, scored on the target text's phase
        from assay.train.evaluate import evaluate, heldout_set

        text = heldout_set(Shards(out / TARGET), proxy.context, phase=TARGET_PHASE)
        return result, float(evaluate(trainer.model, text, trainer.device, trainer.autocast)["loss"])
    sources = result["heldout"]["sources"]
    target = (sum(sources[d]["loss"] * sources[d]["tokens"] for d in spec.target.domains)
              / sum(sources[d]["tokens"] for d in spec.target.domains))
    return result, float(target)


def _done(path: Path) -> set[tuple[int, int]]:
    if not path.exists():
        return set()
    with open(path, newline="", encoding="utf-8") as f:
        return {(int(r["mixture"]), int(r["seed"])) for r in csv.DictReader(f) if r.get("target")}
