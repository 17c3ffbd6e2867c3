"""Hostile recipes and command lines: refused when they load, with the file and line, and
never a traceback; whatever they name is printed as the characters it holds."""

from __future__ import annotations

import json
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from safety_helpers import assay, concurrently, refused, write_jsonl, write_recipe

HOSTILE_TEXT = ("Plain words \x1b[2J\x1b[H cleared? \x1b]0;owned title\x07 and "
                "\x1b]8;;https://evil.example/\x1b\\a link\x1b]8;;\x1b\\ and \u202eoverride")
HOSTILE_IDS = ["[link=https://evil.example/]click[/link]", "[/bold]", "fortune:art:3", "tab\tand\nnewline",
               "\x1b[31mred"]


@pytest.fixture
def corpus(tmp_path: Path, docs: list[dict]) -> Path:
    return write_jsonl(tmp_path / "in" / "docs.jsonl", docs)


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, corpus: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(write_recipe(tmp_path / "r.yaml", corpus, tmp_path / "out").read_text()
                      + "\n".join(lines) + "\n")
    began = time.monotonic()
    outcome = assay("run", recipe)
    refused(outcome, f"{recipe}:", "expands to more than 100,000 nodes")
    assert time.monotonic() - began < 20
    assert not (tmp_path / "out").exists()


def test_duplicate_keys_are_refused_with_both_lines(tmp_path: Path, corpus: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", corpus, tmp_path / "out",
                          steps="  - exact_dedup: {}\nseed: 1\nseed: 2\n")
    refused(assay("run", recipe), f"{recipe}:8:", "key 'seed' is given twice", "first on line 7")


@pytest.mark.parametrize("seed", ["1000000000000000000000000", "-1", "9223372036854775808"])
def test_seeds_outside_64_bits_are_refused_before_the_run(tmp_path: Path, corpus: Path, seed: str) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", corpus, tmp_path / "out", extra=f"seed: {seed}\n")
    refused(assay("run", recipe), f"{recipe}:", "seed")
    assert not (tmp_path / "out").exists()


