"""decontaminate: normalisation, the benchmark index, GPT-3's cutting rules, and whole runs
over the bundled sample with benchmark items planted in it."""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay import Pipeline
from assay.pipeline import run_recipe
from assay.recipe import RecipeError, load_recipe
from assay.steps import step_class
from assay.steps.decontaminate.benchmarks import BenchmarkSpec, build_index, read_benchmark
from assay.steps.decontaminate.cut import collision_spans, cut_text
from assay.steps.decontaminate.step import (
    CONTAMINATED,
    NOTHING_LEFT,
    TOO_MANY_PIECES,
    Decontaminate,
    DecontaminateParams,
)
from assay.text.decon_words import ngram_hashes, normalized_words, word_hash, word_table

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
FIXTURES = ROOT / "tests" / "fixtures" / "benchmarks"

# The bundled subsets of the six benchmark files, with the fields a user would index.
SPECS = [
    {"path": str(FIXTURES / "HumanEval.jsonl.gz"), "fields": ["prompt", "canonical_solution"],
     "id_field": "task_id"},
    {"path": str(FIXTURES / "gsm8k_test.jsonl.gz"), "fields": ["question", "answer"]},
    {"path": str(FIXTURES / "arc_challenge.jsonl.gz"), "fields": ["query", "choices"],
     "remove": ["^Question:"]},
    {"path": str(FIXTURES / "arc_easy.jsonl.gz"), "fields": ["query", "choices"],
     "remove": ["^Question:"]},
    {"path": str(FIXTURES / "lambada_openai.jsonl.gz"), "fields": ["context", "continuation"]},
    {"path": str(FIXTURES / "triviaqa_sm_sub.jsonl.gz"), "fields": ["context", "answer"],
     "remove": ["^Question:", r"Answer:\s*$"]},
]


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def read_folder(folder: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in sorted(folder.glob("*.parquet")):
        rows.update({r["id"]: r for r in pq.read_table(path).to_pylist()})
    return rows


def read_reports(out: Path) -> dict[str, list[dict]]:
    folder = out / "reports" / "decontaminate"
    return {name: read_jsonl(folder / f"{name}.jsonl")
            for name in ("items", "documents", "frequent_ngrams")}


def fit_summary(manifest: dict) -> dict:
    (entry,) = [s for s in manifest["steps"] if s["name"] == "decontaminate"]
    return entry["fit"]["summary"]


# --------------------------------------------------------------------- normalisation


def test_registered_with_the_papers_defaults() -> None:
    assert step_class("decontaminate") is Decontaminate
    p = DecontaminateParams(benchmarks=SPECS[1:2])
    assert (p.ngram, p.mode, p.context_chars, p.min_piece_chars, p.max_pieces, p.max_train_docs,
            p.min_item_words) == (13, "gpt3", 200, 200, 10, 10, 8)
    assert Decontaminate.kind == "global"


def test_words_are_lower_cased_without_punctuation() -> None:
    assert normalized_words("Janet’s ducks lay 16 eggs, per day! Don't stop-now... $2 ‹x›") == [
        "janets", "ducks", "lay", "16", "eggs", "per", "day", "dont", "stopnow", "2", "x"]
    assert normalized_words("ΟΔΟΣ οδος Straße\u00a0NAÏVE soft\u00adhyphen zero\u200bwidth") == [
        "οδοσ", "οδοσ", "straße", "naïve", "softhyphen", "zerowidth"]
    assert normalized_words(" -- ... >>> \n\t") == []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("aZ é\u0301ß,.\n\x00٣7-İΣς字\u00a0\u200b’'\t"),
                        max_size=40), max_size=5))
