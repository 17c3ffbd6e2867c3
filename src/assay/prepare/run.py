"""``assay prepare``: curated documents -> tokenizer -> mixture -> training shards.

The I/O edge of :mod:`assay.prepare`: it reads curated outputs, checks everything that can
be checked before any work (empty documents, the tokenizer file, budgets that cannot add
up, an estimate of the epochs), tokenizes each source once, plans and draws the mixture
with :mod:`assay.prepare.mixture`, and writes the shards described in
:mod:`assay.prepare.layout`.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from assay.documents import ID, SOURCE, TEXT
from assay.engine.manifest import dependency_versions
from assay.errors import AssayError
from assay.io.ownership import claim_folder
from assay.io.readers import FieldMap, InputError, decode_chunk, plan_chunks, resolve_inputs
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
    heldout_documents,
    plan_targets,
    repeated_token_value,
)
from assay.prepare.packing import REST, Pieces, decompose, gather, windows
from assay.prepare.recipe import HeldoutSpec, MixtureSpec, PrepareRecipe
from assay.prepare.shards import TokenFile, TokenWriter
from assay.prepare.tokenizer import Encoder, load_encoder, train_encoder

FORMAT_VERSION = 1
CHECK_BYTES = 1 << 18  # text on which tiktoken's ids are checked against tokenizers'
BATCH_BYTES = 64 << 20  # text tokenized per batch
GATHER_TOKENS = 1 << 24  # tokens gathered per block when writing shards
Log = Callable[[str], None]


class PrepareError(AssayError, ValueError):
    """A problem with the inputs or the output of ``assay prepare``, found before the work."""


@dataclass
class SourceDocs:
    """The documents of one mixture source, in the order of its curated output."""

    name: str
    spec_path: str
    files: list[str]
    table: pa.Table  # id, text, source

    @cached_property
    def n_bytes(self) -> np.ndarray:
        return pc.binary_length(self.table.column(TEXT)).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass
class PrepareResult:
    """What ``prepare`` wrote: the output folder, its manifest and the warnings."""

    output: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def read_curated(path: str) -> tuple[list[str], pa.Table]:
    """The kept documents (id, text, source) of a curated output folder, or of data files."""
    root = Path(path)
    if root.is_dir():
        data = root / "data" if (root / "data").is_dir() else root
        patterns = [str(data / "*.parquet"), str(data / "*.jsonl*")]
        found = [p for p in patterns if list(Path(data).glob(Path(p).name))]
        if not found:
            raise PrepareError(f"{path}: no *.parquet or *.jsonl* files in {data}; is it an assay output?")
        files = resolve_inputs(found)
    else:
        try:
            files = resolve_inputs(path)
        except InputError as exc:
            raise PrepareError(str(exc)) from None
    tables = []
    for f in files:
        if f.format == "parquet" and f.compression is None:
            t = pq.read_table(f.url, columns=[ID, TEXT, SOURCE])
        else:
            parts = []
            for chunk in plan_chunks([f], 64 << 20):
                table, bad = decode_chunk(chunk, FieldMap())
                if bad:
                    raise PrepareError(f"{bad[0].file}:{bad[0].line}: {bad[0].error}")
                parts.append(table.select([ID, TEXT, SOURCE]))
            t = pa.concat_tables(parts) if parts else None
        if t is not None:
            tables.append(t.cast(pa.schema([(ID, pa.string()), (TEXT, pa.string()), (SOURCE, pa.string())])))
    table = pa.concat_tables(tables).combine_chunks() if tables else None
    if table is None or table.num_rows == 0:
        raise PrepareError(f"{path}: no documents")
    return [f.url for f in files], table


def _seed(*parts: int | str) -> list[int]:
    return [p if isinstance(p, int) else xxhash.xxh32_intdigest(p.encode()) for p in parts]


def _rng(*parts: int | str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(_seed(*parts))))


def load_sources(mixture: MixtureSpec, *, skip_empty: bool, log: Log) -> tuple[list[SourceDocs], list[str]]:
    """Read every source and check it: selected documents exist, none is empty (unless
    skipped), and no document belongs to two sources."""
    cache: dict[str, tuple[list[str], pa.Table]] = {}
    sources, warnings = [], []
    seen: dict[tuple[str, str], str] = {}

    def path_key(path: str) -> str:
        return str(Path(path).resolve()) if Path(path).exists() else path

    # Only sources that read the same curated output can share a document.
    readers = Counter(path_key(spec.path) for spec in mixture.sources.values())
    for name, spec in mixture.sources.items():
        key = path_key(spec.path)
        if key not in cache:
            cache[key] = read_curated(spec.path)
        files, table = cache[key]
        if spec.select is not None:
            present = set(pc.unique(table.column(SOURCE)).to_pylist())
            unknown = [s for s in spec.select if s not in present]
            if unknown:
                raise PrepareError(f"source {name!r}: select names {', '.join(map(repr, unknown))}, not in "
                                   f"{spec.path}; its sources: {', '.join(sorted(present))}")
            table = table.filter(pc.is_in(table.column(SOURCE), pa.array(spec.select)))
        empty = pc.equal(pc.binary_length(table.column(TEXT)), 0)
        n_empty = int(pc.sum(empty).as_py() or 0)
        if n_empty:
            ids = table.filter(empty).column(ID).to_pylist()[:5]
            if not skip_empty:
                raise PrepareError(f"source {name!r}: {n_empty} empty document(s) in {spec.path} (ids "
                                   f"{', '.join(ids)}{', ...' if n_empty > 5 else ''}); remove them in "
                                   "curation or set skip_empty: true")
            warnings.append(f"source {name!r}: skipped {n_empty} empty document(s)")
            table = table.filter(pc.invert(empty))
        if table.num_rows == 0:
            raise PrepareError(f"source {name!r}: no documents in {spec.path}")
        for doc_id in table.column(ID).to_pylist() if readers[key] > 1 else ():
            other = seen.setdefault((key, doc_id), name)
            if other != name:
                raise PrepareError(f"document {doc_id!r} of {spec.path} is in sources {other!r} and "
                                   f"{name!r}; make their select lists disjoint")
        sources.append(SourceDocs(name, spec.path, files, table))
        log(f"source {name}: {table.num_rows:,} documents, {int(sources[-1].n_bytes.sum()):,} bytes")
    return sources, warnings


def split_heldout(sources: Sequence[SourceDocs], spec: HeldoutSpec, seed: int,
                  log: Log) -> tuple[list[SourceDocs], list[SourceDocs]]:
    """Take each source's held-out documents out (a seeded draw per source); return the
    training sources and the held-out parts (one per source that gives any, same name)."""
    train, held = [], []
    for s in sources:
        pick = heldout_documents(s.table.num_rows, spec.fraction, _rng(seed, "heldout", s.name),
                                 spec.max_documents)
        if pick.size == 0:
            train.append(s)
            continue
        mask = np.zeros(s.table.num_rows, dtype=bool)
        mask[pick] = True
        held.append(SourceDocs(s.name, s.spec_path, s.files, s.table.filter(pa.array(mask))))
        train.append(SourceDocs(s.name, s.spec_path, s.files, s.table.filter(pa.array(~mask))))
        log(f"source {s.name}: {pick.size:,} document(s) held out")
    return train, held


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


def _training_sample(sources: Sequence[SourceDocs], max_bytes: float, seed: int) -> list[str]:
    """A seeded sample of documents across all sources, at most ``max_bytes`` of text."""
    sizes = np.concatenate([s.n_bytes for s in sources])
    owner = np.concatenate([np.full(s.table.num_rows, i) for i, s in enumerate(sources)])
    row = np.concatenate([np.arange(s.table.num_rows) for s in sources])
    order = _rng(seed, "tokenizer").permutation(sizes.size)
    keep = order[: max(int(np.searchsorted(np.cumsum(sizes[order]), max_bytes, side="right")), 1)]
    texts = []
    for i in sorted(keep, key=lambda k: (owner[k], row[k])):
        texts.append(sources[owner[i]].table.column(TEXT)[int(row[i])].as_py())
    return texts


def prepare(recipe: PrepareRecipe, *, force: bool = False, overwrite: bool = False, dry_run: bool = False,
            log: Log | None = None) -> PrepareResult:
    """Run a prepare recipe: check, tokenize, plan and draw the mixture, write the shards.

    Everything that can be refused without tokenizing is refused first (the output folder,
    the tokenizer file, empty or missing documents, budgets that cannot add up, an estimate
    of the epochs); the exact epochs are checked after tokenizing, before any shard is
    written. ``force`` allows sources beyond their ``max_epochs``; ``dry_run`` stops after
    planning and returns the manifest it would write. The output must be new, empty or a
    prepare output (:mod:`assay.io.ownership`), never one of the sources, and is locked
    while this runs; ``overwrite`` replaces the shards of an earlier prepare there.
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
            result = _prepare(recipe, out, force=force, dry_run=dry_run, say=say)
        except BaseException:
            owned.clear([layout.WORK])
            owned.discard()
            raise
        if dry_run:
            owned.discard()
        return result


