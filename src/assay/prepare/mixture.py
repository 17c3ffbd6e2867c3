"""Mixture arithmetic: token budgets per phase and source, epochs, effective data, and the
seeded draw of documents that realises the budgets.

Everything here is a pure function of numbers and arrays; reading documents and writing
shards live in :mod:`assay.prepare.run`.

- **Repetition** (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models"):
  repeating a source for up to ~4 epochs is about as good as fresh data; the value of a
  repeated token then decays as ``exp(-R_D / R_D*)`` with ``R_D* = 15.39``, so beyond ~40
  epochs more repetition is worth almost nothing. :func:`effective_data` is their D'.
- **Phases** (Blakeney et al. 2024, "Does your data spark joy? Performance gains from domain
  upsampling at the end of training"): a mixture may change over training, e.g. the last
  10-20% of tokens upsample high-value domains. :func:`plan_targets` turns per-phase
  weights into token targets that still respect each source's total budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assay.errors import AssayError
from assay.scaling.published import MUENNIGHOFF_R_D

# Muennighoff et al. 2023, fitted R_D* (the datablations README), shared with assay.scaling.
REPETITION_DECAY = MUENNIGHOFF_R_D
# Up to ~4 epochs, repeated tokens are about as valuable as unique ones (Muennighoff et al. 2023).
WARN_EPOCHS = 4.0
# A held-out loss is a mean over documents whose losses differ by far more than the recipes
# being compared: with fewer documents (or tokens) than these, which documents the seed drew
# moves the score more than the data does. Per source, fewer than MIN_SOURCE_DOCUMENTS makes a
# per-source loss (a mixture search's target) a reading of a handful of texts.
MIN_HELDOUT_DOCUMENTS = 20
MIN_HELDOUT_TOKENS = 10_000
MIN_SOURCE_DOCUMENTS = 5
# Default cap: ~1 + R_D*, where an extra repeated token is worth e^-1 of a fresh one.
DEFAULT_MAX_EPOCHS = 16.0


class BudgetError(AssayError, ValueError):
    """A mixture whose budgets cannot be met (or would repeat a source beyond its cap)."""


def effective_data(unique: float | np.ndarray, tokens: float | np.ndarray,
                   r_star: float = REPETITION_DECAY) -> float | np.ndarray:
    """Effective data D' of ``tokens`` drawn from ``unique`` unique tokens.

    Muennighoff et al. 2023, eq. 5: with U_D = min(U, D) and R_D = D / U_D - 1 repetitions,
    ``D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*))``. D' = D without repetition; D'/U is
    1.9682, 3.7257 and 15.2442 for R_D = 1, 3 and 40 (two, four and 41 epochs).
    """
    u = np.asarray(unique, dtype=np.float64)
    d = np.asarray(tokens, dtype=np.float64)
    u_d = np.minimum(u, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_d = np.where(u_d > 0, d / np.where(u_d > 0, u_d, 1.0) - 1.0, 0.0)
    out = u_d + u_d * r_star * -np.expm1(-r_d / r_star)
    return float(out) if np.ndim(out) == 0 else out


def repeated_token_value(epochs: float, r_star: float = REPETITION_DECAY) -> float:
    """Worth of one more token, relative to a fresh one, after ``epochs`` passes over a source:
    dD'/dD = exp(-R_D / R_D*) with R_D = epochs - 1 (Muennighoff et al. 2023)."""
    return float(np.exp(-max(epochs - 1.0, 0.0) / r_star))


@dataclass(frozen=True)
class SourceShare:
    """How much of the run one source gets: a ``weight`` (a share of what fixed budgets leave
    of the total) or a fixed number of ``tokens`` over the whole run; both None when every
    phase sets its own weights."""

    name: str
    weight: float | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class PhaseShare:
    """A stretch of training: its ``fraction`` of all tokens and, optionally, its own
    source weights (unnamed sources get nothing in that phase)."""

    name: str
    fraction: float
    weights: dict[str, float] | None = None