def test_batch_word_hashes_and_spans_match_the_definition(texts: list[str]) -> None:
    words = word_table(texts, spans=True)
    expected = [normalized_words(t) for t in texts]
    assert words.counts.tolist() == [len(w) for w in expected]
    assert words.hashes.tolist() == [word_hash(w) for ws in expected for w in ws]
    owner = np.repeat(np.arange(len(texts)), words.counts)
    assert words.starts is not None and words.ends is not None
    tokens = [texts[o][a:b] for o, a, b in zip(owner, words.starts, words.ends, strict=True)]
    assert [normalized_words(t) for t in tokens] == [[w] for ws in expected for w in ws]
    assert all(t == t.strip() and t for t in tokens)


def test_ngrams_do_not_depend_on_batching_and_never_span_texts() -> None:
    texts = ["one two three four five", "Six seven, eight.", "ONE TWO three four five six"]

    def grams(batch: list[str], k: int) -> list[int]:
        words = word_table(batch)
        return [h for _, hs, _ in ngram_hashes(words.hashes, words.counts, [k]) for h in hs.tolist()]

    assert grams(texts, 3) == [h for t in texts for h in grams([t], 3)]
    assert len(grams(texts, 3)) == 3 + 1 + 4  # none across the second and third text
    assert grams(texts[:1], 3) == grams(texts[2:], 3)[:3]
    assert set(grams(texts[:1], 2)).isdisjoint(grams(texts[:1], 3))  # lengths are tagged


# --------------------------------------------------------------------- benchmarks


def test_index_matches_short_texts_whole_and_counts_skipped(tmp_path: Path) -> None:
    items = [
        {"q": "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
         "choices": ["alpha beta gamma delta epsilon zeta eta theta", "too short to count"]},
        {"q": "", "choices": ["tiny"]},
    ]
    path = write_jsonl(tmp_path / "tiny.jsonl", items)
    spec = BenchmarkSpec(path=str(path), fields=["q", "choices"])
    benchmark = read_benchmark(spec)
    assert benchmark.name == "tiny"
    assert [item.id for item in benchmark.items] == [1, 2]
    assert len(benchmark.items[0].texts) == 3  # each choice is a text of its own
    index = build_index([benchmark], ngram=13, min_item_words=8)
    assert sorted(index.length.tolist()) == [8, 13, 13]
    assert {index.ngram_text(i) for i in range(len(index.hashes))} == {
        "one two three four five six seven eight nine ten eleven twelve thirteen",
        "two three four five six seven eight nine ten eleven twelve thirteen fourteen",
        "alpha beta gamma delta epsilon zeta eta theta"}
    assert index.stats == [{"items": 2, "texts": 5, "ngrams": 3, "texts_matched_whole": 1,
                            "texts_too_short": 2, "items_without_ngrams": 1}]


def test_remove_patterns_strip_a_prompt_template() -> None:
    spec = BenchmarkSpec(**SPECS[5])
    item = read_benchmark(spec).items[0]
    assert normalized_words(item.texts[0]) == [
        "brunswick", "lancastrian", "and", "pearl", "pickler", "are", "types", "of", "which",
        "vegetable"]