def _prepare(recipe: PrepareRecipe, out: Path, *, force: bool, dry_run: bool, say: Log) -> PrepareResult:
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
    sample = _training_sample(sources, CHECK_BYTES, recipe.seed)
    if encoder is None:
        assert tok.train is not None
        say(f"training a byte-level BPE, vocabulary {tok.train.vocab_size:,} ...")
        encoder = train_encoder(_training_sample(sources, tok.train.max_mb * 1e6, recipe.seed),
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
    first_doc, lengths = tokenize_sources(sources, encoder, work / "tokens", say)
    if held:
        held_first, held_lengths = tokenize_sources(held, encoder, work / layout.HELDOUT,
                                                    lambda msg: say(f"held-out {msg}"))
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
                            _seed(recipe.seed, s.name), mixture.tolerance) for i, s in enumerate(sources)]
    orders = [_phase_order(recipe.seed, p, draws, first_doc) for p in range(len(phases))]
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
        _write_split(out, p, phase.name, order, sources, lengths, tokens_file, encoder, recipe, info)
        say(f"phase {phase.name}: {info['tokens']:,} tokens, {info['documents']:,} documents")
    del tokens_file
    if held:
        _write_heldout(out, manifest["heldout"], held, held_first, held_lengths, work / layout.HELDOUT,
                       encoder, recipe)
        say(f"held-out: {manifest['heldout']['tokens']:,} tokens, {manifest['heldout']['documents']:,} "
            "documents")
    (out / layout.TOKENIZER).write_bytes(encoder.spec_bytes)
    shutil.rmtree(work)
    timings["write"] = time.perf_counter() - clock
    manifest["timings"] = timings
    tmp = out / f".{layout.MANIFEST}.tmp"
    tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(out / layout.MANIFEST)
    return PrepareResult(out, manifest, warnings)


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