def plan_targets(total_tokens: int | None, sources: Sequence[SourceShare],
                 phases: Sequence[PhaseShare], uncounted: Sequence[str] = ()) -> np.ndarray:
    """Token targets, an array (phases, sources), that realise the mixture.

    Each source's total over the run is its fixed ``tokens``, or its ``weight`` share of what
    the fixed budgets leave of ``total_tokens``. A phase with ``weights`` takes its fraction
    of the total in those proportions; the phases without weights share what remains of each
    source in proportion to their fractions, so a source's total is kept whatever the phases
    do. Raises :class:`BudgetError` for budgets that cannot add up; sources named in
    ``uncounted`` (budgets not known yet, given as 0 tokens) are not checked against phases.
    """
    if not sources:
        raise BudgetError("a mixture needs at least one source")
    if not phases:
        phases = [PhaseShare("main", 1.0)]
    names = [s.name for s in sources]
    fractions = np.array([p.fraction for p in phases], dtype=np.float64)
    if np.any(fractions <= 0) or abs(fractions.sum() - 1.0) > 1e-6:
        raise BudgetError(f"phase fractions must be positive and add up to 1; got "
                          f"{', '.join(f'{p.name}={p.fraction:g}' for p in phases)}")
    for phase in phases:
        for name, w in (phase.weights or {}).items():
            if name not in names:
                raise BudgetError(f"phase {phase.name!r} weights unknown source {name!r}; "
                                  f"sources: {', '.join(names)}")
            if w < 0:
                raise BudgetError(f"phase {phase.name!r}: weight of {name!r} is negative")
        if phase.weights is not None and sum(phase.weights.values()) <= 0:
            raise BudgetError(f"phase {phase.name!r}: weights add up to 0")
    weighted = np.array([p.weights is not None for p in phases])
    shares_given = [s.weight is not None or s.tokens is not None for s in sources]
    if weighted.all():
        if any(shares_given):
            raise BudgetError("every phase sets its own weights, so sources take no weight or "
                              "tokens of their own; remove them from: "
                              + ", ".join(s.name for s, g in zip(sources, shares_given, strict=True) if g))
        if total_tokens is None:
            raise BudgetError("total_tokens is required when every phase sets weights")
        return _phase_weight_rows(total_tokens, names, phases, fractions)
    missing = [s.name for s, g in zip(sources, shares_given, strict=True) if not g]
    if missing:
        raise BudgetError(f"source(s) {', '.join(missing)} need a weight or tokens")
    per_source = _source_totals(total_tokens, sources)
    total = float(per_source.sum())
    targets = np.zeros((len(phases), len(sources)))
    if weighted.any():
        targets[weighted] = _phase_weight_rows(total, names, [p for p in phases if p.weights is not None],
                                               fractions[weighted])
    left = per_source - targets[weighted].sum(axis=0)
    short = [j for j in np.flatnonzero(left < -0.5) if names[j] not in uncounted]
    if short:
        j = int(short[0])
        raise BudgetError(f"source {names[j]!r}: the weighted phases take "
                          f"{per_source[j] - left[j]:,.0f} tokens but its budget over the run is "
                          f"{per_source[j]:,.0f}; raise its weight or lower the phase weights")
    free = ~weighted
    targets[free] = np.outer(fractions[free] / fractions[free].sum(), np.maximum(left, 0.0))
    return targets


def _phase_weight_rows(total: float, names: Sequence[str], phases: Sequence[PhaseShare],
                       fractions: np.ndarray) -> np.ndarray:
    rows = np.zeros((len(phases), len(names)))
    for i, phase in enumerate(phases):
        w = np.array([(phase.weights or {}).get(n, 0.0) for n in names])
        rows[i] = total * fractions[i] * w / w.sum()
    return rows


def _source_totals(total_tokens: int | None, sources: Sequence[SourceShare]) -> np.ndarray:
    fixed = np.array([s.tokens if s.tokens is not None else 0 for s in sources], dtype=np.float64)
    weights = np.array([s.weight if s.weight is not None else 0.0 for s in sources])
    if np.any(fixed < 0) or np.any(weights < 0):
        raise BudgetError("source tokens and weights must not be negative")
    has_weight = np.array([s.weight is not None for s in sources])
    if not has_weight.any():
        if total_tokens is not None and total_tokens != int(fixed.sum()):
            raise BudgetError(f"source token budgets add up to {int(fixed.sum()):,} but total_tokens "
                              f"is {total_tokens:,}")
        return fixed
    if total_tokens is None:
        raise BudgetError("total_tokens is required when a source has a weight")
    left = total_tokens - fixed.sum()
    if left < 0:
        raise BudgetError(f"fixed source budgets ({fixed.sum():,.0f} tokens) exceed total_tokens "
                          f"({total_tokens:,})")
    if weights[has_weight].sum() <= 0:
        raise BudgetError("source weights add up to 0")
    return fixed + left * weights / weights.sum()