def test_bad_benchmark_files_are_named(tmp_path: Path) -> None:
    def error(**spec: object) -> str:
        with pytest.raises(ValueError) as info:
            Decontaminate(benchmarks=[spec])
        return str(info.value)

    missing = tmp_path / "nope.jsonl"
    assert f"benchmark file {missing} does not exist" in error(path=str(missing), fields=["q"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "fine"}\n\n{"q": broken\n')
    assert f"{bad}:3: invalid JSON" in error(path=str(bad), fields=["q"])
    assert f"{bad}:1: item has no field 'question'; its fields: q" in error(
        path=str(bad), fields=["question"])
    numbers = write_jsonl(tmp_path / "numbers.jsonl", [{"q": "x"}, {"q": 3}])
    assert f"{numbers}:2: field 'q' holds int" in error(path=str(numbers), fields=["q"])
    assert f"{numbers}:1: item has no id field 'id'" in error(path=str(numbers), fields=["q"],
                                                                id_field="id")
    assert "is not a regular expression" in error(path=str(numbers), fields=["q"], remove=["("])
    assert "holds no items" in error(path=str(write_jsonl(tmp_path / "e.jsonl", [])), fields=["q"])
    with pytest.raises(ValueError, match=r"name.*used twice"):
        Decontaminate(benchmarks=[SPECS[1], SPECS[1]])
    with pytest.raises(ValueError, match="at least 1 item"):
        Decontaminate(benchmarks=[])


def test_recipe_errors_point_at_the_benchmark(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "text": "some words"}])
    bad = write_jsonl(tmp_path / "b.jsonl", [{"question": "q"}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: r\ninput: {{path: {tmp_path}/c.jsonl}}\noutput: {tmp_path}/o\nsteps:\n"
        f"  - decontaminate:\n      benchmarks:\n        - path: {SPECS[1]['path']}\n"
        f"          fields: [question]\n        - path: {bad}\n          fields: [questoin]\n"
    )
    with pytest.raises(RecipeError, match=rf"r\.yaml:9: .*{re.escape(str(bad))}:1: item has no "
                                          r"field 'questoin'"):
        load_recipe(recipe)


# --------------------------------------------------------------------- cutting rules

# 15 words each: three 13-grams.
PHRASE_A = "the quick brown fox jumps over the lazy dog while seven wizards judge boxing matches"
PHRASE_B = "here we hold these truths to be self evident that all men are created equal"
PHRASE_C = "stitch in time saves nine but only when the needle is threaded before it tears"
SHORT_ITEM = "Short items like this one are matched whole."


assert {len(p.split()) for p in (PHRASE_A, PHRASE_B, PHRASE_C)} == {15}


def filler(n_words: int, seed: int = 0) -> str:
    """Words of exactly 9 letters, one space apart (10 characters a word)."""
    rng = random.Random(seed)
    return " ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(9))
                    for _ in range(n_words))


def phrase_hashes(phrase: str, n: int = 13) -> np.ndarray:
    words = word_table([phrase])
    return np.concatenate([h for _, h, _ in ngram_hashes(words.hashes, words.counts, [n])])


def test_cut_removes_200_characters_either_side_exactly() -> None:
    left, right = filler(50, 1), filler(50, 2)  # 499 characters each
    text = f"{left} {PHRASE_A.upper()}, {right}"
    spans = collision_spans(text, phrase_hashes(PHRASE_A), [13])
    start = text.index("THE QUICK")
    end = text.index("MATCHES,") + len("MATCHES,")  # the token, punctuation included
    assert len(spans) == 3  # three 13-grams in a 15-word phrase
    assert spans[0][0] == start and spans[-1][1] == end
    assert text[slice(*spans[0])].split()[-1] == "JUDGE"
    cut = cut_text(text, spans, context_chars=200, min_piece_chars=200)
    assert cut.pieces == 2 and cut.occurrences == 3
    # 200 characters before the phrase is a word start (10-character words): no snapping.
    assert cut.kept == ((0, start - 201), (end + 201, len(text)))
    assert cut.text(text) == left[:299] + "\n\n" + right[200:]
    # Three letters more before the phrase put the window's start inside a word: the
    # whole word goes, and the same pieces are left.
    longer = f"{left}abc {PHRASE_A}, {right}"
    cut = cut_text(longer, collision_spans(longer, phrase_hashes(PHRASE_A), [13]), 200, 200)
    assert cut.text(longer) == left[:299] + "\n\n" + right[200:]


