"""A trained proxy asked about single documents: each token's log-probability, per-document
loss and bits per byte, and the membership scores of Min-K% Prob and Min-K%++.

- **Min-K% Prob** (Shi et al. 2024, "Detecting Pretraining Data from Large Language
  Models"): the mean log-probability of the ``k`` share of a text's tokens the model finds
  least likely. A text the model was trained on has fewer surprising tokens, so a higher
  score; ``k = 0.2`` is the paper's choice.
- **Min-K%++** (Zhang et al. 2024, "Min-K%++: Improved Baseline for Detecting Pre-Training
  Data from Large Language Models"): each token's log-probability is first standardised by
  the mean and standard deviation of the log-probability under the model's own next-token
  distribution at that position, ``(log p(x_t) - mu_t) / sigma_t`` with
  ``mu_t = E_{z~p}[log p(z)]`` and ``sigma_t^2 = Var_{z~p}[log p(z)]``; training drives the
  seen token towards a mode of the distribution, where this is high.

A document is cut into windows of the model's context, each predicting its tokens once (the
first from the end-of-document token), as held-out evaluation does. Windows are batched by
length, a batch holding at most ``max_logits`` vocabulary-wide rows of logits, so memory is
bounded whatever the vocabulary. Everything is deterministic on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import torch

from assay.prepare.reader import Shards
from assay.prepare.tokenizer import Encoder
from assay.train import checkpoint
from assay.train.config import TrainError
from assay.train.evaluate import document_windows, length_batches
from assay.train.model import GPT, GPTConfig

# A batch's logits are at most this many rows of the vocabulary (256 MiB of float32 logits
# at a vocabulary of 1,024, 1.3 GiB at GPT-2's 50,257: the log-softmax keeps one more copy).
MAX_LOGIT_VALUES = 1 << 26
# Min-K%++'s statistics are taken this many logits at a time (1 MiB of float32: in cache).
CHUNK_VALUES = 1 << 18


@dataclass
class ProxyRun:
    """A trained proxy from an ``assay train`` run folder: the model (eval mode), the
    tokenizer of the shards it trained on, and its end-of-document id."""

    path: Path
    model: GPT
    encoder: Encoder
    eos_id: int

    @property
    def context(self) -> int:
        return self.model.config.context


def load_run(path: str | Path, device: str | torch.device = "cpu",
             weights: str | Path | None = None) -> ProxyRun:
    """The proxy of the run folder ``path`` (its ``config.json``, its checkpoint, or the
    ``weights`` file of another point of the run, and the tokenizer of the shards it names)."""
    folder = Path(path)
    try:
        config = orjson.loads((folder / "config.json").read_bytes())
        shape = config["plan"]["model"]
        shards = Shards(config["config"]["shards"])
    except FileNotFoundError as exc:
        raise TrainError(f"{folder}: not a finished assay train run ({exc.filename} is missing)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise TrainError(f"{folder}: not an assay train run ({exc})") from None
    model = GPT(GPTConfig(**shape)).to(device)
    file = Path(weights) if weights is not None else folder / checkpoint.FILE
    if not file.is_file():
        raise TrainError(f"{folder}: no {file.name} (the run did not save it)")
    checkpoint.load_checkpoint(file, model)
    model.eval()
    return ProxyRun(folder, model, shards.encoder, shards.eos_id)


@dataclass(frozen=True)
class TokenScores:
    """One document's predicted tokens: log-probability and Min-K%++'s standardised score."""

    log_probs: np.ndarray
    standardised: np.ndarray


def token_scores(run: ProxyRun, documents: Sequence[np.ndarray], device: str | torch.device = "cpu",
                 max_logit_values: int = MAX_LOGIT_VALUES) -> list[TokenScores]:
    """Every token of every document scored by ``run``'s model (each document as token ids,
    its end-of-document token last, as shards hold it)."""
    windows, owner = [], []
    for d, tokens in enumerate(documents):
        for x, y in document_windows(tokens, run.eos_id, run.context):
            windows.append((x, y))
            owner.append(d)
    lengths = np.array([y.size for _, y in windows], dtype=np.int64)
    vocab = run.model.config.vocab_size
    log_probs = [np.zeros(0, np.float64)] * len(windows)
    standardised = [np.zeros(0, np.float64)] * len(windows)
    device = torch.device(device)
    with torch.no_grad():
        for rows in length_batches(lengths, max(run.context, max_logit_values // vocab)):
            width = int(lengths[rows].max())
            x = np.zeros((rows.size, width), dtype=np.int64)
            y = np.zeros((rows.size, width), dtype=np.int64)
            for r, i in enumerate(rows.tolist()):
                x[r, : lengths[i]], y[r, : lengths[i]] = windows[i]
            logits = run.model(torch.from_numpy(x).to(device))
            seen, z = position_scores(logits.flatten(0, 1), torch.from_numpy(y).to(device).flatten())
            seen_np = seen.view(y.shape).double().cpu().numpy()
            z = z.view(y.shape).double().cpu().numpy()
            for r, i in enumerate(rows.tolist()):
                log_probs[i] = seen_np[r, : lengths[i]]
                standardised[i] = z[r, : lengths[i]]
    out = []
    by_document: list[list[int]] = [[] for _ in documents]
    for w, d in enumerate(owner):
        by_document[d].append(w)
    for ws in by_document:
        out.append(TokenScores(np.concatenate([log_probs[w] for w in ws]) if ws else np.zeros(0),
                               np.concatenate([standardised[w] for w in ws]) if ws else np.zeros(0)))
    return out


def position_scores(logits: torch.Tensor, targets: torch.Tensor,
                    chunk_values: int = CHUNK_VALUES) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``logits`` (positions x vocabulary): the log-probability of its target,
    and that log-probability standardised by the mean and deviation of the log-probabilities
    under the row's own distribution (Min-K%++). Computed on the shifted logits ``s = l -
    max l``: ``log p = s - log Z`` and the deviation of ``log p`` is that of ``s`` (a shift
    changes no deviation), so ``E[log p] = E_p[s] - log Z`` and ``Var[log p] = E_p[s^2] -
    E_p[s]^2``; rows are taken a cache-sized chunk at a time, where these few passes are
    cheap next to the forward."""
    rows = max(1, chunk_values // max(logits.shape[-1], 1))
    seen_all, z_all = [], []
    for start in range(0, logits.shape[0], rows):
        shifted = logits[start: start + rows].float()
        shifted = shifted - shifted.amax(dim=-1, keepdim=True)
        weights = shifted.exp()
        total = weights.sum(-1)
        log_total = total.log()
        weighted = weights * shifted
        mean = weighted.sum(-1) / total
        square = (weighted * shifted).sum(-1) / total
        sigma = (square - mean * mean).clamp_min(1e-12).sqrt()
        seen = shifted.gather(-1, targets[start: start + rows].unsqueeze(-1)).squeeze(-1) - log_total
        seen_all.append(seen)
        z_all.append((seen - (mean - log_total)) / sigma)
    return torch.cat(seen_all), torch.cat(z_all)


def min_k(values: np.ndarray, k: float) -> float:
    """The mean of the ``ceil(k n)`` smallest of ``values`` (at least one; NaN for none)."""
    if values.size == 0:
        return math.nan
    take = max(1, math.ceil(k * values.size))
    return float(np.partition(values, take - 1)[:take].mean())


def document_scores(run: ProxyRun, texts: Sequence[str], k: float,
                    device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Per text: ``loss`` (nats per token, the end-of-document token predicted last included),
    ``bpb`` (bits per UTF-8 byte), ``min_k`` and ``min_k_plus_plus`` at ``k``, and ``tokens``
    (how many were predicted). NaN scores for a text without tokens."""
    # Each text's tokens and its end-of-document token, as shards hold a document and as
    # held-out evaluation scores it.
    documents = [np.append(t.astype(np.int64), run.eos_id) for t in run.encoder.encode(list(texts))]
    scores = token_scores(run, documents, device)
    n = len(texts)
    loss, bpb, mk, mkpp = (np.full(n, math.nan) for _ in range(4))
    tokens = np.zeros(n, dtype=np.int64)
    for i, (text, s) in enumerate(zip(texts, scores, strict=True)):
        tokens[i] = s.log_probs.size
        if s.log_probs.size == 0:
            continue
        nats = -float(s.log_probs.sum())
        loss[i] = nats / s.log_probs.size
        bpb[i] = nats / math.log(2) / max(len(text.encode("utf-8")), 1)
        mk[i] = min_k(s.log_probs, k)
        mkpp[i] = min_k(s.standardised, k)
    return {"loss": loss, "bpb": bpb, "min_k": mk, "min_k_plus_plus": mkpp, "tokens": tokens}


def auc(scores: np.ndarray, members: np.ndarray) -> float:
    """The area under the ROC curve of ``scores`` (higher: more likely a member) for the
    boolean labels ``members``: the chance that a random member outscores a random
    non-member, ties counting half (the Mann-Whitney U statistic over the product of the
    two counts). NaN scores are left out; NaN when either group is then empty."""
    from scipy.stats import rankdata

    keep = ~np.isnan(scores)
    scores, members = scores[keep], members[keep].astype(bool)
    positives, negatives = int(members.sum()), int((~members).sum())
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[members].sum() - positives * (positives + 1) / 2) / (positives * negatives))
