"""The ``assay select`` commands: fit selector models that recipe steps then use.

* ``assay select train-classifier --positive P --negative N --out MODEL`` (quality_classifier),
  or ``--labelled L --target FIELD`` for a regression on LLM scores (FineWeb-Edu)
* ``assay select train-lm REFERENCE --out MODEL`` (perplexity)
* ``assay select embed-target TARGET --out MODEL`` (embedding_similarity; extra ``embed``)
* ``assay select preselect DOCS --family RUNS.csv --out MODEL`` (quality_classifier, from a
  family of proxies: PreSelect)
* ``assay select s2l DOCS --run RUN --budget N --out OUT`` (S2L: balanced across clusters of
  loss trajectories)
* ``assay select show MODEL``: what a model folder holds and how it was fitted

``dsir`` needs no separate fit: its step fits the target and raw distributions in the run
(``OUTPUT/models/dsir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from assay.cli.common import console, fail, guarded
from assay.io.ownership import check_folder
from assay.steps.select.classifier import train_classifier, train_regressor
from assay.steps.select.model_files import read_manifest
from assay.steps.select.perplexity import train_lm
from assay.steps.select.sources import ExampleSet, read_labelled, read_texts

select_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Fit selector models (classifier, n-gram LM, embedded targets).")


def _texts(paths: list[str], text_field: str) -> list[str]:
    return read_texts(ExampleSet.of(paths, text_field))


@select_app.command("train-classifier")
@guarded
def train_classifier_command(
    out: Annotated[Path, typer.Option(help="model folder to write")],
    positive: Annotated[list[str] | None, typer.Option(
        help="good examples: JSONL/Parquet, globs, assay outputs")] = None,
    negative: Annotated[list[str] | None, typer.Option(help="random/bad examples, as --positive")] = None,
    labelled: Annotated[list[str] | None, typer.Option(
        help="examples with a numeric label (instead of --positive/--negative): an llm_rate output")] = None,
    target: Annotated[str | None, typer.Option(
        help="the label's field in --labelled, e.g. llm_rate.score (a regression)")] = None,
    threshold: Annotated[float, typer.Option(
        help="regression: the decision reported in the metrics (FineWeb-Edu: 3)")] = 3.0,
    text_field: Annotated[str, typer.Option(help="field holding the text")] = "text",
    ngrams: Annotated[int, typer.Option(help="word n-grams up to this order (DCLM: 2)")] = 2,
    buckets: Annotated[int, typer.Option(help="hash buckets")] = 2**20,
    l2: Annotated[float, typer.Option(help="L2 penalty")] = 1e-3,
    validation: Annotated[float, typer.Option(help="held-out share for the metrics")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed of the held-out split")] = 0,
) -> None:
    """Train a quality classifier (hashed uni+bigram linear model) and save it: binary from
    --positive/--negative, or a regression on a numeric label from --labelled/--target.

    Examples: assay select train-classifier --positive good.jsonl --negative random.jsonl --out models/quality
              assay select train-classifier --labelled out/rated --target llm_rate.score --out models/edu
    """
    if labelled:
        if positive or negative or not target:
            raise fail("give either --labelled with --target, or --positive and --negative")
        check_folder(str(out), "model", labelled)
        texts, values, skipped = read_labelled(ExampleSet.of(labelled, text_field), target)
        if len(texts) < 2:
            raise fail(f"{', '.join(labelled)}: fewer than 2 documents with a number in {target!r}")
        model = train_regressor(texts, values, ngrams=ngrams, num_buckets=buckets, l2=l2,
                                validation=validation, seed=seed, threshold=threshold)
        model.info["sources"] = {"labelled": labelled, "target": target, "skipped_without_label": skipped}
        model.save(str(out))
        held_out = model.info.get("held_out")
        console.print(f"trained a regression on {model.info['training']['documents']:,} documents "
                      f"({held_out['documents'] if held_out else 0:,} held out, {skipped:,} without a "
                      f"label skipped) → {out}")
        if held_out:
            console.print(f"held out ({held_out['documents']:,}): RMSE {held_out['rmse']}, Spearman "
                          f"{held_out['spearman']}, F1 at {threshold:g} {held_out['f1']}")
        return
    if not positive or not negative:
        raise fail("give --positive and --negative (a binary classifier), or --labelled and --target")
    check_folder(str(out), "model", [*positive, *negative])  # refused before the training, not after
    model = train_classifier(_texts(positive, text_field), _texts(negative, text_field), ngrams=ngrams,
                             num_buckets=buckets, l2=l2, validation=validation, seed=seed)
    model.info["sources"] = {"positive": positive, "negative": negative}
    model.save(str(out))
    training, held_out = model.info["training"], model.info.get("held_out")
    console.print(f"trained on {training['positives']:,} positives and {training['negatives']:,} negatives "
                  f"({training['iterations']} L-BFGS iterations) → {out}")
    if held_out:
        console.print(f"held out ({held_out['documents']:,}): AUC {held_out['auc']}, precision "
                      f"{held_out['precision']}, recall {held_out['recall']}, "
                      f"accuracy {held_out['accuracy']}")


@select_app.command("train-lm")
@guarded
def train_lm_command(
    reference: Annotated[list[str], typer.Argument(help="reference text: JSONL/Parquet or assay outputs")],
    out: Annotated[Path, typer.Option(help="model folder to write")],
    text_field: Annotated[str, typer.Option(help="field holding the text")] = "text",
    order: Annotated[int, typer.Option(min=1, max=6, help="n-gram order")] = 3,
    validation: Annotated[float, typer.Option(help="held-out share for the p30/p60 cutoffs")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed of the held-out split")] = 0,
) -> None:
    """Train a Kneser-Ney n-gram language model for the perplexity step and save it.

    Example: assay select train-lm reference.jsonl --out models/lm
    """
    check_folder(str(out), "model", reference)
    model = train_lm(_texts(reference, text_field), order=order, validation=validation, seed=seed)
    model.info["sources"] = {"reference": reference}
    model.save(str(out))
    training = model.info["training"]
    console.print(f"{order}-gram model of {training['texts']:,} texts, {training['tokens']:,} tokens "
                  f"→ {out}")
    if "held_out" in model.info:
        h = model.info["held_out"]
        console.print(f"held-out perplexity ({h['texts']:,} texts): p30 {h['p30']}, median {h['median']}, "
                      f"p60 {h['p60']}")


@select_app.command("embed-target")
@guarded
def embed_target_command(
    target: Annotated[list[str], typer.Argument(help="target examples: JSONL/Parquet or assay outputs")],
    out: Annotated[Path, typer.Option(help="target folder to write")],
    text_field: Annotated[str, typer.Option(help="field holding the text")] = "text",
) -> None:
    """Embed target examples with all-MiniLM-L6-v2 for the embedding_similarity step.

    Example: assay select embed-target target.jsonl --out models/target
    """
    from assay.steps.select.embedding import embed_target, save_target

    check_folder(str(out), "model", target)
    texts = _texts(target, text_field)
    save_target(str(out), embed_target(texts), target)
    console.print(f"embedded {len(texts):,} target texts → {out}")


@select_app.command("preselect")
@guarded
def preselect_command(
    documents: Annotated[list[str], typer.Argument(help="documents to rate: JSONL/Parquet, assay outputs")],
    family: Annotated[Path, typer.Option(help="the proxies and their target scores: a CSV of run,score, or "
                                         "the runs.csv of `assay mix search`")],
    out: Annotated[Path, typer.Option(help="model folder to write (for the quality_classifier step)")],
    higher_is_better: Annotated[bool, typer.Option(help="scores are accuracies (default: losses, lower is "
                                                   "better)")] = False,
    share: Annotated[float, typer.Option(help="share of the rated documents taken as positives (highest "
                                         "strength) and as negatives (lowest)")] = 0.1,
    max_documents: Annotated[int, typer.Option(help="rate at most the first N documents")] = 20_000,
    text_field: Annotated[str, typer.Option(help="field holding the text")] = "text",
    ngrams: Annotated[int, typer.Option(help="word n-grams up to this order")] = 2,
    buckets: Annotated[int, typer.Option(help="hash buckets")] = 2**20,
    seed: Annotated[int, typer.Option(help="seed of the classifier's held-out split")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto")] = "cpu",
    threads: Annotated[int, typer.Option(help="PyTorch threads")] = 1,
) -> None:
    """PreSelect (Shum et al. 2025): rate each document by how well a family of proxies'
    bits per byte on it rank the proxies as their target scores do (predictive strength),
    and train the quality classifier on the documents of highest strength against those of
    lowest; the quality_classifier step then selects with it.

    Example: assay select preselect out/dedup --family out/mix/runs.csv --out models/preselect
    """
    import numpy as np
    import torch

    from assay.steps.select.preselect import (
        family_summary,
        predictive_strength,
        read_family,
        split_by_strength,
    )
    from assay.train.score import document_scores, load_run
    from assay.train.trainer import resolve_device

    if not 0 < share < 0.5:
        raise fail(f"--share must be in (0, 0.5), not {share}")
    models = read_family(family)
    check_folder(str(out), "model", [*documents, str(family)])
    texts = _texts(documents, text_field)[:max_documents]
    if len(texts) < 10:
        raise fail(f"{', '.join(documents)}: {len(texts)} document(s); PreSelect needs at least 10 to rate")
    torch.set_num_threads(threads)
    where = resolve_device(device)
    bpb = np.column_stack([document_scores(load_run(run, where), texts, 0.2, where)["bpb"]
                           for run, _ in models])
    strength = predictive_strength(bpb, np.array([score for _, score in models]), higher_is_better)
    positives, negatives = split_by_strength(strength, share)
    model = train_classifier([texts[i] for i in positives], [texts[i] for i in negatives], ngrams=ngrams,
                             num_buckets=buckets, seed=seed)
    summary = family_summary(models, strength)
    model.info["sources"] = {"documents": documents, "family": str(family)}
    model.info["preselect"] = {**summary, "share": share, "higher_is_better": higher_is_better,
                               "runs": [{"run": run, "score": score} for run, score in models]}
    model.save(str(out))
    console.print(f"predictive strength of {summary['scored']:,} documents under {len(models)} proxies: "
                  f"mean {summary['strength_mean']:.3f} (10th percentile {summary['strength_p10']:.3f}, "
                  f"90th {summary['strength_p90']:.3f})")
    held_out = model.info.get("held_out")
    console.print(f"trained on {len(positives):,} documents of highest strength against {len(negatives):,} "
                  f"of lowest → {out}" + (f"; held-out AUC {held_out['auc']}" if held_out else ""))


@select_app.command("s2l")
@guarded
def s2l_command(
    documents: Annotated[list[str], typer.Argument(help="documents to select from: JSONL/Parquet, outputs")],
    run: Annotated[Path, typer.Option(help="an `assay train --save-every N` run: its kept weights give the "
                                      "loss trajectories")],
    budget: Annotated[int, typer.Option(help="documents to select")],
    out: Annotated[Path, typer.Option(help="output folder: data/ with the selected documents")],
    clusters: Annotated[int, typer.Option(help="k-means clusters of the trajectories")] = 10,
    seed: Annotated[int, typer.Option(help="seed of the clustering and the draws")] = 0,
    text_field: Annotated[str, typer.Option(help="field holding the text")] = "text",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto")] = "cpu",
    threads: Annotated[int, typer.Option(help="PyTorch threads")] = 1,
) -> None:
    """S2L (Yang et al. 2024): each document's loss under every set of weights a small proxy
    kept while training is its trajectory; trajectories are clustered (k-means) and the
    budget is drawn evenly across the clusters, so rare kinds of document are kept too. The
    output's data/ is a curated output that `assay prepare` and `assay run` read.

    Example: assay select s2l out/dedup --run out/proxy --budget 500 --out out/s2l
    """
    import numpy as np
    import pyarrow as pa
    import torch

    from assay.io.ownership import claim_folder
    from assay.io.writers import write_json, write_table
    from assay.steps.select.s2l import balanced_sample, cluster_trajectories
    from assay.steps.select.sources import read_documents
    from assay.train.score import document_scores, load_run
    from assay.train.trainer import resolve_device, saved_checkpoints

    points = saved_checkpoints(run)
    if len(points) < 2:
        raise fail(f"{run}: {len(points)} kept set(s) of weights; a trajectory needs at least 2 "
                   "(train it with --out and --save-every N)")
    table = read_documents(ExampleSet.of(documents, text_field))
    texts = table.column("text").to_pylist()
    torch.set_num_threads(threads)
    where = resolve_device(device)
    with claim_folder(str(out), "selection", inputs=[*documents, str(run)]):
        trajectories = np.column_stack([document_scores(load_run(run, where, weights=point), texts, 0.2,
                                                        where)["loss"] for point in points])
        labels = cluster_trajectories(trajectories, clusters, seed)
        chosen = balanced_sample(labels, budget, seed)
        write_table(table.take(pa.array(chosen)), str(out / "data" / "part-00000-00000.parquet"))
        sizes = np.bincount(labels, minlength=clusters)
        taken = np.bincount(labels[chosen], minlength=clusters)
        write_json(str(out / "s2l.json"), {
            "written_by": "assay", "method": "s2l", "run": str(run), "checkpoints": [p.name for p in points],
            "documents": len(texts), "budget": budget, "selected": int(chosen.size), "seed": seed,
            "clusters": [{"cluster": c, "documents": int(sizes[c]), "selected": int(taken[c])}
                         for c in range(clusters)]})
    sizes_text = ", ".join(map(str, sorted(sizes.tolist())))
    console.print(f"{len(texts):,} documents, trajectories over {len(points)} kept weights, {clusters} "
                  f"clusters (sizes {sizes_text}) → {chosen.size:,} selected in {out}/data")


@select_app.command("show")
@guarded
def show_command(model: Annotated[Path, typer.Argument(help="a model folder")]) -> None:
    """Print a model folder's manifest: kind, parameters, training sets and metrics.

    Example: assay select show models/quality
    """
    try:
        manifest = read_manifest(str(model))
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print_json(orjson.dumps(manifest).decode())
