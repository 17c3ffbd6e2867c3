"""Quality classifiers: learn "good vs. random" from two example sets, keep the top share.

DCLM (Li et al. 2024, "DataComp-LM") selects with a fastText classifier on word unigrams
and bigrams (``wordNgrams 2``), trained on OpenHermes-2.5 and r/ExplainLikeImFive answers
as positives against random RefinedWeb documents, and keeps the top 10% by its score;
FineWeb-Edu (Penedo et al. 2024) and Arctic-SnowCoder use the same shape with other
labels. Training fastText needs the ``fasttext`` trainer, whose wheels install a module
named ``fasttext`` that collides with ``fasttext-predict`` (the predict-only build the
language step relies on), and multi-threaded fastText training is not deterministic. So
the model here is the same feature space learned directly: hashed word unigrams and
bigrams (the tokens of :mod:`assay.text.wordpunct`, 2**20 buckets, fastText's
default ``bucket`` order of magnitude), L2-normalised per document, and an L2-regularised
logistic regression fitted by L-BFGS: a linear bag-of-n-grams model like fastText's, with
a full-rank weight vector instead of its low-rank embedding, deterministic for a seed.

FineWeb-Edu's classifier is a regression: trained on ~450k LLM scores (0-5) and applied
with a threshold of 3. :func:`train_regressor` fits the same features to a numeric target
(such as ``llm_rate.score``) by ridge regression (LSQR), and the step then keeps documents
whose predicted score reaches ``threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from assay.documents import REASON, TEXT, signal_column
from assay.steps.base import GlobalState, GlobalStep, StepParams, Threshold, register, set_thresholds
from assay.steps.select.model_files import check_model, load_model, save_model
from assay.text.wordpunct import hashed_ngram_counts

if TYPE_CHECKING:
    import scipy.sparse

KIND = "quality_classifier"
LOW_SCORE = "quality_classifier_low_score"


# ------------------------------------------------------------------------ the maths


def feature_matrix(texts: Sequence[str], ngrams: int, num_buckets: int) -> scipy.sparse.csr_matrix:
    """(texts, buckets): hashed 1..n-gram counts, each row scaled to unit L2 norm."""
    import scipy.sparse  # imported here: a worker that never runs this step never loads scipy

    sparse, _ = hashed_ngram_counts(list(texts), ngrams, num_buckets)
    values = sparse.counts.astype(np.float64)
    row_of = np.repeat(np.arange(sparse.num_texts), np.diff(sparse.offsets))
    norms = np.sqrt(np.bincount(row_of, weights=values**2, minlength=sparse.num_texts))
    values /= np.where(norms > 0, norms, 1)[row_of]
    return scipy.sparse.csr_matrix((values, sparse.buckets, sparse.offsets),
                                   shape=(sparse.num_texts, num_buckets))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


def fit_logistic(
    x: scipy.sparse.csr_matrix, y: np.ndarray, l2: float, max_iter: int = 200
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """``(weights, bias, info)`` minimising the class-balanced mean logistic loss plus
    ``l2 / 2 * |w|**2`` (the bias is not penalised), by L-BFGS-B. Only buckets that occur
    are optimised: the others' weights are 0 at the optimum."""
    n_features = x.shape[1]
    active = np.unique(x.indices)
    x = x[:, active]
    positive = y.astype(bool)
    # Each class carries half the loss whatever its size (DCLM trains on balanced sets).
    sample_weight = np.where(positive, 0.5 / max(1, positive.sum()), 0.5 / max(1, (~positive).sum()))
    signs = np.where(positive, 1.0, -1.0)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        margin = signs * (x @ w + b)
        loss = np.logaddexp(0, -margin)
        grad_margin = -sample_weight * signs * sigmoid(-margin)
        grad = np.append(x.T @ grad_margin + l2 * w, grad_margin.sum())
        return float(sample_weight @ loss + 0.5 * l2 * w @ w), grad

    import scipy.optimize

    result = scipy.optimize.minimize(objective, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                                     options={"maxiter": max_iter})
    info = {"converged": bool(result.success), "iterations": int(result.nit), "loss": float(result.fun),
            "active_buckets": len(active)}
    weights = np.zeros(n_features)
    weights[active] = result.x[:-1]
    return weights, float(result.x[-1]), info


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random
    negative, ties counting half (Mann-Whitney U over average ranks)."""
    positive = labels.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    sorted_scores = scores[order]
    # Average the ranks of tied scores.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    mean_rank = (starts + ends + 1) / 2
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall and accuracy at ``threshold``, and the ROC AUC."""
    predicted, actual = scores >= threshold, labels.astype(bool)
    tp = int((predicted & actual).sum())
    return {
        "precision": round(tp / max(1, int(predicted.sum())), 4),
        "recall": round(tp / max(1, int(actual.sum())), 4),
        "accuracy": round(float((predicted == actual).mean()) if len(actual) else float("nan"), 4),
        "auc": round(roc_auc(scores, labels), 4),
    }