def tokenize_sources(sources: Sequence[SourceDocs], encoder: Encoder, prefix: Path,
                     log: Log) -> tuple[np.ndarray, np.ndarray]:
    """Tokenize every source into one work file (sources back to back, each document followed
    by EOS); return each source's first document number (and the total) and every length."""
    writer = TokenWriter(prefix, encoder.dtype)
    all_lengths = []
    first = [0]
    for s in sources:
        sizes = s.n_bytes
        bounds = _batches(sizes, BATCH_BYTES)
        texts = s.table.column(TEXT)
        n_tokens = 0
        for a, b in itertools.pairwise(bounds):
            flat, lengths = encoder.encode_documents(texts.slice(a, b - a).to_pylist())
            writer.write(flat, lengths)
            all_lengths.append(lengths)
            n_tokens += flat.size
        first.append(first[-1] + s.table.num_rows)
        log(f"source {s.name}: {n_tokens:,} tokens ({encoder.engine})")
    writer.close()
    return np.array(first, dtype=np.int64), np.concatenate(all_lengths)


def _batches(sizes: np.ndarray, batch_bytes: int) -> list[int]:
    """Document boundaries of batches of about ``batch_bytes`` of text."""
    cum = np.cumsum(sizes)
    cuts = np.searchsorted(cum, np.arange(batch_bytes, int(cum[-1]) + 1, batch_bytes), side="left") + 1
    return sorted({0, *[int(c) for c in cuts if c < sizes.size], int(sizes.size)})


