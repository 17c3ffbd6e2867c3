"""Data selection toward a target: each selector is fitted on example sets, saved as a
model folder, and used by a recipe step that scores documents and keeps a share of them.

* ``dsir``: importance resampling on hashed n-grams (Xie et al. 2023).
* ``quality_classifier``: a hashed uni+bigram linear classifier, good vs. random (DCLM).
* ``perplexity``: a Kneser-Ney n-gram language model and CCNet's buckets (Wenzek et al. 2020).
* ``embedding_similarity``: cosine to a target set with all-MiniLM-L6-v2 (extra ``embed``).
* ``sample``: a seeded uniform sample by document id (what an LLM labels, FineWeb-Edu).
"""