@dataclass(frozen=True)
class SourcePlan:
    """What the mixture asks of one source over the run."""

    name: str
    unique_tokens: int
    tokens: float
    max_epochs: float

    @property
    def epochs(self) -> float:
        return self.tokens / self.unique_tokens if self.unique_tokens else float("inf")

    @property
    def effective_tokens(self) -> float:
        return float(effective_data(self.unique_tokens, self.tokens))


def check_repetition(plans: Sequence[SourcePlan], *, force: bool = False) -> list[str]:
    """Warnings for sources repeated beyond ``WARN_EPOCHS``; raises :class:`BudgetError` for one
    above its ``max_epochs`` (unless ``force``) or one asked for tokens it does not have."""
    warnings = []
    for p in plans:
        if p.tokens > 0 and p.unique_tokens == 0:
            raise BudgetError(f"source {p.name!r} has no tokens but the mixture asks for "
                              f"{p.tokens:,.0f}")
        if p.tokens <= 0:
            continue
        epochs = p.epochs
        discount = p.effective_tokens / p.tokens
        if epochs > p.max_epochs and not force:
            raise BudgetError(
                f"source {p.name!r}: the mixture takes {p.tokens:,.0f} tokens from {p.unique_tokens:,} "
                f"unique ones, {epochs:.2f} epochs, above its cap of {p.max_epochs:g} (Muennighoff "
                f"et al. 2023: its effective data is {p.effective_tokens:,.0f} tokens, "
                f"{discount:.0%} of the nominal); lower its share, raise max_epochs or use --force")
        if epochs > WARN_EPOCHS:
            warnings.append(
                f"source {p.name!r} is repeated {epochs:.2f} epochs (> {WARN_EPOCHS:g}): its "
                f"{p.tokens:,.0f} tokens are worth {p.effective_tokens:,.0f} fresh ones ({discount:.0%}, "
                "Muennighoff et al. 2023)")
    return warnings


@dataclass
class Draw:
    """The documents drawn from one source for one phase, in draw order."""

    docs: np.ndarray  # int64 document numbers within the source
    epochs: np.ndarray  # int32 pass over the source each copy belongs to (0-based)
    tokens: int


