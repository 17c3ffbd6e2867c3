"""The Ray executor on a real two-node cluster writes what the local executor writes: the
same bytes in data/, rejected/, quarantine/ and the artefacts, and the same manifest but for
timings and the executor, for the example recipes and the engine's kinds of step."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cluster_helpers import HERE, ROOT, RayCluster, assert_same_output, without_keys

EXAMPLES = ROOT / "examples"
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
BENCHMARKS = ROOT / "tests" / "fixtures" / "benchmarks"


def write_recipe(folder: Path, recipe: dict) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def example(name: str, folder: Path) -> Path:
    recipe = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    recipe["input"]["path"] = str(ROOT / recipe["input"]["path"])
    recipe["output"] = str(folder / "out")
    recipe["executor"] = {"shard_mb": 1.0}  # 16 shards of the sample
    return write_recipe(folder, recipe)


def curation(folder: Path) -> Path:
    """pii, decontaminate and dsir over the sample plus a file of broken records."""
    broken = folder / "broken.jsonl"
    broken.write_bytes(b'{"id": "ok", "text": "A fine short document."}\n{"id": \n'
                       b'{"id": "no-text"}\n"a string"\n\xff\xfe\n')
    recipe = {
        "name": "curation",
        "input": {"path": [str(ROOT / "data/sample/sample_text.jsonl.gz"), str(broken)]},
        "output": str(folder / "out"),
        "executor": {"shard_mb": 1.0},
        "steps": [
            {"pii": {"mode": "placeholder"}},
            {"decontaminate": {"benchmarks": [
                {"path": str(BENCHMARKS / "HumanEval.jsonl.gz"),
                 "fields": ["prompt", "canonical_solution"], "id_field": "task_id"},
                {"path": str(BENCHMARKS / "gsm8k_test.jsonl.gz"), "fields": ["question", "answer"]},
            ]}},
            {"dsir": {"targets": [str(ROOT / "tests/fixtures/agreement_docs.jsonl")], "fraction": 0.5}},
        ],
    }
    return write_recipe(folder, recipe)


def run_local(recipe: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, str(HERE / "drive.py"), "run", str(recipe), *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def both_ways(cluster: RayCluster, recipe: Path, folder: Path, workers: str = "2") -> tuple[Path, Path]:
    """Run ``recipe`` locally then on the cluster, into the same path; return both outputs."""
    run_local(recipe, "--executor", "local", "--workers", workers)
    shutil.move(folder / "out", folder / "local")
    outcome = cluster.assay("run", recipe, "--executor", "ray", "--address", cluster.address)
    assert outcome.code == 0, outcome.output
    shutil.move(folder / "out", folder / "ray")
    return folder / "local", folder / "ray"


@pytest.fixture(scope="module")
def dedup_both_ways(cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The dedup example behind a step that sleeps a random time per shard, so tasks finish
    in an order unlike the one they started in (it keeps every row and writes no column), run
    both ways; and its log of which node finished the task at which first document. One run
    for the tests of the example, of the order and of prepare."""
    folder = tmp_path_factory.mktemp("dedup")
    recipe = yaml.safe_load(example("dedup", folder).read_text())
    log = folder / "finished.log"
    recipe["steps"].insert(0, {"shuffle_for_test": {"max_sleep_s": 0.8, "log": str(log)}})
    return (*both_ways(cluster, write_recipe(folder, recipe), folder), log)


def test_dedup_example_is_byte_identical_on_ray(dedup_both_ways: tuple[Path, Path, Path]) -> None:
    local, ray, _ = dedup_both_ways
    assert_same_output(local, ray)
    executor = json.loads((ray / "manifest.json").read_text())["executor"]
    assert executor["kind"] == "ray" and executor["workers"] == 2


@pytest.mark.parametrize("name", ["web-quality", "warc-to-text"])
def test_examples_are_byte_identical_on_ray(cluster: RayCluster, tmp_path: Path, name: str) -> None:
    local, ray = both_ways(cluster, example(name, tmp_path), tmp_path)
    assert_same_output(local, ray)


