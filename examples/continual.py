"""Continual pre-training on the bundled sample, with and without replay: a proxy trained on
a first group of sources (the Debian installation guide and the declarations of human
rights) continues on a second (the manual pages), once on the manual pages alone and once
with 25% of its tokens replaying the first group; the first group's held-out loss before and
after measures the forgetting, and a PNG per continuation shows it over training.

usage: .venv/bin/python examples/continual.py        (about 2 CPU minutes)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ASSAY = str(Path(sys.executable).with_name("assay"))
OUT = Path("out/continual")
FIRST = {"guide": ["debian-installation-guide"], "udhr": ["udhr2 (nltk_data)"]}
SECOND = {"manpages": ["manpages-l10n"]}
PROXY = ["--model", "2x64", "--lr", "0.003", "--threads", "1", "--precision", "fp32"]
SECOND_TOKENS = 500_000


def run(*args: str) -> str:
    print("$ assay", " ".join(args), flush=True)
    done = subprocess.run([ASSAY, *args], capture_output=True, text=True)
    print(done.stdout + done.stderr, flush=True)
    if done.returncode:
        sys.exit(done.returncode)
    return done.stdout


def recipe(name: str, sources: dict[str, tuple[list[str], dict]], tokenizer: dict | None = None,
           total_tokens: int | None = None) -> str:
    """A prepare recipe over out/dedup; the same seed and held-out settings everywhere, so a
    source's held-out documents are the same in every recipe that has it."""
    path = OUT / f"{name}.yaml"
    mixture: dict = {"sources": {s: {"path": "out/dedup", "select": sel, **weight}
                                 for s, (sel, weight) in sources.items()}}
    if total_tokens:
        mixture["total_tokens"] = total_tokens
    spec = {"name": name, "output": str(OUT / name), "seed": 0,
            "tokenizer": tokenizer or {"path": str(OUT / "first" / "tokenizer.json")}, "mixture": mixture,
            "packing": {"method": "concat", "context": 64}, "heldout": {"fraction": 0.1, "max_documents": 20}}
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def heldout(run_folder: Path) -> dict[str, float]:
    result = json.loads((run_folder / "result.json").read_text())
    return {name: s["loss"] for name, s in result["heldout"]["sources"].items()}


def main() -> None:
    if not Path("out/dedup/manifest.json").exists():
        run("run", "examples/dedup.yaml")
    first = {s: (sel, {"epochs": 1}) for s, sel in FIRST.items()}
    run("prepare", recipe("first", first, tokenizer={"train": {"vocab_size": 1024, "max_mb": 8}}))
    unique = json.loads((OUT / "first" / "manifest.json").read_text())["sources"]
    share = {s: unique[s]["unique_tokens"] / sum(unique[x]["unique_tokens"] for x in FIRST) for s in FIRST}
    for replay in (0, 25):
        sources = {s: (sel, {"weight": 1 - replay / 100}) for s, sel in SECOND.items()}
        if replay:
            sources |= {s: (sel, {"weight": replay / 100 * share[s]}) for s, sel in FIRST.items()}
        run("prepare", recipe(f"second-{replay}", sources, total_tokens=SECOND_TOKENS))
    # Every run is scored on the held-out documents of all three sources (those of the
    # 25%-replay shards: the first group's are the same documents as in `first`).
    evaluation = str(OUT / "second-25")
    run("train", str(OUT / "first"), *PROXY, "--tokens", "1M", "--eval", evaluation,
        "--out", str(OUT / "base"))
    for replay in (0, 25):
        run("train", str(OUT / f"second-{replay}"), *PROXY, "--tokens", str(SECOND_TOKENS),
            "--init", str(OUT / "base"), "--eval", evaluation, "--eval-every", "25",
            "--out", str(OUT / f"after-{replay}"), "--plot", str(OUT / f"after-{replay}.png"))
    before = heldout(OUT / "base")
    print(f"held-out loss (nats/token) before and after {SECOND_TOKENS:,} tokens of continual pre-training")
    print(f"{'source':10} {'base':>8} {'0% replay':>10} {'25% replay':>11}")
    for source in [*FIRST, *SECOND]:
        after = [heldout(OUT / f"after-{r}")[source] for r in (0, 25)]
        print(f"{source:10} {before[source]:8.4f} {after[0]:10.4f} {after[1]:11.4f}")
    for replay in (0, 25):
        forgetting = {s: heldout(OUT / f"after-{replay}")[s] - before[s] for s in FIRST}
        print(f"forgetting with {replay}% replay: "
              + ", ".join(f"{s} {v:+.4f}" for s, v in forgetting.items()))


if __name__ == "__main__":
    main()