# ------------------------------------------------------------------------ the model


Target = Literal["binary", "regression"]


@dataclass
class QualityClassifier:
    """A fitted hashed-n-gram linear model: :meth:`score` gives P(positive) for a
    ``binary`` one, the predicted value for a ``regression`` one."""

    weights: np.ndarray
    bias: float
    ngrams: int = 2
    num_buckets: int = 2**20
    info: dict[str, Any] = field(default_factory=dict)
    target: Target = "binary"

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros(0)
        linear = feature_matrix(texts, self.ngrams, self.num_buckets) @ self.weights + self.bias
        return sigmoid(linear) if self.target == "binary" else linear

    def save(self, folder: str) -> str:
        params = {"ngrams": self.ngrams, "num_buckets": self.num_buckets, "target": self.target}
        return save_model(folder, KIND, {"weights": self.weights.astype(np.float32),
                                         "bias": np.array([self.bias])}, {"params": params, **self.info})

    @classmethod
    def load(cls, folder: str) -> QualityClassifier:
        arrays, manifest = load_model(folder, KIND)
        params = manifest["params"]
        info = {k: v for k, v in manifest.items() if k not in ("params", "arrays")}
        return cls(arrays["weights"].astype(np.float64), float(arrays["bias"][0]), params["ngrams"],
                   params["num_buckets"], info, params.get("target", "binary"))


def train_classifier(
    positives: Sequence[str], negatives: Sequence[str], *, ngrams: int = 2, num_buckets: int = 2**20,
    l2: float = 1e-3, validation: float = 0.1, seed: int = 0,
) -> QualityClassifier:
    """Fit on a random ``1 - validation`` of each set (seeded) and report precision,
    recall and AUC on the held-out rest in the model's ``info``."""
    texts = [*positives, *negatives]
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(texts), dtype=bool)
    for rows in (np.arange(len(positives)), np.arange(len(positives), len(texts))):
        n = round(validation * len(rows))
        held_out[rng.permutation(rows)[:n]] = True
    x = feature_matrix(texts, ngrams, num_buckets)
    weights, bias, fit_info = fit_logistic(x[~held_out], labels[~held_out], l2)
    model = QualityClassifier(weights, bias, ngrams, num_buckets)
    info: dict[str, Any] = {
        "training": {"positives": int(labels[~held_out].sum()),
                     "negatives": int((~held_out).sum() - labels[~held_out].sum()),
                     "l2": l2, "seed": seed, **fit_info},
        "train_metrics": binary_metrics(sigmoid(x[~held_out] @ weights + bias), labels[~held_out]),
    }
    if held_out.any():
        info["held_out"] = {"documents": int(held_out.sum()),
                            **binary_metrics(sigmoid(x[held_out] @ weights + bias), labels[held_out])}
    model.info = info
    return model


def held_out_rows(n: int, validation: float, seed: int) -> np.ndarray:
    held_out = np.zeros(n, dtype=bool)
    held_out[np.random.default_rng(seed).permutation(n)[:round(validation * n)]] = True
    return held_out


