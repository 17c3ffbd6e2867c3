"""``assay prepare``: curated documents -> tokenizer -> mixture -> training shards.

The I/O edge of :mod:`assay.prepare`: it reads curated outputs, checks everything that can
be checked before any work (empty documents, the tokenizer file, budgets that cannot add
up, an estimate of the epochs), tokenizes each source once, plans and draws the mixture
with :mod:`assay.prepare.mixture`, and writes the shards described in
:mod:`assay.prepare.layout`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from assay.documents import SOURCE
from assay.engine.settings import RaySettings
from assay.io.ownership import claim_folder
from assay.io.writers import write_json
from assay.prepare import layout
from assay.prepare.mixture import (
    BudgetError,
    Draw,
    PhaseShare,
    SourcePlan,
    SourceShare,
    check_repetition,
    draw_documents,
    effective_data,
    plan_targets,
    repeated_token_value,
)
from assay.prepare.recipe import HeldoutSpec, MixtureSpec, PrepareRecipe
from assay.prepare.shards import TokenFile
from assay.prepare.sources import (
    Log,
    PrepareError,
    SourceDocs,
    load_sources,
    seed_of,
    split_heldout,
    training_sample,
)
from assay.prepare.tokenizer import EncodeJob, Encoder, encode_job, load_encoder, train_encoder
from assay.prepare.writing import (
    BATCH_BYTES,
    EncodeMany,
    column_objects,
    encode_here,
    phase_order,
    tokenize_sources,
    write_heldout,
    write_split,
)
from assay.versions import dependency_versions

FORMAT_VERSION = 1
CHECK_BYTES = 1 << 18  # text on which tiktoken's ids are checked against tokenizers'


@dataclass
class PrepareResult:
    """What ``prepare`` wrote: the output folder, its manifest and the warnings."""

    output: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _shares(mixture: MixtureSpec, unique: dict[str, int] | None) -> list[SourceShare]:
    shares = []
    for name, s in mixture.sources.items():
        tokens = s.tokens
        if s.epochs is not None:
            tokens = round(s.epochs * unique[name]) if unique is not None else 0
        shares.append(SourceShare(name, s.weight, tokens))
    return shares


def _phases(mixture: MixtureSpec) -> list[PhaseShare]:
    return [PhaseShare(p.name, p.fraction, p.weights) for p in mixture.phases]


def _total(mixture: MixtureSpec, shares: Sequence[SourceShare]) -> int | None:
    if mixture.total_tokens is not None:
        return mixture.total_tokens
    if all(s.weight is None for s in shares) and all(s.tokens is not None for s in shares):
        return sum(s.tokens or 0 for s in shares)
    return None


def _check_structure(mixture: MixtureSpec) -> None:
    """The budget checks that need no token counts (sources given in epochs count 0 here)."""
    shares = _shares(mixture, None)
    uses_total = any(s.weight is not None for s in shares) or all(p.weights for p in mixture.phases)
    uncounted = [name for name, s in mixture.sources.items() if s.epochs is not None]
    plan_targets(mixture.total_tokens if uses_total else None, shares, _phases(mixture), uncounted)


def prepare(recipe: PrepareRecipe, *, force: bool = False, overwrite: bool = False, dry_run: bool = False,
            log: Log | None = None, ray: RaySettings | None = None) -> PrepareResult:
    """Run a prepare recipe: check, tokenize, plan and draw the mixture, write the shards.

    Everything that can be refused without tokenizing is refused first (the output folder,
    the tokenizer file, empty or missing documents, budgets that cannot add up, an estimate
    of the epochs); the exact epochs are checked after tokenizing, before any shard is
    written. ``force`` allows sources beyond their ``max_epochs``; ``dry_run`` stops after
    planning and returns the manifest it would write. The output must be new, empty or a
    prepare output (:mod:`assay.io.ownership`), never one of the sources, and is locked
    while this runs; ``overwrite`` replaces the shards of an earlier prepare there. With
    ``ray``, the sources are tokenized by Ray tasks on that cluster (the draw stays here);
    the shards are the same bytes.
    """
    say: Log = log or (lambda _msg: None)
    out = Path(recipe.output)
    sources = [s.path for s in recipe.resolved_mixture().sources.values()]
    sources += [recipe.tokenizer.path] if recipe.tokenizer.path else []
    with claim_folder(str(out), "prepare", inputs=sources) as owned:
        held = [name for name in layout.NAMES if (out / name).exists()]
        if held and not dry_run:
            if not overwrite:
                raise PrepareError(f"{out} already holds shards of an earlier prepare; use --overwrite to "
                                   "replace them")
            owned.clear(held)
        try:
            result = _prepare(recipe, out, force=force, dry_run=dry_run, say=say, ray=ray)
        except BaseException:
            owned.clear([layout.WORK])
            owned.discard()
            raise
        if dry_run:
            owned.discard()
        return result


def _prepare(recipe: PrepareRecipe, out: Path, *, force: bool, dry_run: bool, say: Log,
             ray: RaySettings | None) -> PrepareResult:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    mixture = recipe.resolved_mixture()
    _check_structure(mixture)
    phases = _phases(mixture)
    tok = recipe.tokenizer
    encoder = load_encoder(tok.path, eos=tok.eos, engine=tok.engine) if tok.path else None
    sources, warnings = load_sources(mixture, skip_empty=recipe.skip_empty, log=say)
    sources, held = split_heldout(sources, recipe.heldout, recipe.seed, say)
    if recipe.heldout.fraction > 0 and len(held) < len(sources):
        warnings.append("held-out split: no document of "
                        + ", ".join(s.name for s in sources if s.name not in {h.name for h in held})
                        + " (a source needs at least two documents)")
    timings["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    sample = training_sample(sources, CHECK_BYTES, recipe.seed)
    if encoder is None:
        assert tok.train is not None
        say(f"training a byte-level BPE, vocabulary {tok.train.vocab_size:,} ...")
        encoder = train_encoder(training_sample(sources, tok.train.max_mb * 1e6, recipe.seed),
                                tok.train.vocab_size, eos=tok.eos, min_frequency=tok.train.min_frequency,
                                engine=tok.engine)
        if encoder.vocab_size < tok.train.vocab_size:
            warnings.append(f"the text has too few pairs for {tok.train.vocab_size:,} ids: the tokenizer "
                            f"has {encoder.vocab_size:,}")
    timings["train_tokenizer"] = time.perf_counter() - clock
    fallback = encoder.check_engine(sample)
    if fallback:
        warnings.append(fallback)
    _estimate_epochs(mixture, sources, encoder, sample, force)

    clock = time.perf_counter()
    work = out / layout.WORK
    if work.exists():
        shutil.rmtree(work)
    with _encoding(ray, sources) as (encode, batch_bytes):
        first_doc, lengths = tokenize_sources(sources, encoder, work / "tokens", say, encode, batch_bytes)
        if held:
            held_first, held_lengths = tokenize_sources(
                held, encoder, work / layout.HELDOUT, lambda msg: say(f"held-out {msg}"), encode, batch_bytes)
    timings["tokenize"] = time.perf_counter() - clock
    unique = {s.name: int(lengths[first_doc[i]: first_doc[i + 1]].sum()) for i, s in enumerate(sources)}
    shares = _shares(mixture, unique)
    targets = plan_targets(_total(mixture, shares), shares, phases)
    plans = [SourcePlan(s.name, unique[s.name], float(targets[:, i].sum()),
                        mixture.sources[s.name].max_epochs or mixture.max_epochs)
             for i, s in enumerate(sources)]
    warnings += check_repetition(plans, force=force)
    for w in warnings:
        say(f"warning: {w}")

    clock = time.perf_counter()
    draws = [draw_documents(lengths[first_doc[i]: first_doc[i + 1]], targets[:, i],
                            seed_of(recipe.seed, s.name), mixture.tolerance) for i, s in enumerate(sources)]
    orders = [phase_order(recipe.seed, p, draws, first_doc) for p in range(len(phases))]
    manifest = _manifest(recipe, mixture, encoder, sources, unique, targets, draws, plans, warnings,
                         first_doc, lengths)
    if held:
        manifest["heldout"] = _heldout_manifest(recipe.heldout, held, held_first, held_lengths)
    if dry_run:
        shutil.rmtree(work, ignore_errors=True)
        return PrepareResult(out, manifest, warnings)
    tokens_file = TokenFile(work / "tokens")
    for p, phase in enumerate(phases):
        order = orders[p]
        info = manifest["phases"][p]
        write_split(out, p, phase.name, order, sources, lengths, tokens_file, encoder, recipe, info)
        say(f"phase {phase.name}: {info['tokens']:,} tokens, {info['documents']:,} documents")
    del tokens_file
    if held:
        write_heldout(out, manifest["heldout"], held, held_first, held_lengths, work / layout.HELDOUT,
                       encoder, recipe)
        say(f"held-out: {manifest['heldout']['tokens']:,} tokens, {manifest['heldout']['documents']:,} "
            "documents")
    (out / layout.TOKENIZER).write_bytes(encoder.spec_bytes)
    shutil.rmtree(work)
    timings["write"] = time.perf_counter() - clock
    manifest["timings"] = timings
    write_json(str(out / layout.MANIFEST), manifest)
    return PrepareResult(out, manifest, warnings)


@contextmanager
def _encoding(ray: RaySettings | None, sources: Sequence[SourceDocs]) -> Iterator[tuple[EncodeMany, int]]:
    """How to encode the sources' batches, and the batch size: in this process, or as Ray
    tasks (batches small enough that every CPU of the cluster gets several)."""
    if ray is None:
        yield encode_here, BATCH_BYTES
        return
    from assay.engine.ray import RayExecutor

    executor = RayExecutor(None, ray)
    try:
        def encode(encoder: Encoder, parts: list[pa.ChunkedArray]) -> list[tuple[np.ndarray, np.ndarray]]:
            jobs = [EncodeJob(encoder.spec_bytes, encoder.eos, encoder.engine, p.combine_chunks())
                    for p in parts]
            return executor.map(encode_job, jobs)

        total = sum(int(s.n_bytes.sum()) for s in sources)
        yield encode, int(min(BATCH_BYTES, max(1 << 20, total // (4 * executor.workers))))
    finally:
        executor.close()


def _estimate_epochs(mixture: MixtureSpec, sources: Sequence[SourceDocs], encoder: Encoder,
                     sample: Sequence[str], force: bool) -> None:
    """Refuse, before tokenizing everything, a mixture whose epochs are far above a cap by an
    estimate of tokens per byte from ``sample`` (the exact check follows tokenization)."""
    if force or not sample:
        return
    per_byte = sum(a.size for a in encoder.encode(sample)) / max(sum(len(t.encode()) for t in sample), 1)
    unique = {s.name: int(s.n_bytes.sum() * per_byte) + s.table.num_rows for s in sources}
    shares = _shares(mixture, unique)
    targets = plan_targets(_total(mixture, shares), shares, _phases(mixture))
    for i, s in enumerate(sources):
        cap = mixture.sources[s.name].max_epochs or mixture.max_epochs
        epochs = targets[:, i].sum() / max(unique[s.name], 1)
        if epochs > 1.25 * cap:
            raise BudgetError(f"source {s.name!r}: the mixture would take about {epochs:.1f} epochs of it "
                              f"(estimated {unique[s.name]:,} unique tokens), above its cap of {cap:g}; "
                              "lower its share, raise max_epochs or use --force")


def _heldout_manifest(spec: HeldoutSpec, held: Sequence[SourceDocs], first: np.ndarray,
                      lengths: np.ndarray) -> dict[str, Any]:
    """The held-out split's entry of the manifest (files are added when written)."""
    per_source = {s.name: {"documents": s.table.num_rows, "bytes": int(s.n_bytes.sum()),
                           "tokens": int(lengths[first[i]: first[i + 1]].sum())} for i, s in enumerate(held)}
    return {"name": layout.HELDOUT, "fraction": spec.fraction, "max_documents": spec.max_documents,
            "tokens": int(lengths.sum()), "documents": int(lengths.size),
            "bytes": sum(v["bytes"] for v in per_source.values()),
            "documents_file": str(layout.documents(None, layout.HELDOUT)), "sources": per_source}


