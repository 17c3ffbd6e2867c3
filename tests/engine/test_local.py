"""The local executor: accounting, stages, resume, strict mode, output formats."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from engine_helpers import arrow_allocator, read_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from steps_for_tests import FailOn, MinChars, StripDigits

from assay import Pipeline, parse_recipe, run_recipe
from assay.engine.layout import Layout
from assay.engine.local import LocalExecutor
from assay.engine.settings import RunError
from assay.engine.worker import StrictInputError, WorkerContext
from assay.io.chunks import FieldMap
from assay.recipe import OutputSpec
from assay.steps.dedup.exact import ExactDedup


def _pipeline() -> Pipeline:
    return Pipeline([MinChars(min_chars=20), ExactDedup(), StripDigits()])


def test_stages_split_reject_and_record_everything(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _pipeline().run(str(corpus), str(out), workers=1, shard_mb=0.002)
    totals = result.totals
    assert totals["in"] == 130
    assert totals["in"] == totals["kept"] + totals["rejected"] + totals["quarantined"]
    assert result.manifest["accounting"]["balanced"]
    assert result.manifest["executor"]["stages"] == 2
    assert result.manifest["executor"]["shards"] > 3

    kept = read_folder(out / "data")
    rejected = read_folder(out / "rejected")
    assert kept.num_rows == totals["kept"]
    # Every input id ends exactly once in kept or rejected.
    ids = kept.column("id").to_pylist() + rejected.column("id").to_pylist()
    assert sorted(ids) == sorted([f"d{i:03d}" for i in range(120)] + [f"dup{i}" for i in range(1, 30, 3)])
    # Signals of every step are on the kept rows; the transform ran after dedup.
    signals = {"min_chars_for_test.chars", "exact_dedup.hash", "strip_digits_for_test.digits_removed"}
    assert signals <= set(kept.column_names)
    assert not any(ch.isdigit() for t in kept.column("text").to_pylist() for ch in t)
    # Rejected rows keep their full content, the step and the reason.
    rows = {r["id"]: r for r in rejected.to_pylist()}
    assert rows["d000"]["rejected_by"] == "min_chars_for_test"
    assert rows["d000"]["reason"] == "too_short"
    assert rows["dup1"]["rejected_by"] == "exact_dedup"
    assert rows["dup1"]["duplicate_of"] == "d001"
    assert rows["dup1"]["text"] == "Document 1 has some words. "
    # The per-step funnel agrees with the files.
    steps = {s["name"]: s for s in result.manifest["steps"]}
    dedup_rejected = sum(r["rejected_by"] == "exact_dedup" for r in rows.values())
    assert steps["exact_dedup"]["docs_rejected"] == dedup_rejected
    assert steps["strip_digits_for_test"]["docs_in"] == totals["kept"]
    # Intermediate stage data is removed after success; progress reports stay for re-runs.
    assert not (out / "_work").exists()


def test_python_and_recipe_paths_write_identical_output(corpus: Path, tmp_path: Path) -> None:
    _pipeline().run(str(corpus), str(tmp_path / "py"), workers=1)
    recipe = parse_recipe(
        f"name: same\ninput: {{path: {corpus}}}\noutput: {tmp_path / 'yaml'}\nsteps:\n"
        "  - min_chars_for_test: {min_chars: 20}\n  - exact_dedup: {}\n  - strip_digits_for_test\n"
    )
    run_recipe(recipe, workers=1)
    for folder in ("data", "rejected"):
        a = sorted((tmp_path / "py" / folder).iterdir())
        b = sorted((tmp_path / "yaml" / folder).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))


def test_two_workers_give_the_same_output_as_one(corpus: Path, tmp_path: Path) -> None:
    _pipeline().run(str(corpus), str(tmp_path / "w1"), workers=1, shard_mb=0.002)
    _pipeline().run(str(corpus), str(tmp_path / "w2"), workers=2, shard_mb=0.002)
    for folder in ("data", "rejected"):
        a = sorted((tmp_path / "w1" / folder).iterdir())
        b = sorted((tmp_path / "w2" / folder).iterdir())
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_workers_start_with_the_system_allocator_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def allocators() -> list[str]:
        executor = LocalExecutor(WorkerContext([], FieldMap(), Layout(str(tmp_path)), False), workers=2)
        try:
            return executor.map(arrow_allocator, [0, 1, 2])
        finally:
            executor.close()

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    assert allocators() == ["system"] * 3
    assert "ARROW_DEFAULT_MEMORY_POOL" not in os.environ  # the driver's environment is left as it was
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    assert allocators() == ["mimalloc"] * 3


def test_malformed_input_is_quarantined_and_strict_stops(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id": "a", "text": "a long enough document"}\n{"id": "b", "text": \n'
                     b'{"id": "c", "text": null}\n{"id": "d", "text": "another long document"}\n')
    out = tmp_path / "out"
    result = Pipeline([MinChars(min_chars=5)]).run(str(path), str(out), workers=1)
    assert result.totals == {**result.totals, "in": 4, "kept": 2, "rejected": 0, "quarantined": 2}
    quarantine = read_folder(out / "quarantine")
    assert quarantine.column("line").to_pylist() == [2, 3]
    assert quarantine.column("file").to_pylist()[0].endswith("bad.jsonl")
    assert result.manifest["read"]["errors"] == {"invalid JSON": 1, "text not a string": 1}
    with pytest.raises(StrictInputError, match=r"bad\.jsonl:line 2: invalid JSON"):
        Pipeline([MinChars(min_chars=5)]).run(str(path), str(tmp_path / "strict"), workers=1,
                                              strict=True)


def test_rerun_with_another_recipe_into_same_output_is_refused(corpus: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    Pipeline([MinChars(min_chars=20)]).run(str(corpus), out, workers=1)
    with pytest.raises(RunError, match="different recipe"):
        Pipeline([MinChars(min_chars=30)]).run(str(corpus), out, workers=1)
    result = Pipeline([MinChars(min_chars=30)]).run(str(corpus), out, workers=1, overwrite=True)
    assert result.manifest["recipe"]["steps"] == [{"min_chars_for_test": {"min_chars": 30, "sleep_s": 0.0}}]


def test_rerun_of_a_finished_run_skips_every_shard(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _pipeline().run(str(corpus), str(out), workers=1, shard_mb=0.002)
    before = {p: p.read_bytes() for p in sorted(out.rglob("part-*"))}
    second = _pipeline().run(str(corpus), str(out), workers=1, shard_mb=0.002)
    assert second.manifest["executor"]["shards_resumed"] == first.manifest["executor"]["shards"]
    assert second.totals == first.totals
    assert {p: p.read_bytes() for p in sorted(out.rglob("part-*"))} == before


def test_jsonl_output(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _pipeline().run(str(corpus), OutputSpec(path=str(out), format="jsonl"), workers=1)
    lines = [json.loads(line) for f in sorted((out / "data").glob("*.jsonl")) for line in f.open()]
    assert len(lines) == result.totals["kept"]
    assert {"id", "text", "exact_dedup.hash"} <= set(lines[0])


# --------------------------------------------------------------------- property: nothing lost

_texts = st.text(alphabet="ab cd\n1", min_size=0, max_size=40)
_record = st.one_of(
    _texts.map(lambda t: ("ok", t)),
    st.sampled_from([("bad", b'{"text": '), ("bad", b'{"id": 1}'), ("bad", b'\xff\xfe'),
                     ("bad", b'{"text": 3}'), ("bad", b"[1, 2]")]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_record, max_size=60), shard_bytes=st.integers(30, 2000),
       min_chars=st.integers(0, 30))
def test_every_input_record_is_kept_rejected_or_quarantined(records, shard_bytes, min_chars) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lines, expected_ids, n_bad = [], set(), 0
        for i, (kind, value) in enumerate(records):
            if kind == "ok":
                lines.append(json.dumps({"id": f"r{i}", "text": value}).encode())
                expected_ids.add(f"r{i}")
            else:
                lines.append(value)
                n_bad += 1
        path = Path(tmp) / "in.jsonl.gz"
        path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
        out = Path(tmp) / "out"
        result = Pipeline([MinChars(min_chars=min_chars), ExactDedup(), StripDigits()]).run(
            str(path), str(out), workers=1, shard_mb=shard_bytes / 1e6
        )
        totals = result.totals
        assert totals["in"] == len(records)
        assert totals["in"] == totals["kept"] + totals["rejected"] + totals["quarantined"]
        assert totals["quarantined"] == n_bad
        seen = []
        for folder in ("data", "rejected"):
            table = read_folder(out / folder)
            if table is not None:
                seen += table.column("id").to_pylist()
        assert sorted(seen) == sorted(expected_ids)


# ----------------------------------------------------------------------- resume after a kill

_RUN = """
import sys
from steps_for_tests import FailOn, MinChars, StripDigits
from assay import Pipeline
from assay.steps.dedup.exact import ExactDedup
Pipeline([MinChars(min_chars=20, sleep_s=float(sys.argv[3])), ExactDedup(), StripDigits()]).run(
    sys.argv[1], sys.argv[2], workers=2, shard_mb=0.0015)
