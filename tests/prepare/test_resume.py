"""``assay prepare`` killed part-way (SIGKILL, a real process) and finished by ``--resume``:
every file byte-identical to an uninterrupted run's; a resume of anything else refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.io.files import resolve_inputs
from assay.prepare import PrepareError, parse_prepare_recipe, prepare
from assay.prepare import progress as progress_module
from assay.prepare import writing as writing_module
from assay.prepare.progress import fingerprint

# Runs `assay prepare RECIPE` in a process that kills itself (SIGKILL) right after its N-th
# progress report (a tokenized batch or an output file finished) or its N-th rename of a
# finished file into place (so a bucket can be left with its .bin published, its .idx not).
KILLER = """
import os, signal, sys
import assay.prepare.progress as progress
from assay.cli import app

recipe, where, after = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = [0]

def killing(original):
    def call(*args, **kwargs):
        result = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call

if where == "report":
    progress.Progress.record = killing(progress.Progress.record)
else:
    os.replace = killing(os.replace)
app(["prepare", recipe])
"""

RECIPE = """
name: resume
output: "{out}"
seed: 5
tokenizer: {{train: {{vocab_size: 400, max_mb: 0.3}}}}
heldout: 0.05
batch_rows: 100
mixture:
  total_tokens: 1500000
  sources:
    guide: {{path: "{curated}", select: [debian-installation-guide], weight: 0.6}}
    rest: {{path: "{curated}", select: [fortunes, python3.11-doc, "udhr2 (nltk_data)"], weight: 0.4}}
  phases:
    - {{name: main, fraction: 0.8}}
    - {{name: anneal, fraction: 0.2, weights: {{guide: 1.0}}}}
packing: {{method: both, min_log2: 5, max_log2: 10, shard_tokens: 200000}}
"""


def recipe_file(folder: Path, curated: Path, seed: int = 5) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prepare.yaml"
    path.write_text(RECIPE.format(out=folder / "shards", curated=curated).replace("seed: 5", f"seed: {seed}"))
    return path


def files_of(root: Path) -> dict[str, bytes]:
    """Every file of a prepared output but its manifest, by path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", ".assay-lock")}


def manifest_of(root: Path) -> dict[str, Any]:
    """The manifest without what differs between two runs of one recipe (times, the output's
    path, the count of resumed pieces)."""
    m = orjson.loads((root / "manifest.json").read_bytes())
    for key in ("created", "timings", "resumed_pieces"):
        m.pop(key)
    m["recipe"].pop("output")
    return m


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, curated: Path) -> tuple[Path, dict[str, list[str]]]:
    """An uninterrupted run, and what it did in order: its progress reports and its renames."""
    recipe = recipe_file(tmp_path_factory.mktemp("reference"), curated)
    done: dict[str, list[str]] = {"report": [], "rename": []}
    record, replace = progress_module.Progress.record, os.replace
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(progress_module.Progress, "record",
                      lambda self, key, report: (done["report"].append(key), record(self, key, report)))
        patch.setattr(writing_module.os, "replace",
                      lambda a, b: (done["rename"].append(str(b)), replace(a, b)))
        result = prepare(parse_prepare_recipe(recipe.read_text()))
    assert result.manifest["resumed_pieces"] == 0
    return result.output, done