@dataclass
class PhaseOrder:
    """The documents of one phase in training order."""

    source: np.ndarray  # int32 mixture source number
    doc: np.ndarray  # int64 document number within the source
    epoch: np.ndarray  # int32 pass over the source
    global_doc: np.ndarray  # int64 document number in the work file


def _phase_order(seed: int, p: int, draws: Sequence[Sequence[Draw]], first_doc: np.ndarray) -> PhaseOrder:
    """The drawn documents of all sources in phase ``p``, shuffled together (seeded)."""
    source = np.concatenate([np.full(d[p].docs.size, i, dtype=np.int32) for i, d in enumerate(draws)])
    doc = np.concatenate([d[p].docs for d in draws])
    epoch = np.concatenate([d[p].epochs for d in draws])
    perm = _rng(seed, "phase", p).permutation(doc.size)
    source, doc, epoch = source[perm], doc[perm], epoch[perm]
    return PhaseOrder(source, doc, epoch, first_doc[source] + doc)


def _heldout_manifest(spec: HeldoutSpec, held: Sequence[SourceDocs], first: np.ndarray,
                      lengths: np.ndarray) -> dict[str, Any]:
    """The held-out split's entry of the manifest (files are added when written)."""
    per_source = {s.name: {"documents": s.table.num_rows, "bytes": int(s.n_bytes.sum()),
                           "tokens": int(lengths[first[i]: first[i + 1]].sum())} for i, s in enumerate(held)}
    return {"name": layout.HELDOUT, "fraction": spec.fraction, "max_documents": spec.max_documents,
            "tokens": int(lengths.sum()), "documents": int(lengths.size),
            "bytes": sum(v["bytes"] for v in per_source.values()),
            "documents_file": str(layout.documents(None, layout.HELDOUT)), "sources": per_source}


def _write_heldout(out: Path, info: dict[str, Any], held: Sequence[SourceDocs], first: np.ndarray,
                   lengths: np.ndarray, work_file: Path, encoder: Encoder, recipe: PrepareRecipe) -> None:
    """Write the held-out documents (by source, in curated order) in the packings of the phases."""
    counts = np.diff(first)
    order = PhaseOrder(np.repeat(np.arange(len(held), dtype=np.int32), counts),
                       np.concatenate([np.arange(c, dtype=np.int64) for c in counts]),
                       np.zeros(int(first[-1]), dtype=np.int32), np.arange(int(first[-1]), dtype=np.int64))
    _write_split(out, None, layout.HELDOUT, order, held, lengths, TokenFile(work_file), encoder, recipe, info)


def _write_split(out: Path, p: int | None, name: str, order: PhaseOrder, sources: Sequence[SourceDocs],
                 lengths: np.ndarray, tokens_file: TokenFile, encoder: Encoder, recipe: PrepareRecipe,
                 info: dict[str, Any]) -> None:
    """Write one phase (or the held-out split, ``p`` None): its documents table and its
    packings, recorded in ``info``."""
    _write_documents(out, p, name, order, sources, lengths)
    tokens, starts = tokens_file.tokens, tokens_file.starts
    if recipe.packing.method in ("concat", "both"):
        info["concat"] = _write_concat(out, p, name, order, tokens, starts, lengths, encoder, recipe)
    if recipe.packing.method in ("decompose", "both"):
        info["decompose"] = _write_decomposed(out, p, name, order, tokens, starts, lengths, encoder, recipe)


