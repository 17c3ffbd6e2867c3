"""Input and output: finding input files (:mod:`.files`), cutting and decoding them into
core-schema tables (:mod:`.readers`, web formats in :mod:`.web`, the chunks between them
in :mod:`.chunks`), writing shards (:mod:`.writers`), and the folders assay owns
(:mod:`.ownership`)."""

from assay.io.chunks import RawChunk
from assay.io.files import InputFile, resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks
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