def draw_documents(lengths: np.ndarray, targets: Sequence[float], seed: Sequence[int],
                   tolerance: float = 0.002) -> list[Draw]:
    """Draw whole documents of lengths ``lengths`` to meet each target in turn.

    The source is read as a stream of passes, each a seeded permutation of its documents, so
    nothing repeats before every document has been used once and a phase after another
    continues where it stopped. A target takes the longest prefix of the stream that fits,
    then looks further for documents that fit what is left (allowing ``tolerance`` x target
    over), so each target is met within ``tolerance`` unless the documents are too long.
    Skipped documents stay first in line for the next target. ``seed`` seeds pass ``e``'s
    permutation as ``SeedSequence([*seed, e])``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = lengths.size
    stream_docs: list[np.ndarray] = []
    stream_len = 0

    def extend_to(size: int) -> None:
        nonlocal stream_len
        while stream_len < size and n:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([*seed, len(stream_docs)])))
            stream_docs.append(rng.permutation(n))
            stream_len += n

    used = np.zeros(0, dtype=bool)
    total = int(lengths.sum())
    draws = []
    for target in targets:
        if target <= 0 or n == 0:
            draws.append(Draw(np.zeros(0, np.int64), np.zeros(0, np.int32), 0))
            continue
        drawn = sum(d.tokens for d in draws)
        extend_to((int(np.ceil((drawn + target) / max(total, 1))) + 1) * n)  # one pass to look ahead
        used = np.concatenate([used, np.zeros(stream_len - used.size, dtype=bool)])
        order = np.concatenate(stream_docs)
        open_pos = np.flatnonzero(~used)
        sizes = lengths[order[open_pos]]
        cum = np.cumsum(sizes)
        slack = tolerance * target
        k = int(np.searchsorted(cum, target, side="right"))
        take = list(range(k))
        left = target - (int(cum[k - 1]) if k else 0)
        # Fitting documents come from the pass the prefix ends in and the next one, and only
        # entries of the current pass are swapped out, so no document is ever more than
        # two copies ahead of another.
        last = int(open_pos[k - 1]) if k else int(open_pos[0]) if open_pos.size else 0
        current_pass = last // n
        horizon = int(np.searchsorted(open_pos, (current_pass + 2) * n))
        swappable = int(np.searchsorted(open_pos, current_pass * n))
        for i in range(k, horizon):
            if left <= slack:
                break
            if sizes[i] <= left + slack:
                take.append(i)
                left -= int(sizes[i])
        for _ in range(4):
            if abs(left) <= slack:
                break
            left = _swap_one(sizes[:horizon], take, left, swappable)
        positions = open_pos[np.array(take, dtype=np.int64)]
        used[positions] = True
        draws.append(Draw(order[positions].astype(np.int64), (positions // n).astype(np.int32),
                          int(lengths[order[positions]].sum())))
    return draws


def _swap_one(sizes: np.ndarray, take: list[int], left: int, first_swappable: int = 0,
              window: int = 1024) -> int:
    """Replace one of the last ``window`` taken entries (from ``first_swappable`` on) by an
    untaken one so that what is left of the target gets closest to 0 (in place); return the
    new remainder."""
    taken = np.array([t for t in take[-window:] if t >= first_swappable], dtype=np.int64)
    if not taken.size:
        return left
    free = np.ones(sizes.size, dtype=bool)
    free[np.array(take, dtype=np.int64)] = False
    cand = np.flatnonzero(free)
    if cand.size == 0:
        return left
    order = np.argsort(sizes[cand], kind="stable")
    sorted_sizes = sizes[cand][order]
    want = sizes[taken] + left  # the candidate size that would leave exactly 0
    j = np.clip(np.searchsorted(sorted_sizes, want), 1, sorted_sizes.size) - 1
    best_err, best = abs(left), None
    for jj in (j, np.minimum(j + 1, sorted_sizes.size - 1)):
        err = np.abs(want - sorted_sizes[jj])
        i = int(np.argmin(err))
        if err[i] < best_err:
            best_err, best = int(err[i]), (int(taken[i]), int(cand[order[jj[i]]]))
    if best is None:
        return left
    out, into = best
    take[take.index(out)] = into
    return left - int(sizes[into]) + int(sizes[out])


def heldout_documents(n_documents: int, fraction: float, rng: np.random.Generator,
                      max_documents: int | None = None) -> np.ndarray:
    """Sorted numbers of the documents of a source reserved as held-out data.

    ``round(fraction * n)`` documents drawn uniformly without replacement, at least one when
    ``fraction > 0`` and at most ``max_documents``; never every document (one always stays
    for training). An empty array for ``fraction == 0``.
    """
    if not 0 <= fraction < 1:
        raise BudgetError(f"held-out fraction must be in [0, 1), got {fraction:g}")
    if fraction == 0 or n_documents < 2:
        return np.zeros(0, dtype=np.int64)
    k = max(round(fraction * n_documents), 1)
    if max_documents is not None:
        k = min(k, max_documents)
    k = min(k, n_documents - 1)
    return np.sort(rng.choice(n_documents, size=k, replace=False)).astype(np.int64)


def heldout_too_small(documents: int, tokens: int, per_source: dict[str, int]) -> list[str]:
    """Warnings for a held-out split too small to score a model on: ``documents`` and
    ``tokens`` in all, ``per_source`` the documents each source gives."""
    warnings = []
    if documents < MIN_HELDOUT_DOCUMENTS or tokens < MIN_HELDOUT_TOKENS:
        warnings.append(f"held-out split: {tokens:,} tokens in {documents:,} document(s) is too few to score "
                        f"a model on (fewer than {MIN_HELDOUT_DOCUMENTS} documents or {MIN_HELDOUT_TOKENS:,} "
                        "tokens: which documents were drawn moves the loss more than the data does); raise "
                        "heldout.fraction or max_documents, or score on a bigger split with --eval")
    few = sorted(name for name, n in per_source.items() if n < MIN_SOURCE_DOCUMENTS)
    if few:
        warnings.append(f"held-out split: fewer than {MIN_SOURCE_DOCUMENTS} documents of "
                        + ", ".join(f"{name} ({per_source[name]})" for name in few)
                        + ": a loss on one of these sources alone is a reading of a handful of texts")
    return warnings