def _write_documents(out: Path, p: int | None, name: str, order: PhaseOrder, sources: Sequence[SourceDocs],
                     lengths: np.ndarray) -> None:
    ids = np.empty(order.doc.size, dtype=object)
    curated = np.empty(order.doc.size, dtype=object)
    for i, s in enumerate(sources):
        mask = order.source == i
        ids[mask] = _objects(s.table.column(ID))[order.doc[mask]]
        curated[mask] = _objects(s.table.column(SOURCE))[order.doc[mask]]
    table = pa.table({
        "position": pa.array(np.arange(order.doc.size, dtype=np.int64)),
        "source": pa.array([sources[i].name for i in order.source.tolist()], pa.string()),
        "id": pa.array(ids.tolist(), pa.string()),
        "curated_source": pa.array(curated.tolist(), pa.string()),
        "epoch": pa.array(order.epoch),
        "tokens": pa.array(lengths[order.global_doc]),
    })
    path = out / layout.documents(p, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def _objects(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _write_pieces(writer: TokenWriter, tokens: np.ndarray, starts: np.ndarray, pieces: Pieces) -> None:
    """Gather ``pieces`` (document numbers in the work file) in blocks and append them."""
    cum = np.cumsum(pieces.length)
    a = 0
    while a < pieces.doc.size:
        base = int(cum[a - 1]) if a else 0
        b = max(int(np.searchsorted(cum, base + GATHER_TOKENS, side="right")), a + 1)
        block = Pieces(pieces.doc[a:b], pieces.offset[a:b], pieces.length[a:b])
        writer.write(gather(tokens, starts, block), block.length)
        a = b


def _write_concat(out: Path, p: int | None, name: str, order: PhaseOrder, tokens: np.ndarray,
                  starts: np.ndarray, lengths: np.ndarray, encoder: Encoder,
                  recipe: PrepareRecipe) -> dict[str, Any]:
    doc_lengths = lengths[order.global_doc]
    cum = np.cumsum(doc_lengths)
    files, part, a = [], 0, 0
    limit = recipe.packing.shard_tokens
    while a < doc_lengths.size or part == 0:
        base = int(cum[a - 1]) if a else 0
        b = max(int(np.searchsorted(cum, base + limit, side="right")), min(a + 1, doc_lengths.size))
        prefix = out / layout.concat(p, name, part)
        writer = TokenWriter(prefix, encoder.dtype)
        sel = order.global_doc[a:b]
        _write_pieces(writer, tokens, starts, Pieces(sel, np.zeros(sel.size, np.int64), lengths[sel]))
        writer.close()
        files.append({"file": str(prefix.relative_to(out)), "documents": int(b - a),
                      "tokens": writer.n_tokens, "first_document": int(a),
                      "windows": windows(writer.n_tokens, recipe.packing.context)})
        part += 1
        a = b
        if a >= doc_lengths.size:
            break
    return {"context": recipe.packing.context, "files": files,
            "windows": sum(f["windows"] for f in files)}


def _write_decomposed(out: Path, p: int | None, name: str, order: PhaseOrder, tokens: np.ndarray,
                      starts: np.ndarray, lengths: np.ndarray, encoder: Encoder,
                      recipe: PrepareRecipe) -> dict[str, Any]:
    pk = recipe.packing
    buckets = decompose(lengths[order.global_doc], pk.min_log2, pk.max_log2)
    info: dict[str, Any] = {"min_log2": pk.min_log2, "max_log2": pk.max_log2, "buckets": {}}
    for k, pieces in sorted(buckets.items(), key=lambda kv: -kv[0] if kv[0] != REST else 99):
        prefix = out / layout.bucket(p, name, k)
        writer = TokenWriter(prefix, encoder.dtype)
        in_work = Pieces(order.global_doc[pieces.doc], pieces.offset, pieces.length)
        _write_pieces(writer, tokens, starts, in_work)
        writer.close()
        np.save(out / layout.pieces(p, name, k), np.stack([pieces.doc, pieces.offset], axis=1))
        entry = {"file": str(prefix.relative_to(out)), "pieces": int(pieces.doc.size),
                 "tokens": pieces.n_tokens}
        info["buckets"]["rest" if k == REST else str(k)] = entry
    return info


def _manifest(recipe: PrepareRecipe, mixture: MixtureSpec, encoder: Encoder, sources: Sequence[SourceDocs],
              unique: dict[str, int], targets: np.ndarray, draws: Sequence[Sequence[Draw]],
              plans: Sequence[SourcePlan], warnings: list[str], first_doc: np.ndarray,
              lengths: np.ndarray) -> dict[str, Any]:
    versions = dependency_versions()
    for dist in ("tokenizers", "tiktoken"):
        try:
            from importlib import metadata

            versions[dist] = metadata.version(dist)
        except Exception:  # not installed: nothing to record
            continue
    source_info = {}
    for i, s in enumerate(sources):
        realised = sum(d.tokens for d in draws[i])
        plan = plans[i]
        src_lengths = lengths[first_doc[i]: first_doc[i + 1]]
        curated = _objects(s.table.column(SOURCE))
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
