"""`sample`: a seeded uniform draw by document id, the same however the input is cut."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from select_helpers import read_folder, write_jsonl

from assay import Pipeline
from assay.steps.select.sample import NOT_DRAWN, Sample


def ids_kept(fraction: float, seed: int, ids: list[str]) -> set[str]:
    table = pa.table({"id": ids, "text": ["x"] * len(ids)})
    out = Sample(fraction=fraction, seed=seed)(table)
    return {i for i, r in zip(ids, out.column("reason").to_pylist(), strict=True) if r is None}


def test_the_draw_is_uniform_nested_and_seeded() -> None:
    ids = [f"doc-{i}" for i in range(20_000)]
    tenth, half = ids_kept(0.1, 0, ids), ids_kept(0.5, 0, ids)
    assert abs(len(tenth) - 2_000) < 4 * 42 and abs(len(half) - 10_000) < 4 * 71  # 4 standard deviations
    assert tenth <= half  # a larger fraction keeps a superset
    other = ids_kept(0.1, 1, ids)
    assert abs(len(other & tenth) - 200) < 4 * 14  # another seed draws independently
    assert ids_kept(0.1, 0, list(reversed(ids))) == tenth  # order does not matter


def test_a_run_keeps_the_same_documents_whatever_the_shards(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": f"d{i}", "text": f"text {i}"} for i in range(400)])
    kept = []
    for shard_mb in (0.001, 1.0):
        out = tmp_path / f"out-{shard_mb}"
        manifest = Pipeline([Sample(fraction=0.25, seed=3)]).run(str(corpus), str(out), workers=1,
                                                                 shard_mb=shard_mb).manifest
        assert manifest["accounting"]["balanced"]
        assert set(read_folder(out / "rejected").column("reason").to_pylist()) == {NOT_DRAWN}
        kept.append(sorted(read_folder(out / "data").column("id").to_pylist()))
    assert kept[0] == kept[1] and 60 < len(kept[0]) < 140


def test_fraction_one_keeps_everything() -> None:
    ids = [f"doc-{i}" for i in range(5_000)]
    assert ids_kept(1.0, 0, ids) == set(ids)


def test_a_fraction_is_required_and_bounded() -> None:
    with pytest.raises(ValueError, match="fraction"):
        Sample()
    with pytest.raises(ValueError, match="fraction"):
        Sample(fraction=1.5)
