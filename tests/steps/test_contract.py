"""The contract every registered step keeps, checked for each name in the registry (as
scikit-learn checks every estimator): a new step gets these tests for free.

For each step: an empty table keeps the core schema and comes out with the same columns and
types as a full one; the step pickles (workers receive it that way) and its ``describe()``
parses back into a recipe with the same step; the columns a document step writes are its
declared signals (a global step's, after its fit, are in its kept rows); and run in a
pipeline, every row it rejects carries its name and a reason. A deliberately broken copy of
a step shows that the first check fails when a step drops its schema on an empty table.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import pickle
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from assay import Pipeline
from assay.documents import CLUSTER_ID, CORE_SCHEMA, DUPLICATE_OF, REASON, REJECTED_BY
from assay.recipe import parse_recipe
from assay.steps import GlobalStep, Step, step_class, step_names
from assay.steps.filters.gopher_quality import GopherQuality

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
MARKS = {REASON, DUPLICATE_OF, CLUSTER_ID}


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    """Sixty documents of the bundled sample (many languages, duplicates, junk), plus an
    empty text, an HTML page and one with personal data."""
    with gzip.open(SAMPLE) as f:
        docs = [json.loads(line) for line in f][::20]
    docs = [{"id": d["id"], "text": d["text"], "source": d["source"], "url": d.get("url")} for d in docs]
    docs += [{"id": "empty", "text": "", "source": "x", "url": None},
             {"id": "html", "text": "<html><body><article><p>" + "A real paragraph of text. " * 30
              + "</p></article></body></html>", "source": "x", "url": "https://example.org/a"},
             {"id": "pii", "text": "Write to ann.lee@example.org or call +1 415 555 0100. " * 3,
              "source": "x", "url": None}]
    return docs


@pytest.fixture(scope="module")
def llm_server():
    """The LLM steps' model: the scripted server of tests/llm, answering in every format."""
    spec = importlib.util.spec_from_file_location("scripted_server", ROOT / "tests/llm/scripted_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.ScriptedServer(reply=module.cooperative_reply) as server:
        yield server


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory, documents: list[dict[str, Any]],
           llm_server: Any) -> dict[str, dict]:
    """Parameters for the steps that need a file (a benchmark, a target set, trained models)
    or a model to ask (the LLM steps)."""
    from assay.steps.select.classifier import train_classifier
    from assay.steps.select.embedding import embed_target, save_target
    from assay.steps.select.perplexity import train_lm

    folder = tmp_path_factory.mktemp("contract")
    texts = [d["text"] for d in documents if d["text"]]
    bench = folder / "bench.jsonl"
    bench.write_text("".join(json.dumps({"q": t[:400]}) + "\n" for t in texts[:5]))
    target = folder / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:20]))
    train_classifier(texts[:25], texts[25:], num_buckets=1 << 12).save(str(folder / "classifier"))
    train_lm(texts).save(str(folder / "lm"))
    save_target(str(folder / "embedded"), embed_target(texts[:10]), [str(target)])
    return {
        "proxy_score": {"runs": [str(_trained_proxy(folder, documents))]},
        "decontaminate": {"benchmarks": [{"name": "b", "path": str(bench), "fields": ["q"]}]},
        "dsir": {"targets": [str(target)], "fraction": 0.5},
        "quality_classifier": {"model": str(folder / "classifier")},
        "perplexity": {"model": str(folder / "lm"), "head_max": 1e4, "middle_max": 1e5},
        "embedding_similarity": {"target": str(folder / "embedded")},
        "sample": {"fraction": 0.5},
        **{name: {"llm": {"base_url": llm_server.base_url, "model": "scripted", "max_retries": 0}, **more}
           for name, more in (("llm_rate", {}), ("llm_rephrase", {"styles": ["easy"]}),
                              ("prox_refine", {"max_chunk_lines": 200}),
                              ("entigraph", {"pairs_per_doc": 2}))},
    }


def _trained_proxy(folder: Path, documents: list[dict[str, Any]]) -> Path:
    """A tiny proxy trained a few steps on the documents (the proxy_score step's run)."""
    from assay.prepare import prepare
    from assay.prepare.recipe import parse_prepare_recipe
    from assay.prepare.tokenizer import train_encoder
    from assay.train.trainer import TrainConfig, Trainer

    texts = [d["text"] for d in documents if d["text"]]
    (folder / "tokenizer.json").write_bytes(train_encoder(texts, 300).spec_bytes)
    (folder / "curated" / "data").mkdir(parents=True)
    table = pa.Table.from_pylist([{**d, "metadata": None} for d in documents if d["text"]],
                                 schema=CORE_SCHEMA)
    pq.write_table(table, folder / "curated" / "data" / "part-00000-00000.parquet")
    shards = prepare(parse_prepare_recipe(f"""
name: contract
output: "{folder / 'shards'}"
tokenizer: {{path: "{folder / 'tokenizer.json'}"}}
input: "{folder / 'curated'}"
packing: {{method: concat, context: 32}}
heldout: 0.1
""")).output
    run = folder / "proxy"
    Trainer(TrainConfig(str(shards), out=str(run), model="2x32", context=32, tokens=2048, batch_tokens=256,
                        lr=1e-2, precision="fp32", threads=1)).train()
    return run


