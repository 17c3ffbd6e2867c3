"""The ``assay prepare`` command: run a prepare recipe, or inspect prepared shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from assay.cli.common import ExecutorKind, console, fail, guarded, ray_settings
from assay.prepare.inspection import print_inspection
from assay.prepare.reader import Shards
from assay.prepare.recipe import load_prepare_recipe
from assay.prepare.run import prepare


@guarded
def prepare_command(
    recipe: Annotated[Path | None, typer.Argument(help="prepare recipe YAML (tokenizer, mixture, packing)")]
    = None,
    inspect: Annotated[Path | None, typer.Option("--inspect", help="print what SHARDS hold, decode a sample")]
    = None,
    force: Annotated[bool, typer.Option(help="allow sources repeated beyond their max_epochs")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace the shards in an output folder assay wrote")]
    = False,
    dry_run: Annotated[bool, typer.Option(help="tokenize and plan the mixture, write no shards")] = False,
    resume: Annotated[bool, typer.Option(help="finish a prepare that stopped part-way in the same output")]
    = False,
    samples: Annotated[int, typer.Option(help="documents to decode with --inspect")] = 2,
    seed: Annotated[int, typer.Option(help="seed of the --inspect sample")] = 0,
    executor: Annotated[ExecutorKind, typer.Option(
        help="tokenize here (local) or as Ray tasks on a cluster (ray)")] = ExecutorKind.local,
    address: Annotated[str | None, typer.Option(
        help="with --executor ray: auto, local, HOST:PORT or ray://HOST:PORT")] = None,
) -> None:
    """Tokenize curated outputs into training shards: mixture, repetition limits, packing.

    `assay prepare RECIPE` writes the shards; `assay prepare --inspect SHARDS` prints tokens
    per source, phase and bucket, and decodes a sample. With `--executor ray` the sources
    are tokenized by Ray tasks (the mixture is drawn here); the shards are the same bytes.
    A prepare killed part-way is finished by `--resume` (or the same command again): the
    shards are byte-identical to an uninterrupted run's.

    Example: assay prepare examples/prepare.yaml
    """
    if (recipe is None) == (inspect is None):
        raise fail("give a RECIPE or --inspect SHARDS (one of them)")
    if inspect is not None:
        print_inspection(Shards(inspect), console, samples=samples, seed=seed)
        return
    assert recipe is not None
    spec = load_prepare_recipe(recipe)
    ray = ray_settings(executor, address)
    result = prepare(spec, force=force, overwrite=overwrite, resume=resume, dry_run=dry_run,
                     log=console.print, ray=ray)
    m = result.manifest
    for name, s in m["sources"].items():
        console.print(f"{name}: {s['tokens']:,} tokens of {s['unique_tokens']:,} unique, "
                      f"{s['epochs']:.2f} epochs, effective {s['effective_tokens']:,.0f} "
                      f"({s['effective_fraction']:.0%})")
    if dry_run:
        console.print(f"dry run: {m['totals']['tokens']:,} tokens planned; no shards written")
        return
    console.print(f"{m['totals']['tokens']:,} tokens in {len(m['phases'])} phase(s) → {result.output}/ "
                  f"(assay prepare --inspect {result.output})")
