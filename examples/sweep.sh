#!/usr/bin/env bash
# A scaling sweep on a CPU: 3 model sizes x 3 token budgets of tiny GPTs on the bundled
# sample, each point with its Step Law learning rate and batch, fitted with `assay fit`.
# One thread: tiny models gain nothing from a second one, and on a shared machine two threads
# wait on each other. examples/sweep-runs.csv holds one run's results (from before the held-out
# split grew from 10 documents to 40).
set -euo pipefail
ASSAY=${ASSAY:-.venv/bin/assay}
[ -f out/dedup/manifest.json ] || $ASSAY run examples/dedup.yaml
[ -f out/sweep-shards/manifest.json ] || $ASSAY prepare examples/sweep-prepare.yaml
$ASSAY sweep out/sweep-shards --sizes 2x32,2x64,3x96 --tokens 250k,500k,1M \
    --precision fp32 --threads 1 --out out/sweep
$ASSAY fit out/sweep/runs.csv --bootstrap 200
