"""The LLM steps run by the engine against a scripted server on 127.0.0.1: what each step
sends and records, the reasons of every failure (nothing lost), the manifest's LLM figures,
and a killed run resumed with no answer paid for twice and a byte-identical output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scripted_server import ScriptedServer, cooperative_reply

from assay.recipe import load_recipe
from assay.specfile import RecipeError
from assay.steps.llm.entigraph import parse_entities

pytest.importorskip("aiohttp")


@pytest.fixture
def server():
    with ScriptedServer(hang_s=1.5, reply=cooperative_reply) as running:
        yield running


def write_recipe(tmp_path: Path, docs: list[dict], steps: str, server: ScriptedServer, llm: str = "",
                 name: str = "out") -> Path:
    data = tmp_path / "docs.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(f"""\
name: llm-test
input: {{path: {data}}}
output: {tmp_path / name}
executor: {{workers: 1, shard_mb: 0.0005}}
llm:
  base_url: {server.base_url}
  model: scripted
  timeout_s: 0.5
  max_retries: 2
  backoff_s: 0.01
  price_in_per_m: 1.0
  price_out_per_m: 2.0
{llm}
steps:
{steps}
""")
    return recipe


def assay(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "assay", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def table(folder: Path) -> pa.Table:
    parts = [pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]
    return pa.concat_tables(parts, promote_options="default") if parts else pa.table({})


def by_id(folder: Path) -> dict[str, dict]:
    return {row["id"]: row for row in table(folder).to_pylist()}


def test_llm_rate_scores_decides_and_accounts_for_every_failure(tmp_path: Path,
                                                                server: ScriptedServer) -> None:
    docs = [{"id": f"s{k}", "text": f"page score={k} about things"} for k in range(6)]
    docs += [{"id": "noscore", "text": "a page the model will not rate"},
             {"id": "err", "text": "mode=500 this page breaks the server"},
             {"id": "bad", "text": "mode=malformed the answer is not JSON"},
             {"id": "retry", "text": "mode=429-once score=4 rate limited once"}]
    steps = "  - llm_rate: {rubric: fineweb_edu, min_scores: {score: 3}}"
    recipe = write_recipe(tmp_path, docs, steps, server)
    assay("run", str(recipe))
    out = tmp_path / "out"
    kept, rejected = by_id(out / "data"), by_id(out / "rejected")
    assert sorted(kept) == ["retry", "s3", "s4", "s5"]
    assert {k: v["reason"] for k, v in rejected.items()} == {
        "s0": "llm_rate_low_score", "s1": "llm_rate_low_score", "s2": "llm_rate_low_score",
        "noscore": "llm_unparseable", "err": "llm_error", "bad": "llm_error"}
    assert kept["s4"]["llm_rate.score"] == 4.0
    assert rejected["noscore"]["llm_rate.answer"] == "I would rather not say."  # the raw answer is kept
    assert "HTTP 500" in rejected["err"]["llm_rate.error"]
    # The prompt sent is FineWeb-Edu's, with the document in place of its placeholder.
    sent = next(t for t in server.seen if "score=5" in t)
    assert sent.startswith("Below is an extract from a web page.") and "The extract:\npage score=5" in sent

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting"]["balanced"] and manifest["totals"]["in"] == len(docs)
    llm = manifest["steps"][0]["llm"]
    assert llm["requests"] == 8 and llm["cache_hits"] == 0  # 10 documents, 2 without an answer
    assert llm["retries"] >= 1 + 2  # the 429 once, the 500 twice
    assert llm["errors"] == {"llm_error": 2}
    assert llm["tokens_in"] > 0 and llm["cost_usd"] == pytest.approx(
        (llm["tokens_in"] * 1.0 + llm["tokens_out"] * 2.0) / 1e6, rel=1e-4)
    assert 0 < llm["latency_p50_s"] <= llm["latency_p95_s"]
    assert manifest["recipe"]["llm"]["model"] == "scripted"

    # A repeated run (--overwrite keeps the cache) sends only what failed before.
    before = sum(server.seen.values())
    assay("run", str(recipe), "--overwrite")
    again = json.loads((out / "manifest.json").read_text())["steps"][0]["llm"]
    assert again["cache_hits"] == 8 and again["requests"] == 0
    assert sum(server.seen.values()) - before == 3 + 1  # the failures again: the 500 with its retries


def test_spending_cap_skips_with_its_own_reason(tmp_path: Path, server: ScriptedServer) -> None:
    docs = [{"id": f"d{k}", "text": f"page score=4 number {k}"} for k in range(7)]
    recipe = write_recipe(tmp_path, docs, "  - llm_rate: {}", server, llm="  max_requests: 3")
    assay("run", str(recipe))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    step = manifest["steps"][0]
    assert step["docs_kept"] == 3 and step["reasons"] == {"llm_budget_skipped": 4}
    assert step["llm"]["requests"] == 3 and manifest["accounting"]["balanced"]
    # --overwrite is a new run with a new budget: the three answers come from the cache, free,
    # and three more documents are asked.
    assay("run", str(recipe), "--overwrite")
    step = json.loads((tmp_path / "out" / "manifest.json").read_text())["steps"][0]
    assert step["llm"]["cache_hits"] == 3 and step["llm"]["requests"] == 3
    assert step["docs_kept"] == 6 and step["reasons"] == {"llm_budget_skipped": 1}


def test_one_step_object_run_into_two_outputs_uses_each_outputs_cache(tmp_path: Path,
                                                                     server: ScriptedServer) -> None:
    from assay import Pipeline
    from assay.steps.llm.rate import LLMRate

    corpus = tmp_path / "docs.jsonl"
    docs = [{"id": f"d{k}", "text": f"page score=3 n{k}"} for k in range(4)]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    step = LLMRate(llm={"base_url": server.base_url, "model": "scripted"})
    pipeline = Pipeline([step])
    first = pipeline.run(str(corpus), str(tmp_path / "a"), workers=1).manifest["steps"][0]["llm"]
    second = pipeline.run(str(corpus), str(tmp_path / "b"), workers=1).manifest["steps"][0]["llm"]
    assert (first["requests"], second["requests"]) == (4, 4) and second["cache_hits"] == 0
    assert all((tmp_path / out / "cache" / "llm.sqlite").is_file() for out in ("a", "b"))


def test_llm_rephrase_writes_each_style_as_a_new_document(tmp_path: Path, server: ScriptedServer) -> None:
    long_text = " ".join(f"Sentence {i} has five words." for i in range(60))  # 300 words
    docs = [{"id": "a", "text": long_text}, {"id": "b", "text": "One short sentence here."},
            {"id": "c", "text": "mode=500 fails every time."}]
    recipe = write_recipe(tmp_path, docs, "  - llm_rephrase: {styles: [easy, qa], max_chunk_tokens: 100}",
                          server)
    assay("run", str(recipe))
    out = tmp_path / "out"
    generated = by_id(out / "generated")
    assert sorted(generated) == ["a#wrap-easy", "a#wrap-qa", "b#wrap-easy", "b#wrap-qa"]
    row = generated["a#wrap-qa"]
    assert row["rephrased_from"] == "a" and row["style"] == "qa" and row["generated_by"] == "llm_rephrase"
    # 60 sentences of 5 words (7 tokens at 1.3 a word), cut at sentence ends into chunks of at
    # most 100 tokens: 14 sentences a chunk, in order, the text's every word sent once.
    words = [int(re.search(r"\d+", c).group()) for c in row["text"].split("\n\n")]
    assert words == [70, 70, 70, 70, 20]
    assert sorted(by_id(out / "data")) == ["a", "b"]  # originals kept
    assert by_id(out / "rejected")["c"]["reason"] == "llm_error"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["generated"] == 4 and manifest["steps"][0]["generated"] == 4
    assert manifest["accounting"]["balanced"]
    qa_prompt = next(t for t in server.seen if t.startswith("Convert the following paragraph"))
    assert qa_prompt.split("\n", 1)[0].endswith('"Question:" followed by "Answer:":')


def test_prox_refine_runs_only_whitelisted_programs(tmp_path: Path, server: ScriptedServer) -> None:
    body = "\n".join(f"Line {i} of teh article has enough words to count here." for i in range(6))
    docs = [{"id": "nav", "text": f"NAV home | about\n{body}\nNAV footer links"},
            {"id": "spam", "text": "SPAM buy now " * 5},
            {"id": "short", "text": "NAV only navigation\nNAV more navigation"},
            {"id": "hostile", "text": f"HOSTILE page\n{body}"},
            {"id": "tiny", "text": "Three words only."}]
    recipe = write_recipe(tmp_path, docs, "  - prox_refine: {max_chunk_lines: 4}", server)
    assay("run", str(recipe))
    out = tmp_path / "out"
    kept, rejected = by_id(out / "data"), by_id(out / "rejected")
    assert kept["nav"]["text"] == body.replace("teh", "the")
    assert "-NAV home | about" in kept["nav"]["prox_refine.diff"]
    assert rejected["spam"]["reason"] == "prox_drop_doc"
    assert rejected["short"]["reason"] == "prox_too_little_left"
    assert rejected["short"]["text"] == docs[2]["text"]  # a rejected row keeps its text
    # The hostile chunk's program has two unparseable calls: ignored, the chunk kept as it was.
    assert kept["hostile"]["prox_refine.ignored_programs"] == 1
    assert kept["hostile"]["prox_refine.unparseable_calls"] == 2
    assert kept["hostile"]["text"].startswith("HOSTILE page\nLine 0 of teh")
    assert not Path("/tmp/pwned").exists()
    assert kept["tiny"]["text"] == "Three words only."  # short, but its programs left it alone


def test_entigraph_synthesizes_from_sampled_entity_pairs(tmp_path: Path, server: ScriptedServer) -> None:
    docs = [{"id": "d1", "text": "Alice met Bob in Paris while Carol wrote to Dave."},
            {"id": "d2", "text": "nothing capitalised here at all"}]
    recipe = write_recipe(tmp_path, docs, "  - entigraph: {pairs_per_doc: 3, triples_per_doc: 1, seed: 7}",
                          server)
    assay("run", str(recipe))
    out = tmp_path / "out"
    generated = by_id(out / "generated")
    assert len(generated) == 4
    pairs = [json.loads(r["entities"]) for r in generated.values()]
    assert sorted(len(p) for p in pairs) == [2, 2, 2, 3]
    assert all(set(p) <= {"Alice", "Bob", "Carol", "Dave", "Paris"} for p in pairs)
    row = generated["d1#entigraph-0"]
    assert row["synthesized_from"] == "d1" and all(e in row["text"] for e in json.loads(row["entities"]))
    assert by_id(out / "rejected")["d2"]["reason"] == "llm_unparseable"  # no entities found
    assert by_id(out / "data")["d1"]["entigraph.entities"] == 5


def test_parse_entities_reads_json_with_fallbacks() -> None:
    assert parse_entities('{"summary": "x", "entities": ["A", "B", "A"]}', 10) == ["A", "B"]
    assert parse_entities('Sure!\n```json\n{"entities": ["Paris"]}\n```', 10) == ["Paris"]
    assert parse_entities("Entities:\n- Alice\n- Bob\n2. Carol", 2) == ["Alice", "Bob"]
    assert parse_entities("no list at all", 10) == []


def test_a_recipe_with_an_llm_step_needs_a_model(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"id": "a", "text": "x"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ninput: {{path: {tmp_path / 'd.jsonl'}}}\noutput: {tmp_path / 'o'}\n"
                      "steps:\n  - llm_rate: {}\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:5: step llm_rate asks a language model"):
        load_recipe(recipe)


def test_a_killed_run_resumes_without_paying_twice(tmp_path: Path) -> None:
    docs = [{"id": f"d{k:02d}", "text": f"page score={k % 6} number {k}"} for k in range(24)]
    with ScriptedServer(reply=cooperative_reply) as clean_server:
        clean = write_recipe(tmp_path, docs, "  - llm_rate: {}", clean_server, name="clean")
        assay("run", str(clean))
    with ScriptedServer(reply=cooperative_reply, hold_after=10) as server:
        recipe = write_recipe(tmp_path, docs, "  - llm_rate: {}", server, name="killed")
        run = subprocess.Popen([sys.executable, "-m", "assay", "run", str(recipe)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while server.held == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the answers sent are cached; the held requests have none yet
        answered_before = sum(server.answered.values())
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        assert 0 < answered_before < len(docs)
        server.release()
        assay("run", str(recipe), "--resume")
        assert max(server.answered.values()) == 1 and sum(server.answered.values()) == len(docs)
    for folder in ("data", "rejected"):
        a = sorted((tmp_path / "clean" / folder).glob("*.parquet"))
        b = sorted((tmp_path / "killed" / folder).glob("*.parquet"))
        assert [p.name for p in a] == [p.name for p in b]
        assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    manifest = json.loads((tmp_path / "killed" / "manifest.json").read_text())
    assert manifest["accounting"]["balanced"]


def test_the_fineweb_edu_example_end_to_end(tmp_path: Path) -> None:
    """examples/fineweb-edu.sh as shipped: rate a sample, train the regression on the
    scores, select the whole sample with it (a scripted model that always keeps the format)."""
    import xxhash

    def rate(text: str) -> str:
        return f"Some reasoning.\nEducational score:  {xxhash.xxh64_intdigest(text.encode()) % 6}"

    repo = Path(__file__).resolve().parents[2]
    with ScriptedServer(reply=rate) as server:
        (tmp_path / "examples").mkdir()
        for name in ("fineweb-edu.yaml", "fineweb-edu-apply.yaml"):
            text = (repo / "examples" / name).read_text()
            text = text.replace("http://127.0.0.1:8000/v1", server.base_url).replace(
                "path: data/sample", f"path: {repo}/data/sample")
            (tmp_path / "examples" / name).write_text(text)
        done = subprocess.run(["bash", str(repo / "examples" / "fineweb-edu.sh")], cwd=tmp_path,
                              capture_output=True, text=True,
                              env={**os.environ, "ASSAY": f"{sys.executable} -m assay", "NO_COLOR": "1"})
        assert done.returncode == 0, done.stdout + done.stderr
        asked = sum(server.answered.values())
    rated = json.loads((tmp_path / "out/fineweb-edu/rated/manifest.json").read_text())
    assert rated["steps"][2]["llm"]["requests"] == rated["steps"][2]["docs_in"] == asked > 50
    model = json.loads((tmp_path / "out/fineweb-edu/model/manifest.json").read_text())
    assert model["params"]["target"] == "regression" and model["sources"]["target"] == "llm_rate.score"
    assert model["training"]["documents"] + model["held_out"]["documents"] == asked
    selected = json.loads((tmp_path / "out/fineweb-edu/selected/manifest.json").read_text())
    assert selected["accounting"]["balanced"] and selected["steps"][1]["fit"]["summary"]["threshold"] == 3
    scores = table(tmp_path / "out/fineweb-edu/selected/data").column("quality_classifier.score").to_pylist()
    assert scores and min(scores) >= 3


def test_entigraph_samples_from_more_combinations_than_it_could_list() -> None:
    from assay.steps.llm.entigraph import EntiGraph

    llm = {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
    step = EntiGraph(pairs_per_doc=4, triples_per_doc=5, llm=llm)
    entities = [f"e{i}" for i in range(1000)]  # 166M triples
    combos = step.combinations("doc-1", entities)
    assert [len(c) for c in combos] == [2] * 4 + [3] * 5 and len(set(combos)) == 9
    assert combos == step.combinations("doc-1", entities)  # seeded by the step and the document
    assert combos != step.combinations("doc-2", entities)