"""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_resume_after_a_worker_is_killed_is_byte_identical(corpus: Path, tmp_path: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    env = {**os.environ}
    subprocess.run([sys.executable, "-c", _RUN, str(corpus), str(clean), "0.2"], env=env, check=True)

    proc = subprocess.Popen([sys.executable, "-c", _RUN, str(corpus), str(killed), "0.2"], env=env,
                            stderr=subprocess.PIPE)
    progress = killed / "_progress" / "stage-0"
    deadline = time.time() + 60
    while time.time() < deadline and not (progress.exists() and any(progress.glob("*.json"))):
        time.sleep(0.01)
    workers = [p for p in _children(proc.pid) if p]
    assert workers, "no worker processes to kill"
    os.kill(workers[-1], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert b"worker process died" in stderr
    # Finished shards have a report; a killed worker may leave a temporary one behind.
    finished_before = len(list(progress.glob("*.json")))
    n_shards = len(list((clean / "_progress" / "stage-0").glob("*.json")))
    assert 0 < finished_before < n_shards

    subprocess.run([sys.executable, "-c", _RUN, str(corpus), str(killed), "0.2"], env=env, check=True)
    for folder in ("data", "rejected"):
        a = sorted((clean / folder).iterdir())
        b = sorted((killed / folder).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["executor"]["shards_resumed"] >= finished_before
    assert manifest["totals"] == json.loads((clean / "manifest.json").read_text())["totals"]
    # Temporary files of the killed run were cleaned up.
    assert not [p for p in killed.rglob(".*.tmp")]


def test_resume_without_an_earlier_run_is_refused(corpus: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(
        f"name: r\ninput: {{path: {corpus}}}\noutput: {tmp_path / 'out'}\nsteps: [min_chars_for_test]\n"
    )
    with pytest.raises(RunError, match="nothing to resume"):
        run_recipe(recipe, workers=1, resume=True)
    run_recipe(recipe, workers=1)
    assert run_recipe(recipe, workers=1, resume=True).manifest["executor"]["shards_resumed"] == 1


def test_a_transform_that_rejects_keeps_the_original_text_of_rejected_rows() -> None:
    import pyarrow as pa

    from assay.documents import CORE_SCHEMA
    from assay.steps.filters.c4 import C4Quality

    kept_text = "\n".join(f"This is sentence number {i} of a proper line here." for i in range(6))
    rejected_text = "Click here\nlorem ipsum dolor sit amet, consectetur adipiscing elit."
    table = pa.Table.from_pylist(
        [{"id": "a", "text": kept_text + "\nnav", "source": "s"},
         {"id": "b", "text": rejected_text, "source": "s"}],
        schema=CORE_SCHEMA,
    )
    out = C4Quality()(table).to_pylist()
    assert out[0]["reason"] is None and out[0]["text"] == kept_text  # cleaned
    assert out[1]["reason"] is not None and out[1]["text"] == rejected_text  # as it came in


@pytest.mark.parametrize("workers", [1, 2])
def test_a_step_that_raises_names_itself_and_the_shard_and_keeps_the_traceback(
    corpus: Path, tmp_path: Path, workers: int
) -> None:
    out = tmp_path / "out"
    with pytest.raises(RunError) as failure:
        Pipeline([MinChars(min_chars=1), FailOn(needle="Document 100 ")]).run(
            str(corpus), str(out), workers=workers, shard_mb=0.002)
    message = str(failure.value)
    assert "step fail_on_for_test on shard 00000-" in message
    assert "ZeroDivisionError: planted failure" in message
    trace = out / "_progress" / "failure.txt"
    assert f"traceback: {trace}" in message and "raise ZeroDivisionError" in trace.read_text()
    assert list((out / "_progress" / "stage-0").glob("*.json"))  # finished shards are kept
