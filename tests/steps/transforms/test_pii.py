"""PII replacement: a planted corpus (recall and look-alikes), hashing, parameters, signals."""

from __future__ import annotations

import hashlib
import itertools
import json
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from assay import parse_recipe, run_recipe
from assay.documents import CORE_SCHEMA, REASON
from assay.steps.base import step_class
from assay.steps.transforms.pii import DEFAULT_PLACEHOLDERS, PII_TYPES, Pii

PLANTED = Path(__file__).resolve().parents[2] / "fixtures" / "pii" / "planted.jsonl"
DOCS = [json.loads(line) for line in PLANTED.read_text(encoding="utf-8").splitlines()]
STEP = Pii()  # one instance: phonenumbers' metadata is loaded once


def expected_spans(doc: dict) -> set[tuple[int, int, str]]:
    """Every occurrence of every planted value, with its type."""
    spans = set()
    for kind, value in doc["pii"]:
        at = doc["text"].find(value)
        while at >= 0:
            spans.add((at, at + len(value), kind))
            at = doc["text"].find(value, at + 1)
    return spans


@pytest.mark.parametrize("doc", DOCS, ids=[d["id"] for d in DOCS])
def test_planted_document_exact(doc: dict) -> None:
    found = {(d.start, d.end, d.kind) for d in STEP.find(doc["text"])}
    expected = expected_spans(doc)
    missed = [(k, doc["text"][s:e]) for s, e, k in sorted(expected - found)]
    extra = [(k, doc["text"][s:e]) for s, e, k in sorted(found - expected)]
    assert not missed, f"not replaced: {missed}"
    assert not extra, f"look-alikes replaced: {extra}"


def test_planted_corpus_recall_and_rewritten_text() -> None:
    out = STEP.compute([d["text"] for d in DOCS])
    assert out.texts is not None
    planted = Counter()
    for i, doc in enumerate(DOCS):
        text = out.texts[i]
        kinds = Counter(kind for kind, _ in doc["pii"])
        planted.update(kinds)
        for kind in PII_TYPES:
            assert out.signals[kind][i] == kinds[kind], (doc["id"], kind)
            assert text.count(DEFAULT_PLACEHOLDERS[kind]) == kinds[kind], (doc["id"], kind)
        for _, value in doc["pii"]:
            assert value not in text, (doc["id"], value)
        for value in doc["keep"]:
            assert value in text, (doc["id"], value)
        replaced = sum(len(value) for _, value in doc["pii"])
        assert out.signals["chars_replaced"][i] == replaced
    # Recall 1.0 on every type, over a corpus that plants each of them in several formats.
    totals = {kind: int(sum(out.signals[kind])) for kind in PII_TYPES}
    assert totals == dict(planted)
    assert min(totals.values()) >= 5
    assert sum(len(d["keep"]) for d in DOCS) >= 80


# -- hashing -----------------------------------------------------------------------------


def test_hash_tokens_are_consistent_and_salted() -> None:
    text = "Mail Jane.Doe@Example.com or call +1 (201) 555-0123."
    a = Pii(mode="hash", salt="s3cret").compute([text, "again: jane.doe@example.com"])
    b = Pii(mode="hash", salt="s3cret").compute(["201.555.0123 and jane.doe@example.com"])
    c = Pii(mode="hash", salt="other").compute([text])
    assert a.texts is not None and b.texts is not None and c.texts is not None
    email, phone = a.texts[0].split()[1], a.texts[0].split()[4].rstrip(".")
    assert email.startswith("<EMAIL:") and len(email) == len("<EMAIL:>") + 8
    assert phone.startswith("<PHONE:")
    # Same value (in normal form: case, phone format) -> same token, in a new instance too.
    assert a.texts[1] == f"again: {email}"
    assert b.texts[0] == f"{phone} and {email}"
    # Another salt -> other tokens.
    assert email not in c.texts[0] and phone not in c.texts[0]
    # A step shipped to a worker gives the same tokens.
    shipped = pickle.loads(pickle.dumps(Pii(mode="hash", salt="s3cret")))
    assert shipped.token("email", "jane.doe@example.com") == email