def test_short_pieces_are_dropped_and_windows_merge() -> None:
    text = f"{filler(35, 1)} {PHRASE_A} {filler(30, 2)} {PHRASE_A} {filler(60, 3)}"
    spans = collision_spans(text, phrase_hashes(PHRASE_A), [13])
    cut = cut_text(text, spans, 200, 200)
    # 149 characters are left before the first window (a piece, dropped); the 299 between
    # the phrases are inside both windows, which merge; 399 of the 599 after are kept.
    assert cut.pieces == 2 and cut.occurrences == 6
    assert cut.text(text) == filler(60, 3)[200:]
    assert cut_text(text, spans, 200, 0).text(text) == filler(35, 1)[:149] + "\n\n" + filler(60, 3)[200:]
    assert cut_text(text, spans, 0, 0).text(text) == "\n\n".join(
        [filler(35, 1), filler(30, 2), filler(60, 3)])
    assert cut_text(text, [], 200, 200).text(text) == text
    assert cut_text(text, spans, 10_000, 0).kept == ()


# --------------------------------------------------------------------- whole runs, hand-made


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, dict, Path]:
    folder = tmp_path_factory.mktemp("handmade")
    bench = write_jsonl(folder / "bench.jsonl", [
        {"id": "A", "q": PHRASE_A}, {"id": "B", "q": PHRASE_B}, {"id": "C", "q": PHRASE_C},
        {"id": "D", "q": SHORT_ITEM}, {"id": "E", "q": "Too short to match."}])
    gap = filler(50, 9)
    docs = [
        {"id": "cut", "text": f"{filler(50, 1)} {PHRASE_A} {filler(50, 2)}"},
        {"id": "ten_pieces", "text": gap + "".join(f" {PHRASE_A} {gap}" for _ in range(9))},
        {"id": "eleven_pieces", "text": gap + "".join(f" {PHRASE_A} {gap}" for _ in range(10))},
        {"id": "nothing_left", "text": f"Intro. {PHRASE_A}. The end."},
        {"id": "short_item", "text": f"{filler(40, 3)} SHORT items LIKE this one are matched, whole! "
                                     f"Too short to match. {filler(40, 4)}"},
        {"id": "clean", "text": filler(80, 5)},
        *({"id": f"common{i:02d}", "text": f"{filler(50, i)} {PHRASE_B} {filler(50, i)}"} for i in range(11)),
        *({"id": f"ten{i:02d}", "text": f"{filler(50, i)} {PHRASE_C} {filler(50, i)}"} for i in range(10)),
    ]
    write_jsonl(folder / "docs.jsonl", docs)
    step = Decontaminate(benchmarks=[{"path": str(bench), "fields": ["q"], "id_field": "id"}])
    out = folder / "out"
    Pipeline([step], name="handmade").run(str(folder / "docs.jsonl"), str(out), workers=1,
                                          overwrite=True)
    return {d["id"]: d for d in docs}, read_folder(out / "data"), read_folder(out / "rejected"), out


def test_gpt3_rules_end_to_end(handmade) -> None:
    docs, kept, rejected, _ = handmade
    assert rejected["eleven_pieces"]["reason"] == TOO_MANY_PIECES
    assert rejected["eleven_pieces"]["decontaminate.pieces"] == 11
    assert rejected["eleven_pieces"]["text"] == docs["eleven_pieces"]["text"]  # text kept
    assert rejected["nothing_left"]["reason"] == NOTHING_LEFT
    assert set(rejected) == {"eleven_pieces", "nothing_left"}
    ten = kept["ten_pieces"]  # 9 collisions: 10 pieces, 8 of 99 characters between them
    assert ten["decontaminate.pieces"] == 10 and ten["decontaminate.collisions"] == 3
    assert ten["text"] == filler(50, 9)[:299] + "\n\n" + filler(50, 9)[200:]
    cut = kept["cut"]
    assert cut["text"] == filler(50, 1)[:299] + "\n\n" + filler(50, 2)[200:]
    assert cut["decontaminate.chars_removed"] == len(docs["cut"]["text"]) - 2 * 299
    assert kept["short_item"]["decontaminate.collisions"] == 1
    assert "SHORT" not in kept["short_item"]["text"]
    clean = kept["clean"]
    assert clean["text"] == docs["clean"]["text"]
    assert (clean["decontaminate.collisions"], clean["decontaminate.pieces"],
            clean["decontaminate.chars_removed"]) == (0, 1, 0)
    assert "decontaminate.ngrams" not in clean