def kill_part_way(recipe: Path, where: str, after: int) -> None:
    """Run the recipe in a process that SIGKILLs itself at that point; check it died there."""
    proc = subprocess.run([sys.executable, "-c", KILLER, str(recipe), where, str(after)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    out = recipe.parent / "shards"
    assert (out / "_progress" / "fingerprint.json").is_file() and not (out / "manifest.json").exists()


def kill_points(done: dict[str, list[str]]) -> dict[str, tuple[str, int]]:
    reports = done["report"]
    tokenize = sum(key.startswith("tokenize/") for key in reports)
    assert tokenize >= 10 and len(reports) - tokenize >= 10, reports  # enough pieces to stop between
    # The last rename of a bucket's .bin: killed there, its .idx and pieces are not written yet.
    bucket_bin = max(i for i, path in enumerate(done["rename"]) if "/decompose/phase-00" in path
                     and path.endswith(".bin"))
    return {"while tokenizing": ("report", tokenize // 2),
            "while writing shards": ("report", tokenize + (len(reports) - tokenize) // 2),
            "with a bucket half published": ("rename", bucket_bin + 1)}


@pytest.mark.parametrize("point", ["while tokenizing", "while writing shards",
                                   "with a bucket half published"])
def test_a_killed_prepare_resumes_to_the_same_bytes(tmp_path: Path, curated: Path,
                                                    reference: tuple[Path, dict[str, list[str]]],
                                                    point: str) -> None:
    expected, done = reference
    where, after = kill_points(done)[point]
    recipe = recipe_file(tmp_path, curated)
    kill_part_way(recipe, where, after)
    out = tmp_path / "shards"
    if where == "rename":  # the bucket's tokens are in place, its index is not
        published = out / Path(done["rename"][after - 1]).relative_to(expected)
        assert published.suffix == ".bin" and published.is_file()
        assert not published.with_suffix(".idx").exists()
        assert published.with_name(f".{published.stem}.idx.tmp").is_file()
    resumed = CliRunner().invoke(app, ["prepare", str(recipe), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert files_of(out) == files_of(expected)
    assert manifest_of(out) == manifest_of(expected)
    assert orjson.loads((out / "manifest.json").read_bytes())["resumed_pieces"] > 0
    assert not (out / "_progress").exists() and not (out / "_work").exists()
    assert not list(out.rglob("*.tmp"))


def test_what_cannot_be_resumed_is_refused(tmp_path: Path, curated: Path,
                                           reference: tuple[Path, dict[str, list[str]]]) -> None:
    expected, _ = reference
    recipe = recipe_file(tmp_path, curated)
    out = tmp_path / "shards"
    runner = CliRunner()
    nothing = runner.invoke(app, ["prepare", str(recipe), "--resume"])
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.output
    assert not out.exists()
    both = runner.invoke(app, ["prepare", str(recipe), "--resume", "--overwrite"])
    assert both.exit_code == 2 and "contradict" in both.output

    kill_part_way(recipe, "report", 3)
    left = files_of(out)
    other = recipe_file(tmp_path / "other", curated, seed=6)
    other.write_text(other.read_text().replace(str(tmp_path / "other" / "shards"), str(out)))
    for args in (["--resume"], []):
        refused = runner.invoke(app, ["prepare", str(other), *args])
        assert refused.exit_code == 2, refused.output
        assert "error:" in refused.output and "different recipe, input or versions" in refused.output
        assert "Traceback" not in refused.output
        assert files_of(out) == left  # the earlier run's work is kept for its own resume

    work = sorted((out / "_work" / "tokens").glob("*.idx"))[0]
    work.rename(work.with_suffix(".gone"))
    broken = runner.invoke(app, ["prepare", str(recipe), "--resume"])
    assert broken.exit_code == 2 and "work file of a finished batch is missing" in broken.output
    work.with_suffix(".gone").rename(work)

    # The same command again finishes it too (as `assay run` does); a finished one has nothing to resume.
    again = runner.invoke(app, ["prepare", str(recipe)])
    assert again.exit_code == 0, again.output
    assert files_of(out) == files_of(expected)
    finished = runner.invoke(app, ["prepare", str(recipe), "--resume"])
    assert finished.exit_code == 0 and "nothing to resume" in finished.output
    refused = runner.invoke(app, ["prepare", str(other), "--resume"])
    assert refused.exit_code == 2 and "different recipe" in refused.output
    assert runner.invoke(app, ["prepare", str(recipe)]).exit_code == 2  # a finished one needs --overwrite
    with pytest.raises(PrepareError, match="already holds shards"):
        prepare(parse_prepare_recipe(recipe.read_text()))


def test_the_fingerprint_follows_every_byte_of_the_inputs(tmp_path: Path, tokenizer_file: Path) -> None:
    data = tmp_path / "docs.jsonl"
    data.write_bytes(b'{"id": "a", "text": "one"}\n')
    base = f'name: a\noutput: "{tmp_path}/out"\ntokenizer: {{path: "{tokenizer_file}"}}\ninput: "{data}"\n'
    versions = {"assay": "1"}

    def mark(recipe: str, versions: dict[str, str] = versions) -> str:
        inputs = resolve_inputs(str(data))
        return fingerprint(parse_prepare_recipe(recipe), inputs, str(tokenizer_file), versions)

    first = mark(base)
    assert mark(base.replace("name: a", "name: b").replace("/out", "/moved")) == first
    assert mark(base + "seed: 1\n") != first
    assert mark(base + "batch_rows: 10\n") != first  # the work files are cut by it
    assert mark(base, {"assay": "2"}) != first
    data.write_bytes(b'{"id": "a", "text": "two"}\n')  # same size, other bytes
    assert mark(base) != first
