"""The ownership rules, in-process: what is refused, what is marked, what is deleted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import fsspec
import pytest

from assay.io.ownership import (
    LOCK,
    MARKER,
    LockedError,
    OutputError,
    check_file_output,
    check_folder,
    claim_folder,
)


def test_a_new_folder_is_created_marked_locked_and_released(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    with claim_folder(str(out), "run") as owned:
        assert json.loads((out / MARKER).read_text()) == {"written_by": "assay", "kind": "run"}
        holder = json.loads((out / LOCK).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(LockedError, match=f"PID {os.getpid()} on"):
            claim_folder(str(out), "run")
        assert owned.created
    assert not (out / LOCK).exists()
    with claim_folder(str(out), "run") as again:  # released: claimable again, not created
        assert not again.created


@pytest.mark.parametrize("names", [[], [LOCK], [f".{MARKER}.tmp"]])
def test_an_empty_folder_or_one_with_only_assays_files_is_claimed(tmp_path: Path, names: list[str]) -> None:
    (tmp_path / "out").mkdir()
    for name in names:
        (tmp_path / "out" / name).write_text("")
    with claim_folder(str(tmp_path / "out"), "prepare"):
        assert (tmp_path / "out" / MARKER).exists()


def test_refusals_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / ".hidden.tmp").write_text("x")
    (tmp_path / "file").write_text("x")
    (tmp_path / "in" / "work").mkdir(parents=True)
    (tmp_path / "in" / "docs.jsonl").write_text("{}")
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path / "in" / "work")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    deletes: list[str] = []
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: deletes.append(str(a)))
    monkeypatch.setattr(fsspec.implementations.local.LocalFileSystem, "rm",
                        lambda self, *a, **k: deletes.append(str(a)))
    docs = str(tmp_path / "in" / "docs.jsonl")
    cases = [
        ("/", [], "root of the file system"),
        (str(tmp_path / "home"), [], "home folder"),
        (".", [], "current folder"),
        (str(tmp_path / "in"), [], "current folder or one that contains it"),
        (str(tmp_path / "file"), [], "existing file"),
        (str(tmp_path / "theirs"), [], "files assay did not write"),
        (docs, [docs], "is the input"),
        (docs + "/out", [docs], "is inside the input"),
        (str(tmp_path / "new"), [str(tmp_path / "new" / "a.jsonl")], "contains the input"),
    ]
    for url, inputs, words in cases:
        with pytest.raises(OutputError, match=words):
            claim_folder(url, "run", inputs=inputs)
    assert deletes == []
    assert sorted(p.name for p in (tmp_path / "theirs").iterdir()) == [".hidden.tmp"]
    assert not (tmp_path / "new").exists() and list((tmp_path / "home").iterdir()) == []


def test_a_marker_of_another_kind_or_not_assays_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / MARKER).write_text('{"written_by": "assay", "kind": "train"}')
    with pytest.raises(OutputError, match="assay train output, not a run output"):
        check_folder(str(tmp_path / "out"), "run")
    (tmp_path / "out" / MARKER).write_text('{"mine": true}')
    with pytest.raises(OutputError, match="not written by assay"):
        check_folder(str(tmp_path / "out"), "run")


def test_clear_and_partial_cleanup_touch_only_the_names_given(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with claim_folder(str(out), "run") as owned:
        (out / "data").mkdir()
        (out / "data" / ".part-1.parquet.tmp").write_text("partial")
        (out / "data" / "part-1.parquet").write_text("done")
        (out / "notes").mkdir()
        (out / "notes" / ".draft.tmp").write_text("user's")
        owned.remove_partial(["data", "missing"])
        assert sorted(p.name for p in (out / "data").iterdir()) == ["part-1.parquet"]
        assert (out / "notes" / ".draft.tmp").exists()
        owned.clear(["data", "manifest.json"])
        assert not (out / "data").exists() and (out / "notes").exists()
        # A link under the run's own names is removed as a link; what it points to stays.
        (out / "rejected").symlink_to(out / "notes")
        (out / "quarantine").mkdir()
        (out / "quarantine" / "elsewhere").symlink_to(out / "notes")
        owned.remove_partial(["rejected", "quarantine"])
        owned.clear(["rejected"])
        assert not (out / "rejected").exists() and (out / "notes" / ".draft.tmp").exists()
        for bad in (MARKER, LOCK, "../x", "a/b", ".."):
            with pytest.raises(ValueError, match="not a name"):
                owned.clear([bad])


def test_discard_removes_only_a_folder_this_process_created_and_left_empty(tmp_path: Path) -> None:
    with claim_folder(str(tmp_path / "new"), "prepare") as owned:
        owned.discard()
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with claim_folder(str(tmp_path / "kept"), "prepare") as owned:
        owned.discard()
    assert (tmp_path / "kept").is_dir()
    with claim_folder(str(tmp_path / "full"), "prepare") as owned:
        (tmp_path / "full" / "manifest.json").write_text("{}")
        owned.discard()
    assert (tmp_path / "full" / "manifest.json").exists()


def test_single_files_are_replaced_only_when_assay_wrote_them(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours, theirs = tmp_path / "ours.png", tmp_path / "theirs.png"
    plt.figure().savefig(ours, metadata={"Software": "assay"})
    plt.figure().savefig(theirs)
    plt.close("all")
    check_file_output(ours)
    with pytest.raises(OutputError, match="not written by assay"):
        check_file_output(theirs)
    (tmp_path / "fit.json").write_text('{"written_by": "assay", "fits": []}')
    check_file_output(tmp_path / "fit.json")
    (tmp_path / "other.json").write_text('{"fits": []}')
    with pytest.raises(OutputError, match="not written by assay"):
        check_file_output(tmp_path / "other.json")
    check_file_output(tmp_path / "new.json")
    with pytest.raises(OutputError, match="is a folder"):
        check_file_output(tmp_path)
    with pytest.raises(OutputError, match="does not exist"):
        check_file_output(tmp_path / "no" / "x.png")
