"""``assay prepare``: curated documents -> tokenizer -> mixture -> training shards.

The I/O edge of :mod:`assay.prepare`: it indexes the curated outputs (a batch at a time),
checks everything that can be checked before any work (empty documents, the tokenizer file,
budgets that cannot add up, an estimate of the epochs), tokenizes each source once, a batch
at a time, plans and draws the mixture with :mod:`assay.prepare.mixture`, and writes the
shards described in :mod:`assay.prepare.layout`. A run killed part-way is finished by
``--resume`` (or by the same command again) with the same bytes (:mod:`.progress`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.engine.settings import RaySettings
from assay.errors import AssayError
from assay.io.ownership import OwnedFolder, claim_folder
from assay.io.writers import read_json, write_bytes, write_json
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
    heldout_too_small,
    plan_targets,
    repeated_token_value,
)
from assay.prepare.progress import Progress, fingerprint
from assay.prepare.recipe import HeldoutSpec, MixtureSpec, PrepareRecipe
from assay.prepare.sources import (
    Batching,
    Log,
    PrepareError,
    SourceDocs,
    load_sources,
    seed_of,
    split_heldout,
    training_samples,
)
from assay.prepare.tokenizer import (
    EncodeJob,
    Encoder,
    encode_job,
    encoder_from_json,
    load_encoder,
    train_encoder,
)
from assay.prepare.writing import (
    EncodeBatch,
    Split,
    Tokenized,
    encode_here,
    heldout_order,
    phase_order,
    tokenize_sources,
    write_split,
)
from assay.versions import dependency_versions

FORMAT_VERSION = 1
CHECK_BYTES = 1 << 18  # text on which tiktoken's ids are checked against tokenizers'
VERSIONS = ("tokenizers", "tiktoken")  # besides assay.versions.TRACKED


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


def prepare(recipe: PrepareRecipe, *, force: bool = False, overwrite: bool = False, resume: bool = False,
            dry_run: bool = False, log: Log | None = None, ray: RaySettings | None = None) -> PrepareResult:
    """Run a prepare recipe: check, tokenize, plan and draw the mixture, write the shards.

    Everything that can be refused without tokenizing is refused first (the output folder,
    the tokenizer file, empty or missing documents, budgets that cannot add up, an estimate
    of the epochs); the exact epochs are checked after tokenizing, before any shard is
    written. ``force`` allows sources beyond their ``max_epochs``; ``dry_run`` stops after
    planning, writes nothing and returns the manifest it would write. The output must be new,
    empty or a prepare output (:mod:`assay.io.ownership`), never one of the sources, and is
    locked while this runs; ``overwrite`` replaces the shards of an earlier prepare there.
    A prepare that stopped part-way (killed, interrupted) is finished by running it again
    (``resume`` requires that there is one): what it finished is kept, the rest is written,
    and the shards are the bytes an uninterrupted run writes. With ``ray``, the sources are
    tokenized by Ray tasks on that cluster (the draw stays here); the shards are the same bytes.
    """
    say: Log = log or (lambda _msg: None)
    if resume and (overwrite or dry_run):
        raise PrepareError(f"--resume and --{'overwrite' if overwrite else 'dry-run'} contradict each other")
    out = Path(recipe.output)
    sources = [s.path for s in recipe.resolved_mixture().sources.values()]
    sources += [recipe.tokenizer.path] if recipe.tokenizer.path else []
    with claim_folder(str(out), "prepare", inputs=sources) as owned:
        fresh = False  # this run starts the output's prepare: a refusal removes what it wrote
        try:
            earlier = None if dry_run else _earlier_prepare(out, owned, overwrite=overwrite, resume=resume)
            fresh = not dry_run and earlier is None
            result = _prepare(recipe, out, force=force, say=say, ray=ray, earlier=earlier, dry_run=dry_run)
        except BaseException as exc:
            if fresh and isinstance(exc, AssayError):
                owned.clear([layout.WORK, layout.PROGRESS])
            owned.discard()  # removes the folder if this run made it and it holds nothing else
            raise
        if dry_run:
            owned.discard()
        else:
            owned.clear([layout.WORK, layout.PROGRESS])
        return result


@dataclass
class Earlier:
    """An earlier prepare in the output: its fingerprint, and whether it finished."""

    fingerprint: str | None
    finished: bool


def _earlier_prepare(out: Path, owned: OwnedFolder, *, overwrite: bool, resume: bool) -> Earlier | None:
    """Clear the output (``overwrite``) or find the earlier prepare this run finishes; refuse
    what cannot go on (shards of a finished run, leftovers nothing can resume)."""
    present = [name for name in layout.NAMES if (out / name).exists()]
    if overwrite:
        owned.clear(present)
        present = []
    progress = read_json(str(out / layout.PROGRESS / "fingerprint.json"))
    if isinstance(progress, dict):
        owned.remove_partial(layout.NAMES)  # temporary files of the run that stopped
        return Earlier(progress.get("fingerprint"), finished=False)
    if (out / layout.MANIFEST).exists():
        if not resume:
            raise PrepareError(f"{out} already holds shards of an earlier prepare; use --overwrite to "
                               "replace them")
        manifest = read_json(str(out / layout.MANIFEST))
        return Earlier(manifest.get("fingerprint") if isinstance(manifest, dict) else None, finished=True)
    if present:
        raise PrepareError(f"{out} holds files of an earlier prepare that cannot be resumed (no "
                           f"{layout.PROGRESS}/fingerprint.json); use --overwrite to replace them")
    if resume:
        raise PrepareError(f"nothing to resume: {out} holds no earlier prepare")
    return None


def _prepare(recipe: PrepareRecipe, out: Path, *, force: bool, say: Log, ray: RaySettings | None,
             earlier: Earlier | None, dry_run: bool) -> PrepareResult:
    """The work of :func:`prepare`, going on from ``earlier`` when there is one."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    mixture = recipe.resolved_mixture()
    _check_structure(mixture)
    phases = _phases(mixture)
    tok = recipe.tokenizer
    encoder = load_encoder(tok.path, eos=tok.eos, engine=tok.engine) if tok.path else None
    batching = Batching(recipe.batch_rows, max(int(recipe.batch_mb * 1e6), 1))
    sources, warnings = load_sources(mixture, batching, skip_empty=recipe.skip_empty, log=say)
    versions = dependency_versions(extra=VERSIONS)
    reports = Progress(None if dry_run else out / layout.PROGRESS)
    mark = None
    if not dry_run:
        files = list({f.url: f for s in sources for f in s.index.files}.values())
        mark = fingerprint(recipe, files, tok.path, versions)
        if earlier is not None:
            if earlier.fingerprint != mark:
                raise PrepareError(f"{out} holds a prepare of a different recipe, input or versions; use "
                                   "--overwrite to replace it, or choose another output")
            if earlier.finished:
                say("the prepare in this output has finished: nothing to resume")
                manifest = read_json(str(out / layout.MANIFEST))
                assert isinstance(manifest, dict)
                return PrepareResult(out, manifest, list(manifest.get("warnings", [])))
        write_json(str(out / layout.PROGRESS / "fingerprint.json"), {"fingerprint": mark})
    sources, held = split_heldout(sources, recipe.heldout, recipe.seed, say)
    if recipe.heldout.fraction > 0 and len(held) < len(sources):
        warnings.append("held-out split: no document of "
                        + ", ".join(s.name for s in sources if s.name not in {h.name for h in held})
                        + " (a source needs at least two documents)")
    timings["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    needs_check = encoder is None or encoder.engine == "tiktoken" or not force
    budgets = [CHECK_BYTES, *([tok.train.max_mb * 1e6] if encoder is None and tok.train else [])]
    samples = training_samples(sources, budgets, recipe.seed) if needs_check else [[]]
    sample = samples[0]
    if encoder is None:
        assert tok.train is not None
        encoder = _trained_encoder(recipe, samples[1], out / layout.PROGRESS / layout.TOKENIZER,
                                   reuse=earlier is not None, keep=not dry_run, say=say)
        if encoder.vocab_size < tok.train.vocab_size:
            warnings.append(f"the text has too few pairs for {tok.train.vocab_size:,} ids: the tokenizer "
                            f"has {encoder.vocab_size:,}")
    timings["train_tokenizer"] = time.perf_counter() - clock
    fallback = encoder.check_engine(sample)
    if fallback:
        warnings.append(fallback)
    _estimate_epochs(mixture, sources, encoder, sample, force)

    clock = time.perf_counter()
    with _encoding(ray, sources, batching) as encode:
        work = None if dry_run else out / layout.WORK
        tokenized, held_tokenized = tokenize_sources(sources, held, encoder, work, reports, say, encode)
    timings["tokenize"] = time.perf_counter() - clock
    first_doc, lengths = tokenized.first, tokenized.lengths
    unique = {s.name: int(lengths[first_doc[i]: first_doc[i + 1]].sum()) for i, s in enumerate(sources)}
    shares = _shares(mixture, unique)
    targets = plan_targets(_total(mixture, shares), shares, phases)
    plans = [SourcePlan(s.name, unique[s.name], float(targets[:, i].sum()),
                        mixture.sources[s.name].max_epochs or mixture.max_epochs)
             for i, s in enumerate(sources)]
    warnings += check_repetition(plans, force=force)
    if held:
        held_lengths = held_tokenized.lengths
        warnings += heldout_too_small(int(held_lengths.size), int(held_lengths.sum()),
                                      {s.name: s.n_documents for s in held})
    for w in warnings:
        say(f"warning: {w}")

    clock = time.perf_counter()
    draws = [draw_documents(lengths[first_doc[i]: first_doc[i + 1]], targets[:, i],
                            seed_of(recipe.seed, s.name), mixture.tolerance) for i, s in enumerate(sources)]
    orders = [phase_order(recipe.seed, p, draws, first_doc) for p in range(len(phases))]
    manifest = _manifest(recipe, mixture, encoder, sources, unique, targets, draws, plans, warnings,
                         first_doc, lengths, versions)
    if held:
        manifest["heldout"] = _heldout_manifest(recipe.heldout, held, held_tokenized)
    if dry_run:
        return PrepareResult(out, manifest, warnings)
    manifest["fingerprint"] = mark
    for p, phase in enumerate(phases):
        info = manifest["phases"][p]
        write_split(out, Split(p, phase.name, orders[p], sources, tokenized), encoder, recipe, info, reports)
        say(f"phase {phase.name}: {info['tokens']:,} tokens, {info['documents']:,} documents")
    if held:
        info = manifest["heldout"]
        split = Split(None, layout.HELDOUT, heldout_order(held_tokenized.first), held, held_tokenized)
        write_split(out, split, encoder, recipe, info, reports)
        say(f"held-out: {info['tokens']:,} tokens, {info['documents']:,} documents")
    write_bytes(str(out / layout.TOKENIZER), encoder.spec_bytes)
    timings["write"] = time.perf_counter() - clock
    manifest["timings"] = timings
    manifest["resumed_pieces"] = reports.skipped
    write_json(str(out / layout.MANIFEST), manifest)
    return PrepareResult(out, manifest, warnings)


def _trained_encoder(recipe: PrepareRecipe, sample: list[str], saved: Path, *, reuse: bool, keep: bool,
                     say: Log) -> Encoder:
    """The tokenizer trained on ``sample``; a resumed run loads the one its first run saved."""
    tok = recipe.tokenizer
    assert tok.train is not None
    if reuse and saved.is_file():
        return encoder_from_json(saved.read_bytes(), eos=tok.eos, engine=tok.engine, origin=str(saved))
    say(f"training a byte-level BPE, vocabulary {tok.train.vocab_size:,} ...")
    encoder = train_encoder(sample, tok.train.vocab_size, eos=tok.eos, min_frequency=tok.train.min_frequency,
                            engine=tok.engine)
    if keep:
        write_bytes(str(saved), encoder.spec_bytes)
    return encoder


@contextmanager
def _encoding(ray: RaySettings | None, sources: Sequence[SourceDocs],
              batching: Batching) -> Iterator[EncodeBatch]:
    """How to encode a batch of texts: in this process, or cut into parts that Ray tasks
    encode (small enough that every CPU of the cluster gets several)."""
    if ray is None:
        yield encode_here
        return
    from assay.engine.ray import RayExecutor

    executor = RayExecutor(None, ray)
    try:
        total = sum(int(s.n_bytes.sum()) for s in sources)
        part_bytes = int(min(batching.text_bytes, max(1 << 20, total // (4 * executor.workers))))

        def encode(encoder: Encoder, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
            sizes = np.cumsum(pc.binary_length(texts).to_numpy(zero_copy_only=False))
            steps = np.arange(part_bytes, int(sizes[-1]) + 1, part_bytes)
            cuts = np.searchsorted(sizes, steps, side="left") + 1
            bounds = sorted({0, *[int(c) for c in cuts if c < len(texts)], len(texts)})
            jobs = [EncodeJob(encoder.spec_bytes, encoder.eos, encoder.engine, texts.slice(a, b - a))
                    for a, b in itertools.pairwise(bounds)]
            done = executor.map(encode_job, jobs)
            return np.concatenate([f for f, _ in done]), np.concatenate([n for _, n in done])

        yield encode
    finally:
        executor.close()


def _estimate_epochs(mixture: MixtureSpec, sources: Sequence[SourceDocs], encoder: Encoder,
                     sample: Sequence[str], force: bool) -> None:
    """Refuse, before tokenizing everything, a mixture whose epochs are far above a cap by an
    estimate of tokens per byte from ``sample`` (the exact check follows tokenization)."""
    if force or not sample:
        return
    per_byte = sum(a.size for a in encoder.encode(sample)) / max(sum(len(t.encode()) for t in sample), 1)
    unique = {s.name: int(s.n_bytes.sum() * per_byte) + s.n_documents for s in sources}
    shares = _shares(mixture, unique)
    targets = plan_targets(_total(mixture, shares), shares, _phases(mixture))
    for i, s in enumerate(sources):
        cap = mixture.sources[s.name].max_epochs or mixture.max_epochs
        epochs = targets[:, i].sum() / max(unique[s.name], 1)
        if epochs > 1.25 * cap:
            raise BudgetError(f"source {s.name!r}: the mixture would take about {epochs:.1f} epochs of it "
                              f"(estimated {unique[s.name]:,} unique tokens), above its cap of {cap:g}; "
                              "lower its share, raise max_epochs or use --force")


def _heldout_manifest(spec: HeldoutSpec, held: Sequence[SourceDocs], tokenized: Tokenized) -> dict[str, Any]:
    """The held-out split's entry of the manifest (files are added when written)."""
    first, lengths = tokenized.first, tokenized.lengths
    per_source = {s.name: {"documents": s.n_documents, "bytes": int(s.n_bytes.sum()),
                           "tokens": int(lengths[first[i]: first[i + 1]].sum())} for i, s in enumerate(held)}
    return {"name": layout.HELDOUT, "fraction": spec.fraction, "max_documents": spec.max_documents,
            "tokens": int(lengths.sum()), "documents": int(lengths.size),
            "bytes": sum(v["bytes"] for v in per_source.values()),
            "documents_file": str(layout.documents(None, layout.HELDOUT)), "sources": per_source}


def _manifest(recipe: PrepareRecipe, mixture: MixtureSpec, encoder: Encoder, sources: Sequence[SourceDocs],
              unique: dict[str, int], targets: np.ndarray, draws: Sequence[Sequence[Draw]],
              plans: Sequence[SourcePlan], warnings: list[str], first_doc: np.ndarray,
              lengths: np.ndarray, versions: dict[str, str]) -> dict[str, Any]:
    source_info = {}
    for i, s in enumerate(sources):
        realised = sum(d.tokens for d in draws[i])
        plan = plans[i]
        src_lengths = lengths[first_doc[i]: first_doc[i + 1]]
        curated = s.curated
        by_curated: dict[str, dict[str, int]] = {}
        drawn_docs = np.concatenate([d.docs for d in draws[i]])
        drawn_curated = curated[drawn_docs]
        for code in sorted(np.unique(curated).tolist(), key=lambda c: s.index.names[c]):
            mine = curated == code
            by_curated[s.index.names[code]] = {
                "documents": int(mine.sum()), "unique_tokens": int(src_lengths[mine].sum()),
                "tokens": int(src_lengths[drawn_docs[drawn_curated == code]].sum())}
        spec = mixture.sources[s.name]
        effective = float(effective_data(unique[s.name], realised))
        source_info[s.name] = {
            "path": spec.path, "select": spec.select, "files": s.files,
            "documents": s.n_documents, "bytes": int(s.n_bytes.sum()),
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
