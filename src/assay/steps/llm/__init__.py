"""Steps that ask a language model (:mod:`assay.llm` is the client): rate against a rubric
(``llm_rate``), rephrase (``llm_rephrase``), refine with a program (``prox_refine``) and
synthesize from entities (``entigraph``). :mod:`.base` holds what they share."""
