"""Readers and writers by format, for local paths and any fsspec URL."""

from assay.io.readers import InputFile, RawChunk, decode_chunk, plan_chunks, resolve_inputs
from assay.io.writers import OutputFormat, write_table

__all__ = [
    "InputFile",
    "OutputFormat",
    "RawChunk",
    "decode_chunk",
    "plan_chunks",
    "resolve_inputs",
    "write_table",
]