def _manifest(recipe: PrepareRecipe, mixture: MixtureSpec, encoder: Encoder, sources: Sequence[SourceDocs],
              unique: dict[str, int], targets: np.ndarray, draws: Sequence[Sequence[Draw]],
              plans: Sequence[SourcePlan], warnings: list[str], first_doc: np.ndarray,
              lengths: np.ndarray) -> dict[str, Any]:
    versions = dependency_versions(extra=("tokenizers", "tiktoken"))
    source_info = {}
    for i, s in enumerate(sources):
        realised = sum(d.tokens for d in draws[i])
        plan = plans[i]
        src_lengths = lengths[first_doc[i]: first_doc[i + 1]]
        curated = column_objects(s.table.column(SOURCE))
        by_curated: dict[str, dict[str, int]] = {}
        drawn_docs = np.concatenate([d.docs for d in draws[i]])
        drawn_curated = curated[drawn_docs]
        for name in sorted(set(curated.tolist())):
            mine = curated == name
            by_curated[name] = {"documents": int(mine.sum()), "unique_tokens": int(src_lengths[mine].sum()),
                                "tokens": int(src_lengths[drawn_docs[drawn_curated == name]].sum())}
        spec = mixture.sources[s.name]
        effective = float(effective_data(unique[s.name], realised))
        source_info[s.name] = {
            "path": spec.path, "select": spec.select, "files": s.files,
            "documents": s.table.num_rows, "bytes": int(s.n_bytes.sum()),
            "unique_tokens": unique[s.name],
            "requested_tokens": float(targets[:, i].sum()), "tokens": realised,
            "epochs": realised / unique[s.name], "max_epochs": plan.max_epochs,
            "effective_tokens": effective,
            "effective_fraction": effective / realised if realised else 1.0,
            "repeated_token_value": repeated_token_value(realised / unique[s.name]),
            "by_curated_source": by_curated,
        }
    phases = []
    for p, phase in enumerate(mixture.phases):
        tokens = sum(d[p].tokens for d in draws)
        per_source = {}
        for i, s in enumerate(sources):
            d = draws[i][p]
            per_source[s.name] = {
                "requested_tokens": float(targets[p, i]), "tokens": d.tokens, "documents": int(d.docs.size),
                "share": d.tokens / tokens if tokens else 0.0,
                "requested_share": float(targets[p, i] / targets[p].sum()) if targets[p].sum() else 0.0,
                "miss": (d.tokens - float(targets[p, i])) / float(targets[p, i]) if targets[p, i] else 0.0,
            }
        phases.append({"name": phase.name, "fraction": phase.fraction, "weights": phase.weights,
                       "tokens": tokens, "documents": sum(int(d[p].docs.size) for d in draws),
                       "documents_file": str(layout.documents(p, phase.name)), "sources": per_source})
    return {
        "format": "assay-shards", "format_version": FORMAT_VERSION, "name": recipe.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "assay_version": versions.get("assay", "unknown"), "versions": versions,
        "recipe": recipe.model_dump(mode="json"), "seed": recipe.seed,
        "tokenizer": {"file": layout.TOKENIZER, **encoder.describe(),
                      "origin": recipe.tokenizer.path or "trained"},
        "packing": recipe.packing.model_dump(mode="json"),
        "sources": source_info, "phases": phases,
        "totals": {"tokens": sum(p["tokens"] for p in phases),
                   "documents": sum(p["documents"] for p in phases), "unique_tokens": sum(unique.values())},
        "warnings": warnings,
    }
