#!/usr/bin/env bash
# FineWeb-Edu end to end on the bundled sample: an LLM rates a sample (needs the server named
# in examples/fineweb-edu.yaml), a regression learns the scores, the regression selects at scale.
set -euo pipefail
ASSAY=${ASSAY:-.venv/bin/assay}
$ASSAY run examples/fineweb-edu.yaml "$@"
$ASSAY select train-classifier --labelled out/fineweb-edu/rated --target llm_rate.score \
    --threshold 3 --out out/fineweb-edu/model
$ASSAY run examples/fineweb-edu-apply.yaml --overwrite
