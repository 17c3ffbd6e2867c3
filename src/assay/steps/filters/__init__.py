"""Quality filters: signals per document and the thresholds of their papers (Gopher, C4,
FineWeb) and the language filter. One step per file."""