def test_frequent_ngrams_are_ignored(handmade) -> None:
    docs, kept, _, out = handmade
    for i in range(11):  # PHRASE_B is in 11 documents: more than max_train_docs
        assert kept[f"common{i:02d}"]["text"] == docs[f"common{i:02d}"]["text"]
        assert kept[f"common{i:02d}"]["decontaminate.collisions"] == 0
    for i in range(10):  # PHRASE_C is in 10: they count
        assert PHRASE_C not in kept[f"ten{i:02d}"]["text"]
        assert kept[f"ten{i:02d}"]["decontaminate.collisions"] == 3
    frequent = read_reports(out)["frequent_ngrams"]
    assert len(frequent) == 3  # the 13-grams of PHRASE_B
    assert {(f["benchmark"], f["item"], f["documents"]) for f in frequent} == {("bench", "B", 11)}
    assert frequent[0]["ngram"] in PHRASE_B


def test_reports_and_summary(handmade) -> None:
    docs, _, _, out = handmade
    reports = read_reports(out)
    items = {i["item"]: i for i in reports["items"]}
    assert set(items) == {"A", "C", "D"}
    assert items["A"]["documents"] == ["cut", "ten_pieces", "eleven_pieces", "nothing_left"]
    assert items["A"]["ngrams"] == [" ".join(PHRASE_A.split()[k : k + 13]) for k in range(3)]
    assert items["D"] == {"benchmark": "bench", "item": "D", "line": 4, "documents": ["short_item"],
                          "ngrams": ["short items like this one are matched whole"]}
    documents = {d["id"]: d for d in reports["documents"]}
    assert documents["eleven_pieces"]["action"] == "rejected"
    assert documents["eleven_pieces"]["reason"] == TOO_MANY_PIECES
    assert documents["eleven_pieces"]["occurrences"] == 30
    assert documents["cut"] == {
        "id": "cut", "action": "cut", "reason": None, "collisions": 3, "occurrences": 3,
        "pieces": 2, "pieces_kept": 2, "chars_removed": len(docs["cut"]["text"]) - 2 * 299,
        "items": [{"benchmark": "bench", "item": "A"}], "ngrams": items["A"]["ngrams"]}
    manifest = json.loads((out / "manifest.json").read_text())
    summary = fit_summary(manifest)
    assert summary["documents"] == 27
    assert summary["documents_with_collisions"] == 26
    assert summary["documents_contaminated"] == 15
    assert summary["documents_cut"] == 13
    assert summary["documents_rejected"] == {NOTHING_LEFT: 1, TOO_MANY_PIECES: 1}
    assert summary["ngrams_ignored_as_frequent"] == 3
    assert summary["benchmarks"]["bench"] == {
        "items": 5, "texts": 5, "ngrams": 10, "texts_matched_whole": 1, "texts_too_short": 1,
        "items_without_ngrams": 1, "items_contaminated": 3}
    assert manifest["totals"]["kept"] == 25 and manifest["totals"]["rejected"] == 2


# --------------------------------------------------------------------- planted in the sample


def _field_texts(spec: dict, record: dict) -> list[str]:
    texts = []
    for name in spec["fields"]:
        value = record[name]
        for text in value if isinstance(value, list) else [value]:
            for pattern in spec.get("remove", []):
                text = re.sub(pattern, " ", text, flags=re.MULTILINE)
            texts.append(text)
    return texts


def _verbatim(name: str, r: dict) -> str:
    if name == "HumanEval":
        return r["prompt"] + r["canonical_solution"]
    if name == "gsm8k_test":
        return f"{r['question']}\n{r['answer']}"
    if name.startswith("arc"):
        return r["query"] + "\n" + "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(r["choices"]))
    if name == "lambada_openai":
        return f"{r['context']} {r['continuation']}"
    return f"{r['context']} {r['answer']}"


