"""Reading example sets (targets, positives, negatives, reference corpora) for selectors.

An example set is a list of JSONL or Parquet files, globs or fsspec URLs, or the output
folder of an earlier assay run (its kept documents, ``OUTPUT/data/``). Records are read
with the same readers as a run's input; malformed records are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import fsspec
import pyarrow as pa

from assay.documents import CORE_SCHEMA
from assay.io.chunks import FieldMap
from assay.io.files import InputError, InputFile, resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks

CHUNK_BYTES = 4_000_000


@dataclass(frozen=True)
class ExampleSet:
    """Where an example set is: paths (files, globs, URLs or assay output folders) and the
    field that holds the text."""

    paths: tuple[str, ...]
    text_field: str = "text"

    @classmethod
    def of(cls, paths: str | Sequence[str], text_field: str = "text") -> ExampleSet:
        return cls((paths,) if isinstance(paths, str) else tuple(paths), text_field)

    def files(self) -> list[InputFile]:
        """The files of the set; an assay output folder stands for its ``data/`` files."""
        return resolve_inputs([_expand(p) for p in self.paths])


def _expand(path: str) -> str:
    fs, local = fsspec.core.url_to_fs(path)
    if fs.isdir(local):
        if fs.exists(f"{local.rstrip('/')}/manifest.json"):
            for pattern in ("*.parquet", "*.jsonl*"):
                if fs.glob(f"{local.rstrip('/')}/data/{pattern}"):
                    return f"{path.rstrip('/')}/data/{pattern}"
            raise InputError(f"{path}: an assay output with no kept documents in data/")
        raise InputError(f"{path} is a folder but not an assay output (no manifest.json)")
    return path


def check_example_set(paths: str | Sequence[str]) -> None:
    """Raise ValueError (InputError) when ``paths`` name no readable file."""
    ExampleSet.of(paths).files()


def iter_texts(examples: ExampleSet, files: Sequence[InputFile] | None = None) -> Iterator[list[str]]:
    """The texts of an example set (or of some of its ``files``), in batches of a few MB."""
    fields = FieldMap(text=examples.text_field)
    for chunk in plan_chunks(list(files) if files is not None else examples.files(), CHUNK_BYTES):
        table, _bad = decode_chunk(chunk, fields)
        yield table.column("text").to_pylist()


def read_documents(examples: ExampleSet) -> pa.Table:
    """Every document of an example set, in order, as core-schema rows."""
    fields = FieldMap(text=examples.text_field)
    tables = [decode_chunk(chunk, fields)[0] for chunk in plan_chunks(examples.files(), CHUNK_BYTES)]
    return pa.concat_tables(tables) if tables else CORE_SCHEMA.empty_table()


def read_texts(examples: ExampleSet) -> list[str]:
    """Every text of an example set, in order."""
    return [text for batch in iter_texts(examples) for text in batch]


def labelled_files(examples: ExampleSet) -> list[InputFile]:
    """The files of a labelled set: an assay output folder stands for its kept AND rejected
    documents, since a document scored and then rejected (under an ``llm_rate`` threshold,
    by a later filter) still carries its label; training only on the kept ones would cut
    the target off at the threshold."""
    paths: list[str] = []
    for path in examples.paths:
        paths.append(_expand(path))
        fs, local = fsspec.core.url_to_fs(path)
        rejected = f"{local.rstrip('/')}/rejected"
        if fs.isdir(local) and fs.exists(f"{local.rstrip('/')}/manifest.json"):
            paths += [f"{path.rstrip('/')}/rejected/{pattern}" for pattern in ("*.parquet", "*.jsonl*")
                      if fs.glob(f"{rejected}/{pattern}")]
    return resolve_inputs(paths)


def read_labelled(examples: ExampleSet, target: str) -> tuple[list[str], list[float], int]:
    """``(texts, values, skipped)``: every text of a labelled set (:func:`labelled_files`)
    with its numeric field ``target`` (a column of an assay output such as
    ``llm_rate.score``, or a JSONL field); records without a number there are skipped and
    counted."""
    import orjson

    texts: list[str] = []
    values: list[float] = []
    skipped = 0
    fields = FieldMap(text=examples.text_field)
    for chunk in plan_chunks(labelled_files(examples), CHUNK_BYTES):
        table, _bad = decode_chunk(chunk, fields)
        for text, metadata in zip(table.column("text").to_pylist(), table.column("metadata").to_pylist(),
                                  strict=True):
            value = orjson.loads(metadata).get(target) if metadata else None
            if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
                texts.append(text)
                values.append(float(value))
            else:
                skipped += 1
    return texts, values, skipped