def regression_metrics(predicted: np.ndarray, actual: np.ndarray, threshold: float) -> dict[str, float]:
    """RMSE, Spearman's rank correlation, and precision/recall/accuracy/AUC of the decision
    ``value >= threshold`` (FineWeb-Edu reports its classifier's F1 at 3)."""
    from scipy.stats import spearmanr

    rank = spearmanr(predicted, actual).statistic if len(actual) > 1 else float("nan")
    labels = actual >= threshold
    binary = binary_metrics(predicted, labels, threshold)
    f1 = 2 * binary["precision"] * binary["recall"] / max(1e-12, binary["precision"] + binary["recall"])
    return {"rmse": round(float(np.sqrt(np.mean((predicted - actual) ** 2))), 4),
            "spearman": round(float(rank), 4), **binary, "f1": round(f1, 4)}


def train_regressor(
    texts: Sequence[str], targets: Sequence[float], *, ngrams: int = 2, num_buckets: int = 2**20,
    l2: float = 1e-3, validation: float = 0.1, seed: int = 0, threshold: float = 3.0,
) -> QualityClassifier:
    """Fit the hashed n-gram features to a numeric target by ridge regression (minimising
    ``|Xw - (y - mean y)|^2 + l2 * n * |w|^2`` with LSQR; the bias is the mean), on a seeded
    ``1 - validation`` of the rows; metrics of the held-out rest go in the model's ``info``."""
    from scipy.sparse.linalg import lsqr

    y = np.asarray(targets, dtype=np.float64)
    held_out = held_out_rows(len(y), validation, seed)
    x = feature_matrix(texts, ngrams, num_buckets)
    train = ~held_out
    bias = float(y[train].mean()) if train.any() else 0.0
    solved = lsqr(x[train], y[train] - bias, damp=float(np.sqrt(l2 * max(1, int(train.sum())))),
                  atol=1e-10, btol=1e-10, iter_lim=10_000)
    weights = solved[0]
    model = QualityClassifier(weights, bias, ngrams, num_buckets, target="regression")
    info: dict[str, Any] = {
        "training": {"documents": int(train.sum()), "target_mean": round(bias, 6), "l2": l2, "seed": seed,
                     "iterations": int(solved[2]), "threshold": threshold},
        "train_metrics": regression_metrics(model.score(np.asarray(texts, dtype=object)[train].tolist()),
                                            y[train], threshold),
    }
    if held_out.any():
        predicted = model.score(np.asarray(texts, dtype=object)[held_out].tolist())
        info["held_out"] = {"documents": int(held_out.sum()),
                            **regression_metrics(predicted, y[held_out], threshold)}
    model.info = info
    return model


def top_share_threshold(scores: np.ndarray, fraction: float) -> tuple[np.ndarray, float]:
    """``(keep, threshold)``: the ``round(fraction * n)`` highest scores (ties by input
    order) and the lowest score kept."""
    k = round(fraction * len(scores))
    keep = np.zeros(len(scores), dtype=bool)
    if k > 0:
        keep[np.argsort(-scores, kind="stable")[:k]] = True
    return keep, float(scores[keep].min()) if k > 0 else float("inf")


# ------------------------------------------------------------------------ the step


class KeepRuleParams(StepParams):
    """Base of the parameters of a score selection: its subclasses declare ``top_fraction``
    and ``threshold`` (with their own ranges), and one of them must be given."""

    @model_validator(mode="after")
    def _one_rule(self) -> KeepRuleParams:
        if getattr(self, "top_fraction", None) is None and getattr(self, "threshold", None) is None:
            raise ValueError("give top_fraction or threshold")
        return self