MAIN_FIELD = {"HumanEval": "prompt", "gsm8k_test": "question", "arc_challenge": "query",
              "arc_easy": "query", "lambada_openai": "context"}
ANSWER_FIELD = {"HumanEval": "canonical_solution", "gsm8k_test": "answer"}


def _edit(text: str) -> str:
    """A word replaced every 20 words, some case and punctuation changed."""
    parts = re.split(r"(\s+)", text)
    words = [i for i in range(0, len(parts), 2) if normalized_words(parts[i])]
    for n, i in enumerate(words):
        if n % 20 == 10:
            parts[i] = "zzzq"
        elif n % 7 == 3:
            parts[i] = parts[i].upper()
        elif n % 9 == 5:
            parts[i] = parts[i].rstrip(",.;:?!") + ","
        elif n % 11 == 2:
            parts[i] = parts[i].strip(",.;:?!\"'")
    return "".join(parts)


def plant_benchmarks(hosts: list[dict]) -> tuple[list[dict], dict[str, tuple[str, str, str | int]]]:
    """Plant items into copies of ``hosts``, three ways; returns the planted documents and,
    per document id, (kind, benchmark, item id)."""
    plans = []
    for spec in SPECS:
        name = Path(spec["path"]).name.removesuffix(".jsonl.gz")
        records = read_jsonl(Path(spec["path"]))
        for line, r in enumerate(records, start=1):
            item = r.get(spec.get("id_field", ""), line)
            indexable = any(len(normalized_words(t)) >= 8 for t in _field_texts(spec, r))
            if indexable and sum(p[0] == "verbatim" and p[1] == name for p in plans) < 4:
                plans.append(("verbatim", name, item, _verbatim(name, r)))
            main = r.get(MAIN_FIELD.get(name, ""), "")
            if len(normalized_words(main)) >= 30 and sum(p[:2] == ("edited", name) for p in plans) < 3:
                plans.append(("edited", name, item, _edit(main)))
            answer = r.get(ANSWER_FIELD.get(name, ""), "")
            if len(normalized_words(answer)) >= 13 and sum(p[:2] == ("answer", name) for p in plans) < 4:
                plans.append(("answer", name, item, answer))
    planted, truth = [], {}
    for host, (kind, name, item, text) in zip(hosts, plans, strict=False):
        middle = host["text"].find("\n", len(host["text"]) // 2)
        middle = middle if middle > 0 else len(host["text"]) // 2
        new = host["text"][:middle] + "\n\n" + text + "\n\n" + host["text"][middle:]
        planted.append({**host, "text": new})
        truth[host["id"]] = (kind, name, item)
    assert len(truth) == len(plans)
    return planted, truth


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, Path, list[dict]]:
    folder = tmp_path_factory.mktemp("planted")
    sample = read_jsonl(SAMPLE)
    hosts = [d for d in sample if len(d["text"]) >= 3000]
    hosts = random.Random(8).sample(hosts, 60)
    docs, truth = plant_benchmarks(hosts)
    by_id = {d["id"]: d for d in docs}
    corpus = [by_id.get(d["id"], d) for d in sample]
    write_jsonl(folder / "corpus.jsonl", corpus)
    out = folder / "out"
    result = Pipeline([Decontaminate(benchmarks=SPECS)], name="planted").run(
        str(folder / "corpus.jsonl"), str(out), workers=2, overwrite=True)
    return truth, result.manifest, out, corpus


def test_every_planted_document_is_caught_and_nothing_else(planted) -> None:
    truth, manifest, out, corpus = planted
    kinds = {kind for kind, _, _ in truth.values()}
    assert kinds == {"verbatim", "edited", "answer"}
    assert len(truth) == 24 + 15 + 8
    flagged = {d["id"] for d in read_reports(out)["documents"]}
    missed = sorted(set(truth) - flagged)
    assert missed == []
    false_positives = flagged - set(truth)
    rate = len(false_positives) / (len(corpus) - len(truth))
    print(f"false positives: {len(false_positives)} of {len(corpus) - len(truth)} ({rate:.2%})")
    assert false_positives == set()
    assert fit_summary(manifest)["documents_contaminated"] == len(truth)