def test_pii_decontaminate_dsir_and_quarantine_are_byte_identical_on_ray(
    cluster: RayCluster, tmp_path: Path
) -> None:
    local, ray = both_ways(cluster, curation(tmp_path), tmp_path)
    assert_same_output(local, ray)
    manifest = json.loads((ray / "manifest.json").read_text())
    assert manifest["totals"]["quarantined"] == 4  # the broken file's bad records, not lost
    assert (ray / "models" / "dsir").is_dir() and (ray / "reports" / "decontaminate").is_dir()


def test_tasks_finishing_out_of_order_on_both_nodes_change_nothing(
    dedup_both_ways: tuple[Path, Path, Path]
) -> None:
    local, ray, log = dedup_both_ways
    assert_same_output(local, ray)

    with gzip.open(SAMPLE, "rt", encoding="utf-8") as lines:
        position: dict[str, int] = {}
        for i, line in enumerate(lines):
            position.setdefault(json.loads(line)["id"], i)
    finished = [line.split("\t") for line in log.read_text().splitlines()]
    on_ray = [first for node, first in finished if node != "here"]
    assert sorted(on_ray) == sorted(first for node, first in finished if node == "here")
    assert len({node for node, _ in finished if node != "here"}) == 2, "one node ran every task"
    assert on_ray != sorted(on_ray, key=position.__getitem__), "the sleeps did not reorder the tasks"


def test_prepare_tokenizing_on_ray_writes_the_same_shards(
    cluster: RayCluster, tmp_path: Path, dedup_both_ways: tuple[Path, Path, Path]
) -> None:
    curated = dedup_both_ways[0]
    spec = yaml.safe_load((EXAMPLES / "prepare.yaml").read_text())
    for source in spec["mixture"]["sources"].values():
        source["path"] = str(curated)
    spec["output"] = str(tmp_path / "shards")
    recipe = tmp_path / "prepare.yaml"
    recipe.write_text(yaml.safe_dump(spec, sort_keys=False))
    shards = {}
    for kind in ("local", "ray"):
        args = ["--executor", "ray", "--address", cluster.address] if kind == "ray" else []
        outcome = cluster.assay("prepare", recipe, *args)
        assert outcome.code == 0, outcome.output
        shards[kind] = tmp_path / kind
        (tmp_path / "shards").rename(shards[kind])
    files = {kind: {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                    if p.is_file() and p.name not in ("manifest.json", ".assay-lock")}
             for kind, root in shards.items()}
    assert files["local"].keys() == files["ray"].keys() and len(files["local"]) > 5
    assert files["local"] == files["ray"]
    manifests = [without_keys(json.loads((root / "manifest.json").read_text()), {"timings", "created"})
                 for root in shards.values()]
    assert manifests[0] == manifests[1]


def test_mix_search_proxies_on_ray_give_the_same_rows(
    cluster: RayCluster, tmp_path: Path, dedup_both_ways: tuple[Path, Path, Path]
) -> None:
    curated = dedup_both_ways[0]
    rows = {}
    for kind in ("local", "ray"):
        spec = tmp_path / f"{kind}.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "tiny-search", "output": str(tmp_path / kind), "seed": 0,
            "domains": {"fortunes": {"path": str(curated), "select": ["fortunes"]},
                        "python": {"path": str(curated), "select": ["python3.11-doc"]},
                        "udhr": {"path": str(curated), "select": ["udhr2 (nltk_data)"]}},
            "tokenizer": {"train": {"vocab_size": 512}},
            "heldout": {"fraction": 0.1, "max_documents": 4},
            "target": {"domains": ["python"]},
            "proxy": {"model": "2x32", "tokens": 4096, "context": 32, "batch_tokens": 256, "lr": 0.01},
            "mixtures": 5, "max_epochs": 16}, sort_keys=False))
        args = ["--executor", "ray", "--address", cluster.address] if kind == "ray" else []
        outcome = cluster.assay("mix", "search", spec, *args)
        assert outcome.code == 0, outcome.output
        with open(tmp_path / kind / "runs.csv", newline="") as f:
            rows[kind] = [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
    assert len(rows["local"]) == 5 and rows["ray"] == rows["local"]