class QualityClassifierParams(KeepRuleParams):
    model: str = Field(description="model folder written by `assay select train-classifier`")
    top_fraction: float | None = Field(
        0.1, gt=0, le=1, description="keep this share of the documents with the highest scores (DCLM: 10%)"
    )
    threshold: float | None = Field(
        None, description="keep scores at or above this instead (FineWeb-Edu: 3 on a regression model)"
    )

    @field_validator("model")
    @classmethod
    def _is_a_model(cls, path: str) -> str:
        check_model(path, KIND)
        return path

    @model_validator(mode="after")
    def _threshold_fits_the_model(self) -> QualityClassifierParams:
        target = check_model(self.model, KIND)["params"].get("target", "binary")
        if target == "binary" and self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError("the threshold of a binary classifier is a probability, in [0, 1]")
        return self


@dataclass(frozen=True)
class ShardKeep:
    num_rows: int
    rejected: np.ndarray  # boolean per row


class ScoreSelection(GlobalStep):
    """A global step that keeps the documents whose ``score`` signal is in the top
    ``top_fraction`` (ties by input order) or at least ``threshold``; the others are
    rejected with ``low_score_reason``."""

    low_score_reason: ClassVar[str]

    def thresholds(self) -> list[Threshold]:
        return set_thresholds((self.low_score_reason, "score", "<", self.params.threshold))

    def fit(self, keys: pa.Table, shard_sizes: Sequence[int]) -> GlobalState:
        p = self.params
        scores = keys.column(signal_column(self.name, "score")).to_numpy()
        if p.threshold is not None:
            keep, threshold = scores >= p.threshold, p.threshold
        else:
            keep, threshold = top_share_threshold(scores, p.top_fraction or 0)
        bounds = np.concatenate([[0], np.cumsum(shard_sizes)])
        per_shard = [ShardKeep(int(shard_sizes[i]), ~keep[bounds[i]:bounds[i + 1]])
                     for i in range(len(shard_sizes))]
        return GlobalState(per_shard, {"documents": len(scores), "kept": int(keep.sum()),
                                       "threshold": round(float(threshold), 6)})

    def apply(self, table: pa.Table, shard_state: ShardKeep) -> pa.Table:
        if table.num_rows != shard_state.num_rows:
            raise ValueError(f"shard has {table.num_rows} rows but was fitted with {shard_state.num_rows}")
        reasons = np.where(shard_state.rejected, self.low_score_reason, None)
        return table.append_column(REASON, pa.array(reasons, pa.string()))


@register
class QualityClassifierStep(ScoreSelection):
    """Quality classifier: score documents with a trained classifier, keep the top share.

    DCLM (Li et al. 2024) keeps the top 10% of documents by a fastText bigram classifier
    trained on instruction and ELI5 answers against random web text (``top_fraction:
    0.1``); FineWeb-Edu (Penedo et al. 2024) keeps scores over a fixed threshold
    (``threshold``, which replaces the share when given). The model is a hashed word
    uni+bigram logistic classifier trained by ``assay select train-classifier`` (see
    :mod:`assay.steps.select.classifier` for why it is not fastText itself). Signal:
    ``quality_classifier.score``, P(positive). A share needs every score, so the step is
    global; ties at the cut are broken by input order, so the result is deterministic.
    Rejected documents go to ``rejected/`` as ``quality_classifier_low_score``.
    """

    name: ClassVar[str] = "quality_classifier"
    low_score_reason: ClassVar[str] = LOW_SCORE
    Params: ClassVar[type[StepParams]] = QualityClassifierParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"score": pa.float64()}

    params: QualityClassifierParams

    def setup(self) -> None:
        self._model = QualityClassifier.load(self.params.model)

    def __call__(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        scores = self._model.score(table.column(TEXT).to_pylist())
        return table.append_column(signal_column(self.name, "score"), pa.array(scores, pa.float64()))

    def fit(self, keys: pa.Table, shard_sizes: Sequence[int]) -> GlobalState:
        state = super().fit(keys, shard_sizes)
        scores = keys.column(signal_column(self.name, "score")).to_numpy()
        quantiles = np.quantile(scores, [0.1, 0.5, 0.9]).round(4).tolist() if len(scores) else []
        state.summary["score_p10_p50_p90"] = quantiles
        return state
