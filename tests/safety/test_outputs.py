"""assay writes only into folders it marked as its own, and deletes only its own names there."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import pytest
from safety_helpers import Canaries, assay, concurrently, refused, write_jsonl, write_recipe


@pytest.fixture
def project(tmp_path: Path, docs: list[dict]) -> Path:
    """A user's folder: an input, a sibling folder of notes, and a secret beside them."""
    write_jsonl(tmp_path / "corpus" / "docs.jsonl", docs)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("\\section{Years of work}\n")
    (tmp_path / "secret.key").write_bytes(b"\x00\x01private")
    return tmp_path


def test_overwrite_into_the_input_folder_is_refused(project: Path) -> None:
    canaries = Canaries(project)
    recipe = write_recipe(project / "r.yaml", project / "corpus" / "docs.jsonl", project / "corpus")
    for flags in ([], ["--overwrite"]):
        refused(assay("run", recipe, *flags), "contains the input")
    canaries.intact()


def test_output_equal_to_an_input_file_or_inside_an_input_is_refused(project: Path) -> None:
    canaries = Canaries(project)
    docs = project / "corpus" / "docs.jsonl"
    refused(assay("run", write_recipe(project / "a.yaml", docs, docs), "--overwrite"), "is the input")
    # A file a step references counts as an input too.
    bench = write_jsonl(project / "bench" / "items.jsonl", [{"question": "What is the capital of France?"}])
    steps = (f"  - decontaminate:\n      benchmarks: [{{name: q, path: {json.dumps(str(bench))}, "
             "fields: [question]}]\n")
    recipe = write_recipe(project / "b.yaml", docs, project / "bench", steps=steps)
    refused(assay("run", recipe, "--overwrite"), "contains the input", "items.jsonl")
    canaries.intact()


def test_root_home_and_current_folder_are_refused(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    canaries = Canaries(project, home)
    docs = project / "corpus" / "docs.jsonl"
    cases = {"/": "root of the file system", str(home): "home folder", ".": "current folder",
             "..": "current folder", str(project / "notes" / ".."): "current folder"}
    outcomes = concurrently(*(partial(assay, "run", write_recipe(project / f"r{i}.yaml", docs, output),
                                      "--overwrite", cwd=project / "notes", env={"HOME": str(home)})
                              for i, output in enumerate(cases)))
    for words, outcome in zip(cases.values(), outcomes, strict=True):
        refused(outcome, words)
    canaries.intact()


def test_a_folder_assay_did_not_write_is_never_touched(project: Path) -> None:
    """The files the old cleanup deleted (``.*.tmp``) and read (``data/``) stay as they were."""
    theirs = project / "theirs"
    (theirs / ".ssh").mkdir(parents=True)
    (theirs / ".ssh" / "id_rsa").write_text("KEY")
    (theirs / "thesis.tex").write_text("chapter 1")
    (theirs / "data").mkdir()
    (theirs / "data" / "part-00000-00000.parquet").write_bytes(b"not parquet")
    (theirs / "deep" / "er").mkdir(parents=True)
    (theirs / "deep" / "er" / ".draft.tmp").write_text("unsaved work")
    canaries = Canaries(project)
    recipe = write_recipe(project / "r.yaml", project / "corpus" / "docs.jsonl", theirs)
    for flags in ([], ["--overwrite"], ["--resume"]):
        refused(assay("run", recipe, *flags), "files assay did not write", "marker")
    canaries.intact()
    assert not (theirs / ".assay-output").exists() and not (theirs / ".assay-lock").exists()


def test_an_existing_file_as_output_is_refused(project: Path) -> None:
    canaries = Canaries(project)
    recipe = write_recipe(project / "r.yaml", project / "corpus" / "docs.jsonl", project / "secret.key")
    refused(assay("run", recipe, "--overwrite"), "existing file")
    canaries.intact()


def test_overwrite_replaces_only_the_runs_own_names(project: Path) -> None:
    out = project / "out"
    recipe = write_recipe(project / "r.yaml", project / "corpus" / "docs.jsonl", out)
    assert assay("run", recipe).code == 0
    assert json.loads((out / ".assay-output").read_text()) == {"written_by": "assay", "kind": "run"}
    (out / "README-by-me.txt").write_text("my notes on this run")
    canaries = Canaries(project / "corpus", project / "notes", out / "README-by-me.txt")
    again = assay("run", recipe, "--overwrite")
    assert again.code == 0, again.output
    canaries.intact()
    assert sorted(p.name for p in (out / "data").iterdir())
    assert not (out / ".assay-lock").exists()  # released at the end


def test_an_output_of_another_kind_is_refused(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "shards"
    other.mkdir()
    (other / ".assay-output").write_text('{"written_by": "assay", "kind": "prepare"}')
    (other / "manifest.json").write_text("{}")
    canaries = Canaries(other)
    recipe = write_recipe(project / "r.yaml", project / "corpus" / "docs.jsonl", other)
    refused(assay("run", recipe, "--overwrite"), "assay prepare output, not a run output")
    canaries.intact()


def test_prepare_overwrite_into_its_own_source_is_refused(project: Path, finished_run: Path) -> None:
    curated = shutil.copytree(finished_run, project / "curated")  # a run's output
    canaries = Canaries(project)
    recipe = project / "prepare.yaml"
    recipe.write_text(f"name: p\noutput: {json.dumps(str(curated))}\n"
                      f"tokenizer: {{train: {{vocab_size: 300}}}}\ninput: {json.dumps(str(curated))}\n")
    refused(assay("prepare", recipe, "--overwrite"), "is the input")
    recipe.write_text(recipe.read_text().replace(f"output: {json.dumps(str(curated))}",
                                                 f"output: {json.dumps(str(curated / 'shards'))}"))
    refused(assay("prepare", recipe, "--overwrite"), "is inside the input")
    canaries.intact()


def test_single_file_outputs_never_replace_a_users_file(project: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs.csv"
    runs.write_text("params,tokens,loss\n" + "".join(
        f"{n},{d},{1.7 + 400 / n ** 0.34 + 410 / d ** 0.28:.5f}\n"
        for n in (1e6, 3e6, 1e7, 3e7) for d in (2e7, 6e7, 2e8)))
    canaries = Canaries(project)
    folder, missing, theirs = concurrently(
        partial(assay, "fit", runs, "--bootstrap", "0", "--out", project / "notes"),
        partial(assay, "fit", runs, "--bootstrap", "0", "--plot", project / "missing" / "fit.png"),
        partial(assay, "fit", runs, "--bootstrap", "0", "--out", project / "notes" / "thesis.tex"))
    refused(folder, "is a folder")
    refused(missing, "does not exist")
    refused(theirs, "not written by assay")
    canaries.intact()
    fit = project / "fit.json"
    assert assay("fit", runs, "--bootstrap", "0", "--out", fit).code == 0
    assert assay("fit", runs, "--bootstrap", "0", "--out", fit).code == 0  # its own file: replaced
