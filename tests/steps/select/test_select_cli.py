"""`assay select`: train models from files, show them, and use them from a recipe."""

from __future__ import annotations

import json
from pathlib import Path

from select_helpers import make_docs, read_folder, write_jsonl
from typer.testing import CliRunner

from assay.cli import app

runner = CliRunner()


def test_train_classifier_show_and_run_a_recipe(tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", make_docs(1, {"ka": 60}, "g"))
    bad = write_jsonl(tmp_path / "bad.jsonl", make_docs(2, {"mi": 60}, "b"))
    model = tmp_path / "clf"
    result = runner.invoke(app, ["select", "train-classifier", "--positive", str(good),
                                 "--negative", str(bad), "--out", str(model), "--buckets", "4096"])
    assert result.exit_code == 0, result.output
    assert "AUC 1.0" in result.output
    shown = runner.invoke(app, ["select", "show", str(model)])
    assert shown.exit_code == 0 and '"kind": "quality_classifier"' in shown.output

    corpus = write_jsonl(tmp_path / "corpus.jsonl", make_docs(3, {"ka": 10, "mi": 10}, "c"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: q\ninput:\n  path: {corpus}\noutput: {tmp_path / 'out'}\nsteps:\n"
                      f"  - quality_classifier: {{model: {model}, top_fraction: 0.5}}\n")
    ran = runner.invoke(app, ["run", str(recipe), "--workers", "1"])
    assert ran.exit_code == 0, ran.output
    kept = read_folder(tmp_path / "out" / "data").column("id").to_pylist()
    assert sorted(i[1:3] for i in kept) == ["ka"] * 10


def test_train_lm_reports_its_held_out_cutoffs(tmp_path: Path) -> None:
    reference = write_jsonl(tmp_path / "ref.jsonl", make_docs(1, {"zo": 50}, "z"))
    result = runner.invoke(app, ["select", "train-lm", str(reference), "--out", str(tmp_path / "lm"),
                                 "--order", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "lm" / "manifest.json").read_text())
    assert manifest["kind"] == "ngram_lm" and manifest["params"]["order"] == 2
    assert f"p30 {manifest['held_out']['p30']}" in result.output


def test_missing_inputs_and_models_are_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.jsonl")
    result = runner.invoke(app, ["select", "train-lm", missing, "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "matches no file" in result.output
    assert runner.invoke(app, ["select", "show", str(tmp_path)]).exit_code == 2


def test_train_classifier_on_labels_of_an_assay_output(tmp_path: Path) -> None:
    """--labelled/--target: a regression on a numeric column (an llm_rate output's scores,
    here written by hand into a Parquet output); rows without a number are skipped, counted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = make_docs(4, {"ka": 40, "mi": 40}, "d")
    scores = [5.0 if d["id"][1:3] == "ka" else 1.0 for d in docs]
    scores[0] = None  # an unparseable answer
    out = tmp_path / "rated"
    (out / "data").mkdir(parents=True)
    (out / "manifest.json").write_text("{}")
    pq.write_table(pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs],
                             "source": ["s"] * len(docs), "llm_rate.score": scores}),
                   out / "data" / "part-00000-00000.parquet")
    model = tmp_path / "edu"
    result = runner.invoke(app, ["select", "train-classifier", "--labelled", str(out), "--target",
                                 "llm_rate.score", "--out", str(model), "--buckets", "4096"])
    assert result.exit_code == 0, result.output
    assert "trained a regression on 71 documents (8 held out, 1 without a label skipped)" in result.output
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["params"]["target"] == "regression" and manifest["held_out"]["spearman"] > 0.8
    assert manifest["sources"] == {"labelled": [str(out)], "target": "llm_rate.score",
                                   "skipped_without_label": 1}

    both = runner.invoke(app, ["select", "train-classifier", "--labelled", str(out), "--positive", str(out),
                               "--target", "x", "--out", str(tmp_path / "m2")])
    assert both.exit_code != 0 and "either --labelled with --target" in both.output
    none = runner.invoke(app, ["select", "train-classifier", "--labelled", str(out), "--target", "nope",
                               "--out", str(tmp_path / "m3")])
    assert none.exit_code != 0 and "fewer than 2 documents with a number in 'nope'" in none.output


def test_labels_of_rejected_documents_are_labels_too(tmp_path: Path) -> None:
    """An llm_rate run with min_scores puts the low scores in rejected/: they train the
    regression too, or the target would be cut off at the threshold."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = make_docs(5, {"ka": 30, "mi": 30}, "d")
    out = tmp_path / "rated"
    for folder in ("data", "rejected"):
        (out / folder).mkdir(parents=True)
    (out / "manifest.json").write_text("{}")
    high = [d for d in docs if d["id"][1:3] == "ka"]
    low = [d for d in docs if d["id"][1:3] == "mi"]
    pq.write_table(pa.table({"id": [d["id"] for d in high], "text": [d["text"] for d in high],
                             "source": ["s"] * 30, "llm_rate.score": [4.0] * 30}),
                   out / "data" / "part.parquet")
    pq.write_table(pa.table({"id": [d["id"] for d in low], "text": [d["text"] for d in low],
                             "source": ["s"] * 30, "llm_rate.score": [1.0] * 30,
                             "rejected_by": ["llm_rate"] * 30, "reason": ["llm_rate_low_score"] * 30}),
                   out / "rejected" / "part-s0.parquet")
    result = runner.invoke(app, ["select", "train-classifier", "--labelled", str(out), "--target",
                                 "llm_rate.score", "--out", str(tmp_path / "m"), "--buckets", "4096"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["training"]["documents"] + manifest["held_out"]["documents"] == 60
    assert manifest["training"]["target_mean"] < 4.0
