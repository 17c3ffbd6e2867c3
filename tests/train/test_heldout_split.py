"""The held-out split of ``assay prepare`` (``heldout`` in the recipe): documents reserved per
source, never in any phase, written like a phase and read back as ``"heldout"``.

(These test a change in ``src/assay/prepare`` made for evaluation; they live here with the
code that needs the split.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assay.prepare import BudgetError, parse_prepare_recipe
from assay.prepare.mixture import heldout_documents
from assay.prepare.reader import Shards
from assay.recipe import RecipeError

from .conftest import prepare_shards


def _keys(table: Any) -> list[tuple[str, str]]:
    return list(zip(table.column("curated_source").to_pylist(), table.column("id").to_pylist(), strict=True))


def test_heldout_documents_is_a_seeded_share() -> None:
    rng = lambda: np.random.default_rng(7)  # noqa: E731
    pick = heldout_documents(1000, 0.05, rng())
    assert pick.size == 50 and np.all(np.diff(pick) > 0) and pick.max() < 1000
    assert np.array_equal(pick, heldout_documents(1000, 0.05, rng()))
    assert heldout_documents(1000, 0.05, rng(), max_documents=7).size == 7
    assert heldout_documents(10, 0.01, rng()).size == 1  # at least one
    assert heldout_documents(2, 0.49, rng()).size == 1  # never every document
    assert heldout_documents(1, 0.3, rng()).size == 0
    assert heldout_documents(100, 0.0, rng()).size == 0
    with pytest.raises(BudgetError):
        heldout_documents(10, 1.0, rng())


def test_heldout_split_is_disjoint_from_training_and_round_trips(shards: Path,
                                                                 small_docs: list[dict[str, Any]]) -> None:
    s = Shards(shards)
    m = s.manifest
    assert s.has_heldout and s.phases == ["main"] and "heldout" not in s.phases
    held = s.documents("heldout")
    train = s.documents("main")
    assert not set(_keys(held)) & set(_keys(train))
    # Every document is either trained on or held out, once (epochs 1).
    assert sorted(_keys(held) + _keys(train)) == sorted((d["source"], d["id"]) for d in small_docs)
    h = m["heldout"]
    per_source = dict(Counter(held.column("source").to_pylist()))
    assert per_source == {name: v["documents"] for name, v in h["sources"].items()}
    assert per_source == {"fortunes": 75, "python": 1, "udhr": 2}  # 10% of 748, 8 and 24, rounded
    # The tokens are the documents' text, exactly; bytes are the text's UTF-8 bytes.
    by_id = {(d["source"], d["id"]): d["text"] for d in small_docs}
    n_bytes = 0
    for position, key in enumerate(_keys(held)):
        assert s.document_text("heldout", position) == by_id[key]
        assert s.document_text("heldout", position, "decompose") == by_id[key]
        n_bytes += len(by_id[key].encode())
    assert n_bytes == h["bytes"] == sum(v["bytes"] for v in h["sources"].values())
    assert h["tokens"] == sum(f["tokens"] for f in h["concat"]["files"])
    # Unique tokens of a source no longer count its held-out documents.
    assert m["sources"]["fortunes"]["documents"] == 748 - 75
    assert (shards / "concat" / "heldout").is_dir() and (shards / "documents" / "heldout.parquet").is_file()


def test_same_recipe_same_split_and_no_split_by_default(tmp_path: Path, curated_small: Path,
                                                        tokenizer_512: Path, shards: Path) -> None:
    again = prepare_shards(tmp_path / "again", curated_small, tokenizer_512, method="concat")
    assert _keys(Shards(again).documents("heldout")) == _keys(Shards(shards).documents("heldout"))
    none = prepare_shards(tmp_path / "none", curated_small, tokenizer_512, heldout=0.0, method="concat")
    assert not Shards(none).has_heldout and "heldout" not in Shards(none).manifest
    capped = prepare_shards(tmp_path / "capped", curated_small, tokenizer_512, method="concat",
                            heldout="{fraction: 0.2, max_documents: 3}")
    counts = {k: v["documents"] for k, v in Shards(capped).manifest["heldout"]["sources"].items()}
    assert counts == {"fortunes": 3, "python": 2, "udhr": 3}


def test_recipe_forms_and_refusals() -> None:
    base = "name: x\noutput: o\ntokenizer: {path: t.json}\ninput: i\n"
    assert parse_prepare_recipe(base + "heldout: 0.02\n").heldout.fraction == 0.02
    spec = parse_prepare_recipe(base + "heldout: {fraction: 0.1, max_documents: 5}\n").heldout
    assert (spec.fraction, spec.max_documents) == (0.1, 5)
    assert parse_prepare_recipe(base).heldout.fraction == 0.0
    with pytest.raises(RecipeError, match="heldout"):
        parse_prepare_recipe(base + "heldout: 0.7\n")
    with pytest.raises(RecipeError, match="held-out split's"):
        parse_prepare_recipe("name: x\noutput: o\ntokenizer: {path: t.json}\nheldout: 0.1\nmixture:\n"
                             "  sources: {a: {path: p}}\n  phases: [{name: heldout, fraction: 1.0}]\n")
