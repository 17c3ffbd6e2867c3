"""Finding a data mixture from proxy runs: the runs table (:mod:`.runs`), the exponential
data mixing law (:mod:`.law`), the gradient-boosted regression RegMix uses
(:mod:`.regress`) and the search of the simplex under epoch caps (:mod:`.optimize`).

The maths are pure functions of arrays; ``assay mix`` (``cli/mix.py``) reads and writes."""
