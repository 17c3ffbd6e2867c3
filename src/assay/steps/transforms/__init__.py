"""Transforms: steps that rewrite ``text`` (main-text extraction from HTML, personal-data
redaction) and record what they changed as signals. One step per file."""