def test_markup_in_names_is_printed_as_written(tmp_path: Path, corpus: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", corpus, tmp_path / "out", steps="  - '[/red]': {}\n")
    refused(assay("run", recipe), "unknown step '[/red]'")
    named = write_recipe(tmp_path / "n.yaml", corpus, tmp_path / "out",
                         name="[/red][link=https://evil.example/]x :art: \x1b[2J")
    done = assay("run", named)
    assert done.code == 0, done.output
    assert "assay funnel: [/red][link=https://evil.example/]x :art: \\x1b[2J" in done.stdout
    assert "\x1b" not in done.stdout + done.stderr
    shown = assay("inspect", tmp_path / "out")
    assert shown.code == 0 and "[/red][link=https://evil.example/]x :art:" in shown.stdout


def test_a_corrupt_manifest_is_a_clear_error(tmp_path: Path, finished_run: Path) -> None:
    outs = []  # a copy of a finished output for each corrupt manifest, inspected at once
    for i, content in enumerate((b"{not json", b"[1, 2]", b'{"totals": {}, "steps": []}', b"\xff\xfe")):
        outs.append(shutil.copytree(finished_run, tmp_path / f"out{i}"))
        (outs[-1] / "manifest.json").write_bytes(content)
    *corrupt, missing = concurrently(*(partial(assay, "inspect", folder) for folder in [*outs, tmp_path]))
    for folder, outcome in zip(outs, corrupt, strict=True):
        refused(outcome, str(folder / "manifest.json"), "not a manifest written by assay run")
    refused(missing, "manifest.json not found")


def test_absurd_training_settings_are_refused(tmp_path: Path) -> None:
    cases = (("--lr", "nan", "lr must be a positive number"),
             ("--lr", "-1", "lr must be a positive number"),
             ("--warmup", "inf", "warmup must be a number >= 0"),
             ("--seed", "-5", "seed must be between 0"))
    outcomes = concurrently(*(partial(assay, "train", tmp_path, flag, value) for flag, value, _ in cases))
    for (_, _, words), outcome in zip(cases, outcomes, strict=True):
        refused(outcome, words)


def test_an_absurd_vocabulary_is_refused_when_the_recipe_loads(tmp_path: Path) -> None:
    recipe = tmp_path / "p.yaml"
    recipe.write_text(f"name: p\noutput: {tmp_path / 'shards'}\ninput: {tmp_path}\n"
                      "tokenizer:\n  train: {vocab_size: 2e9}\n")
    refused(assay("prepare", recipe), f"{recipe}:5:", "vocab_size")
    assert not (tmp_path / "shards").exists()


@pytest.fixture(scope="module")
def hostile_shards(tmp_path_factory: pytest.TempPathFactory, sample_docs: list[dict]) -> Path:
    """Shards of documents whose ids and text hold markup, emoji codes and escape sequences."""
    root = tmp_path_factory.mktemp("hostile")
    docs = [{**d, "id": f"{i}-{d['id']}"} for i, d in enumerate(sample_docs[:200])]
    docs += [{"id": hostile, "text": f"{HOSTILE_TEXT} {i} " * 30, "source": "hostile"}
             for i, hostile in enumerate(HOSTILE_IDS)]
    corpus = write_jsonl(root / "docs.jsonl", docs)
    assert assay("run", write_recipe(root / "r.yaml", corpus, root / "curated", steps="  []\n")).code == 0
    recipe = root / "p.yaml"
    recipe.write_text(f"name: hostile\noutput: {root / 'shards'}\ninput: {root / 'curated'}\n"
                      "tokenizer:\n  train: {vocab_size: 400}\npacking: {context: 64}\n"
                      "heldout: {fraction: 0.05}\n")
    done = assay("prepare", recipe)
    assert done.code == 0, done.output
    return root / "shards"


def test_inspect_shows_documents_and_ids_inert(hostile_shards: Path) -> None:
    shown = assay("prepare", "--inspect", hostile_shards, "--samples", "205")
    assert shown.code == 0, shown.output
    printed = shown.stdout
    assert "\x1b" not in printed and "\u202e" not in printed and "\x07" not in printed
    assert "\\x1b[2J" in printed and "\\x1b]8;;https://evil.example/" in printed and "\\u202e" in printed
    for shown_id in ("[link=https://evil.example/]click[/link]", "[/bold]", "fortune:art:3",
                     "tab\\tand\\nnewline", "\\x1b[31mred"):
        assert f"id {shown_id} (" in printed, shown_id


def test_token_ids_beyond_the_vocabulary_are_an_error(hostile_shards: Path, tmp_path: Path) -> None:
    broken = tmp_path / "shards"
    shutil.copytree(hostile_shards, broken)
    for part in (broken / "concat").rglob("*.bin"):
        tokens = np.fromfile(part, dtype=np.uint16)
        tokens[::50] = 60_000
        tokens.tofile(part)
    outcome = assay("train", broken, "--tokens", "20k", "--batch-tokens", "2k")
    refused(outcome, str(broken), "outside the tokenizer's vocabulary of 400")


def test_duplicate_ids_across_inputs_follow_the_policy(tmp_path: Path, docs: list[dict]) -> None:
    write_jsonl(tmp_path / "in" / "wiki.jsonl", [{**d, "source": "wiki"} for d in docs[:10]])
    write_jsonl(tmp_path / "in" / "books.jsonl", [{**d, "source": "books"} for d in docs[:10]])
    pattern = tmp_path / "in" / "*.jsonl"
    policies = {"keep": "", "prefixed": "  id_policy: prefix_source\n", "failed": "  id_policy: fail\n"}
    keep, prefixed, failed = concurrently(*(  # three runs into three outputs
        partial(assay, "run", write_recipe(tmp_path / f"{out}.yaml", pattern, tmp_path / out, steps="  []\n",
                                           extra=extra)) for out, extra in policies.items()))
    assert keep.code == 0, keep.output
    ids = json.loads((tmp_path / "keep" / "manifest.json").read_text())["ids"]
    assert ids["duplicates"] == 10 and ids["repeated_ids"] == 10 and ids["policy"] == "keep"
    assert ids["examples"][0] == {"id": "d0", "files": ["books.jsonl", "wiki.jsonl"], "documents": 2}
    assert "10 document(s) share an id with an earlier document" in keep.stderr
    assert prefixed.code == 0 and "share an id" not in prefixed.stderr
    manifest = json.loads((tmp_path / "prefixed" / "manifest.json").read_text())
    assert manifest["ids"]["duplicates"] == 0
    refused(failed, "id_policy is fail", "'d0' 2 times in books.jsonl, wiki.jsonl")


def test_generated_ids_name_the_file_below_the_common_folder(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        write_jsonl(tmp_path / "in" / folder / "x.jsonl", [{"text": f"text {folder} {i}"} for i in range(3)])
    out = tmp_path / "out"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: gen\ninput:\n  path: [{tmp_path / 'in' / 'a' / 'x.jsonl'}, "
                      f"{tmp_path / 'in' / 'b' / 'x.jsonl'}]\noutput: {out}\nsteps: []\n")
    done = assay("run", recipe)
    assert done.code == 0, done.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ids"]["duplicates"] == 0
    ids = sorted(i for part in (out / "data").glob("*.parquet")
                 for i in pq.read_table(part).column("id").to_pylist())
    assert ids == [f"{f}/x.jsonl:{n}" for f in "ab" for n in (1, 2, 3)]
