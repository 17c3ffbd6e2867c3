"""Deduplication: exact documents and URLs, near duplicates by MinHash LSH, and repeated
lines or paragraphs across the corpus. One step per file."""