def test_planted_items_are_reported_and_removed(planted) -> None:
    truth, manifest, out, corpus = planted
    items = {(i["benchmark"], i["item"]): set(i["documents"]) for i in read_reports(out)["items"]}
    for doc_id, (_, name, item) in truth.items():
        assert doc_id in items[(name, item)]
    kept = read_folder(out / "data")
    rejected = read_folder(out / "rejected")
    assert set(kept) | set(rejected) == {d["id"] for d in corpus}
    step = Decontaminate(benchmarks=SPECS)
    cut = [kept[i]["text"] for i in truth if i in kept]
    assert len(cut) >= len(truth) - 3  # the hosts are long: most are cut, not rejected
    table = step(pa.table({"id": [str(i) for i in range(len(cut))], "text": cut}))
    assert table.column("decontaminate.ngrams").to_pylist() == [[]] * len(cut)
    originals = {d["id"]: d["text"] for d in corpus}
    for doc_id in truth:
        if doc_id in kept:
            assert all(piece in originals[doc_id] for piece in kept[doc_id]["text"].split("\n\n"))
    summary = fit_summary(manifest)
    assert summary["benchmarks"]["HumanEval"]["items_contaminated"] >= 4
    assert sum(b["items_contaminated"] for b in summary["benchmarks"].values()) == len(
        {(n, i) for _, n, i in truth.values()})


def test_drop_mode_through_a_recipe(planted, tmp_path: Path) -> None:
    truth, _, _, corpus = planted
    subset = [d for d in corpus if d["id"] in truth] + [d for d in corpus if d["id"] not in truth][:40]
    write_jsonl(tmp_path / "docs.jsonl", subset)
    benchmarks = "".join(f"        - {json.dumps(spec)}\n" for spec in SPECS)
    recipe = tmp_path / "drop.yaml"
    recipe.write_text(f"name: drop\ninput: {{path: {tmp_path}/docs.jsonl}}\noutput: {tmp_path}/out\n"
                      f"executor: {{workers: 1}}\nsteps:\n  - decontaminate:\n      mode: drop\n"
                      f"      benchmarks:\n{benchmarks}")
    result = run_recipe(load_recipe(recipe))
    rejected = read_folder(tmp_path / "out" / "rejected")
    assert set(rejected) == set(truth)
    texts = {d["id"]: d["text"] for d in subset}
    assert all(r["reason"] == CONTAMINATED and r["text"] == texts[i] for i, r in rejected.items())
    assert fit_summary(result.manifest)["documents_rejected"] == {CONTAMINATED: len(truth)}


def test_changed_benchmark_file_refuses_to_resume(tmp_path: Path) -> None:
    """The benchmark files' content is part of the run's fingerprint: a run made with one
    version of a benchmark is never finished with decisions from another."""
    from assay import parse_recipe, run_recipe
    from assay.engine.settings import RunError

    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"q": "the quick brown fox jumps over the lazy dog near the river bank today"}\n')
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "nothing to see here"}\n')
    recipe = parse_recipe(
        f"name: fp\ninput: {{path: {docs}}}\noutput: {tmp_path / 'out'}\nsteps:\n"
        f"  - decontaminate: {{benchmarks: [{{path: {bench}, fields: [q]}}]}}\n"
    )
    run_recipe(recipe, workers=1)
    run_recipe(recipe, workers=1)  # same files: the finished run is recognised
    bench.write_text('{"q": "a completely different benchmark item with more than thirteen words in it"}\n')
    with pytest.raises(RunError, match="different recipe or input"):
        run_recipe(recipe, workers=1)