def build(name: str, params: dict[str, dict]) -> Step:
    return step_class(name)(**params.get(name, {}))


def core_table(docs: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{**d, "metadata": None} for d in docs], schema=CORE_SCHEMA)


def check_empty_keeps_schema(step: Step, table: pa.Table) -> pa.Table:
    """An empty table keeps every core column, with its type, and comes out with the columns
    (and types) the step gives a full table; returns what the step gives the full table."""
    step.ensure_setup()
    out = step(CORE_SCHEMA.empty_table())
    assert out.num_rows == 0
    for field in CORE_SCHEMA:
        assert field.name in out.column_names, f"{step.name} dropped {field.name} on an empty table"
        assert out.schema.field(field.name).type == field.type, field.name
    full = step(table)
    assert out.schema.names == full.schema.names, (step.name, out.schema.names, full.schema.names)
    for field in full.schema:
        assert out.schema.field(field.name).type == field.type, (step.name, field.name)
    return full


def check_round_trips(step: Step, corpus: Path) -> None:
    """The step pickles, and its description parses back into the same step."""
    assert pickle.loads(pickle.dumps(step)).describe() == step.describe()
    text = yaml.safe_dump({"name": "contract", "input": {"path": str(corpus)}, "output": "unused",
                           "steps": [step.describe()]})
    (parsed,) = parse_recipe(text, check_inputs=False).steps
    assert type(parsed) is type(step) and parsed.describe() == step.describe()


def check_writes_its_signals(step: Step, table: pa.Table, out: pa.Table) -> None:
    """The columns a step adds to a batch (``out``, what it gave ``table``) are its declared
    signals (and the row marks)."""
    added = set(out.column_names) - set(table.column_names) - MARKS
    assert added == set(step.signal_columns()), (step.name, added, step.signal_columns())
    assert out.num_rows == table.num_rows  # steps mark rows; they never drop them


def check_rejections_carry_reasons(step: Step, corpus: Path, out: Path) -> set[str]:
    """In a pipeline, every rejected row names the step and a non-empty reason, kept rows
    carry no reason, and the books balance; returns the signal columns of the kept rows."""
    result = Pipeline([step], name="contract").run(str(corpus), str(out), workers=1)
    assert result.manifest["accounting"]["balanced"]
    for part in sorted((out / "rejected").glob("*.parquet")):
        rejected = pq.read_table(part, columns=[REJECTED_BY, REASON]).to_pylist()
        assert all(r[REJECTED_BY] == step.name and r[REASON] for r in rejected), rejected[:3]
    signals: set[str] = set()
    for part in sorted((out / "data").glob("*.parquet")):
        kept = pq.read_table(part)
        assert REASON not in kept.column_names
        signals |= set(kept.column_names) - set(CORE_SCHEMA.names)
    return signals


@pytest.mark.parametrize("name", step_names())
def test_every_registered_step_keeps_the_contract(name: str, params: dict[str, dict],
                                                  documents: list[dict[str, Any]], tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents))
    step = build(name, params)
    table = core_table(documents)
    # What the step gives the full table, computed once (the slowest steps, an embedding
    # model and the LLM steps, take seconds a call) and checked by each check below.
    full = check_empty_keeps_schema(step, table)
    check_round_trips(step, corpus)
    kept_signals = check_rejections_carry_reasons(build(name, params), corpus, tmp_path / "out")
    if isinstance(step, GlobalStep):
        # Its keys (written in the first stage) and what its fit decides (in the kept rows)
        # are its declared signals; keys only the fit needs may be dropped by then.
        keys = set(full.column_names) - set(CORE_SCHEMA.names)
        assert keys | kept_signals == set(step.signal_columns()), (name, keys, kept_signals)
    else:
        check_writes_its_signals(step, table, full)
        assert kept_signals == set(step.signal_columns())


class _DropsSchemaWhenEmpty(GopherQuality):
    """A broken copy of a real step (not registered): it returns a bare table when empty."""

    def __call__(self, table: pa.Table) -> pa.Table:
        return pa.table({"id": pa.array([], pa.string())}) if table.num_rows == 0 else super().__call__(table)


def test_the_contract_fails_a_step_that_drops_its_schema_on_an_empty_table(
        documents: list[dict[str, Any]]) -> None:
    table = core_table(documents)
    check_empty_keeps_schema(GopherQuality(), table)
    with pytest.raises(AssertionError, match="dropped text on an empty table"):
        check_empty_keeps_schema(_DropsSchemaWhenEmpty(), table)


def test_the_table_of_step_modules_is_what_the_modules_register() -> None:
    """``STEP_MODULES`` names each step's module (a recipe imports only the modules of the
    steps it names); every module under ``assay/steps/`` that registers a step is in it,
    with the names it registers."""
    import pkgutil

    import assay.steps
    from assay.steps.base import _REGISTRY, STEP_MODULES

    for info in pkgutil.walk_packages(assay.steps.__path__, "assay.steps."):
        importlib.import_module(info.name)
    registered = {name: cls.__module__ for name, cls in _REGISTRY.items()
                  if cls.__module__.startswith("assay.steps.")}  # fmt: skip
    assert registered == STEP_MODULES