def test_hash_tokens_agree_across_processes() -> None:
    code = (
        "from assay.steps.transforms.pii import Pii; "
        "print(Pii(mode='hash', salt='s3cret').token('iban', 'DE89370400440532013000'))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = Pii(mode="hash", salt="s3cret").token("iban", "DE89370400440532013000")
    assert other.stdout.strip() == here
    # The documented formula: keyed BLAKE2b of "type:value"; a fixed value across releases.
    digest = hashlib.blake2b(b"iban:DE89370400440532013000", key=b"s3cret", digest_size=4)
    assert here == f"<IBAN:{digest.hexdigest()}>" == "<IBAN:c9917a39>"


def test_salt_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="needs a salt"):
        Pii(mode="hash")
    with pytest.raises(ValidationError, match="not both"):
        Pii(mode="hash", salt="a", salt_env="PII_SALT")
    monkeypatch.setenv("PII_SALT", "s3cret")
    from_env = Pii(mode="hash", salt_env="PII_SALT")
    assert from_env.token("email", "a@b.org") == Pii(mode="hash", salt="s3cret").token("email", "a@b.org")
    assert "s3cret" not in json.dumps(from_env.describe())
    monkeypatch.delenv("PII_SALT")
    with pytest.raises(ValueError, match="PII_SALT"):
        Pii(mode="hash", salt_env="PII_SALT").ensure_setup()
    # Longer than BLAKE2b's 64-byte key: hashed down, still deterministic and distinct.
    long_a, long_b = "x" * 100, "x" * 99 + "y"
    token = Pii(mode="hash", salt=long_a, hash_chars=12).token("ip", "140.82.121.4")
    assert token == Pii(mode="hash", salt=long_a, hash_chars=12).token("ip", "140.82.121.4")
    assert token != Pii(mode="hash", salt=long_b, hash_chars=12).token("ip", "140.82.121.4")
    assert len(token) == len("<IP_ADDRESS:>") + 12


# -- parameters --------------------------------------------------------------------------


def test_placeholders_are_configurable() -> None:
    step = Pii(placeholders={"email": "[email removed]", "phone": "PHONE"})
    out = step.compute(["a@example.org, +44 20 7946 0958, 140.82.121.4"])
    assert out.texts == ["[email removed], PHONE, <IP_ADDRESS>"]
    assert step.describe()["pii"]["placeholders"]["iban"] == "<IBAN>"
    hashed = Pii(mode="hash", salt="k", placeholders={"phone": "PHONE"}).compute(["+44 20 7946 0958"])
    assert hashed.texts is not None and hashed.texts[0].startswith("PHONE:")
    with pytest.raises(ValidationError):
        Pii(placeholders={"email": ""})
    with pytest.raises(ValidationError):
        Pii(placeholders={"name": "<NAME>"})


def test_type_subset_is_respected() -> None:
    text = "x@example.org 140.82.121.4 +44 20 7946 0958 4111 1111 1111 1111 DE89370400440532013000"
    out = Pii(types=["ip", "email"]).compute([text])
    assert out.texts == ["<EMAIL> <IP_ADDRESS> +44 20 7946 0958 4111 1111 1111 1111 DE89370400440532013000"]
    assert [out.signals[k][0] for k in ("email", "ip", "phone", "credit_card", "iban")] == [1, 1, 0, 0, 0]
    out = Pii(types=["phone"]).compute([text])
    assert out.texts == ["x@example.org 140.82.121.4 <PHONE> 4111 1111 1111 1111 DE89370400440532013000"]


def test_regions_and_public_ips() -> None:
    text = "Ring 030 23125456 or (202) 555-0143 or +33 1 99 00 12 34."
    assert Pii(regions=["de"]).compute([text]).texts == ["Ring <PHONE> or (202) 555-0143 or <PHONE>."]
    # No region: international numbers only.
    assert Pii(regions=[]).compute([text]).texts == ["Ring 030 23125456 or (202) 555-0143 or <PHONE>."]
    with pytest.raises(ValidationError, match="unknown phone regions"):
        Pii(regions=["XX"])
    private = "10.0.0.1 127.0.0.1 ::1 203.0.113.5 140.82.121.4"
    assert Pii().compute([private]).texts == ["10.0.0.1 127.0.0.1 ::1 203.0.113.5 <IP_ADDRESS>"]
    assert Pii(public_ips_only=False).compute([private]).texts == [" ".join(["<IP_ADDRESS>"] * 5)]


