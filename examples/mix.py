"""A mixture search on the bundled sample, end to end: proxies on 32 mixtures
(`assay mix search`), the mixing law and RegMix's regressor (`assay mix fit`), then the chosen
mixture (the law's when its runs identify it, else RegMix's) against the natural
(token-proportional) and the uniform one in `assay compare` with three seeds, on the target
(held-out loss on the Debian installation guide: `bpb:guide` in the comparison).

usage: .venv/bin/python examples/mix.py        (about 16 CPU minutes; 11 minutes on 2 cores)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from assay.quantities import parse_count

ASSAY = str(Path(sys.executable).with_name("assay"))
SPEC = Path("examples/mix-search.yaml")


def run(*args: str) -> str:
    print("$ assay", " ".join(args), flush=True)
    done = subprocess.run([ASSAY, *args], capture_output=True, text=True)
    print(done.stdout + done.stderr, flush=True)
    if done.returncode:
        sys.exit(done.returncode)
    return done.stdout


def main() -> None:
    if not Path("out/dedup/manifest.json").exists():
        run("run", "examples/dedup.yaml")
    spec = yaml.safe_load(SPEC.read_text())
    out = Path(spec["output"])
    run("mix", "search", str(SPEC))
    base = json.loads((out / "base" / "manifest.json").read_text())["sources"]
    unique = {d: base[d]["unique_tokens"] for d in spec["domains"]}
    tokens = str(spec["proxy"]["tokens"])
    report = json.loads(run("mix", "fit", str(out / "runs.csv"), "--optimize", "--json", "--model", "gbm",
                            "--tokens", tokens, "--unique", ",".join(f"{d}={n}" for d, n in unique.items()),
                            "--max-epochs", str(spec["max_epochs"])))
    model = "law" if report["law"]["identified"] else "gbm"
    print(f"the chosen mixture: the {model}'s", flush=True)
    total = sum(unique.values())
    mixtures = {"optimised": report["optimum"][model]["weights"],
                "natural": {d: n / total for d, n in unique.items()},
                "uniform": {d: 1 / len(unique) for d in unique}}
    recipes = []
    for name, weights in mixtures.items():
        recipe = {"name": name, "output": str(out / "compare-shards" / name), "seed": spec["seed"],
                  "tokenizer": {"path": str(out / "base" / "tokenizer.json")},
                  "mixture": {"total_tokens": parse_count(str(tokens)), "max_epochs": spec["max_epochs"],
                              "sources": {d: {**spec["domains"][d], "weight": round(w, 6)}
                                          for d, w in weights.items()}},
                  "packing": {"method": "concat", "context": spec["proxy"]["context"]},
                  "heldout": spec["heldout"]}
        path = out / f"prepare-{name}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        recipes.append(str(path))
    lr = ["--lr", str(spec["proxy"]["lr"])] if spec["proxy"].get("lr") else []
    target = spec["target"]["domains"]
    metric = ["--metric", f"bpb:{target[0]}"] if len(target) == 1 else []  # the verdicts judge the target
    run("compare", *recipes, "--model", spec["proxy"]["model"], "--tokens", tokens, "--seeds", "3", *lr,
        *metric, "--threads", "1", "--precision", "fp32", "--out", str(out / "compare"))


if __name__ == "__main__":
    main()