def test_dotted_numbers_that_are_not_addresses() -> None:
    # One-digit first numbers read as versions unless an address is spoken of.
    assert Pii().compute(["Tested on 2.6.38.6 and 4.8.3.1. Done"]).texts == [
        "Tested on 2.6.38.6 and 4.8.3.1. Done"
    ]
    assert Pii().compute(["DNS server 8.8.8.8"]).texts == ["DNS server <IP_ADDRESS>"]
    # A heading starts a line; the same quad ending a sentence is an address.
    assert Pii().compute(["Intro.\n12.2.2.2. Network setup"]).texts == ["Intro.\n12.2.2.2. Network setup"]
    assert Pii().compute(["Blocked 51.15.20.30. Then"]).texts == ["Blocked <IP_ADDRESS>. Then"]


def test_step_is_registered_and_params_round_trip() -> None:
    assert step_class("pii") is Pii and Pii.kind == "transform"
    params = Pii(types=["email"], mode="hash", salt="k").describe()["pii"]
    assert Pii(**params).params == Pii(types=["email"], mode="hash", salt="k").params
    assert params["types"] == ["email"]


# -- the step on tables and in a run -----------------------------------------------------


def _table(texts: list[str]) -> pa.Table:
    n = len(texts)
    return pa.table(
        {"id": [str(i) for i in range(n)], "text": texts, "source": ["t"] * n,
         "url": [None] * n, "metadata": [None] * n},
        schema=CORE_SCHEMA,
    )  # fmt: skip


def test_step_on_core_table_counts_and_never_rejects() -> None:
    texts = ["Write to a@example.org or b@example.org from 140.82.121.4.", "", "nothing here"]
    out = Pii()(_table(texts))
    assert REASON not in out.column_names
    assert out.column("text").to_pylist() == [
        "Write to <EMAIL> or <EMAIL> from <IP_ADDRESS>.",
        "",
        "nothing here",
    ]
    for signal in (*PII_TYPES, "chars_replaced"):
        assert out.schema.field(f"pii.{signal}").type == pa.int32()
    assert out.column("pii.email").to_pylist() == [2, 0, 0]
    assert out.column("pii.ip").to_pylist() == [1, 0, 0]
    assert out.column("pii.chars_replaced").to_pylist() == [13 + 13 + 12, 0, 0]
    empty = Pii()(_table([]))
    assert empty.num_rows == 0 and "pii.phone" in empty.column_names


def test_recipe_run_records_counts(tmp_path: Path) -> None:
    corpus = tmp_path / "in.jsonl"
    corpus.write_text("".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in DOCS))
    recipe = parse_recipe(
        f"name: pii\ninput: {{path: {corpus}}}\noutput: {tmp_path / 'out'}\nsteps:\n"
        "  - pii: {mode: hash, salt: test-salt}\n"
    )
    result = run_recipe(recipe, workers=1)
    assert result.totals["in"] == len(DOCS) == result.totals["kept"]
    [step] = result.manifest["steps"]
    assert step["name"] == "pii" and step["docs_rejected"] == 0
    kept = pa.concat_tables(pq.read_table(f) for f in sorted((tmp_path / "out" / "data").glob("*.parquet")))
    rows = {r["id"]: r for r in kept.to_pylist()}
    for doc in DOCS:
        kinds = Counter(kind for kind, _ in doc["pii"])
        assert [rows[doc["id"]][f"pii.{k}"] for k in PII_TYPES] == [kinds[k] for k in PII_TYPES]
        for _, value in doc["pii"]:
            assert value not in rows[doc["id"]]["text"]
    assert "<EMAIL:" in rows["signature-de"]["text"]


# -- invariants --------------------------------------------------------------------------

PIECES = st.sampled_from(
    [" ", ".", "-", "(", ")", "+", "@", ":", "/", "\n", "  ", "0", "1", "4", "9", "12", "255",
     "030", "2024", "a", "DE89", "x@y.org", "140.82.121.4", "::", "fe80", "4111", "+44 20 7946 0958",
     "3704 0044 0532 0130 00", "1111 1111 1111"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(PIECES, max_size=30).map("".join))
def test_detections_are_ordered_disjoint_and_rebuild_the_text(text: str) -> None:
    found = STEP.find(text)
    for d in found:
        assert 0 <= d.start < d.end <= len(text) and d.kind in PII_TYPES
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))
    out = STEP.compute([text])
    assert out.texts is not None
    rebuilt, last = [], 0
    for d in found:
        rebuilt += [text[last : d.start], DEFAULT_PLACEHOLDERS[d.kind]]
        last = d.end
    assert out.texts[0] == "".join([*rebuilt, text[last:]])
    assert sum(int(out.signals[k][0]) for k in PII_TYPES) == len(found)
