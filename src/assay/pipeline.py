"""The Python entry point: ``assay.Pipeline([...]).run(input, output)``.

A recipe file and a ``Pipeline`` built in Python end in the same :func:`run_recipe`, so
both paths validate, run and record the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from assay.engine.driver import run_pipeline
from assay.engine.layout import Layout
from assay.engine.settings import Notice, Progress, RunResult, RunSettings
from assay.io.chunks import FieldMap
from assay.recipe import ExecutorSpec, InputSpec, OutputSpec, Recipe
from assay.specfile import RecipeError
from assay.steps import Step


class Pipeline:
    """An ordered list of steps, runnable over any input into an output folder."""

    def __init__(self, steps: Sequence[Step], *, name: str = "pipeline", seed: int = 0) -> None:
        self.steps = list(steps)
        self.name = name
        self.seed = seed

    def run(
        self,
        input: str | Sequence[str] | InputSpec,
        output: str | OutputSpec,
        *,
        workers: int | None = None,
        shard_mb: float | None = None,
        strict: bool = False,
        overwrite: bool = False,
        keep_work: bool | None = None,
        progress: Progress | None = None,
        executor: ExecutorSpec | None = None,
    ) -> RunResult:
        """Run the steps; see :class:`~assay.recipe.InputSpec` for input options and
        :class:`~assay.recipe.ExecutorSpec` for ``executor`` (e.g. ``ExecutorSpec(type="ray",
        address="10.0.0.5:6379")``); the keywords ``workers``, ``shard_mb`` and ``keep_work``,
        where given, replace its entries."""
        if not isinstance(input, InputSpec):
            input = InputSpec(path=input if isinstance(input, str) else list(input))
        if not isinstance(output, OutputSpec):
            output = OutputSpec(path=output)
        recipe = Recipe(
            name=self.name, input=input, output=output, steps=self.steps, seed=self.seed,
            executor=(executor or ExecutorSpec()).model_copy(update={
                key: value for key, value in
                (("workers", workers), ("shard_mb", shard_mb), ("keep_work", keep_work)) if value is not None
            }),
        )
        return run_recipe(recipe, strict=strict, overwrite=overwrite, progress=progress)

    def __repr__(self) -> str:
        return f"Pipeline({self.steps!r})"


def with_executor(recipe: Recipe, kind: str | None, address: str | None) -> Recipe:
    """``recipe`` with the command line's executor choice over the recipe's own (the
    manifest then records what ran)."""
    if address is not None and (kind or recipe.executor.type) != "ray":
        raise RecipeError(recipe.source, None, "--address needs the ray executor (--executor ray)")
    update: dict[str, Any] = {}
    if kind is not None:
        update["type"] = kind
    if address is not None:
        update["address"] = address
    if not update:
        return recipe
    return recipe.model_copy(update={"executor": recipe.executor.model_copy(update=update)})


def run_recipe(
    recipe: Recipe,
    *,
    workers: int | None = None,
    strict: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
    notice: Notice | None = None,
) -> RunResult:
    """Run a validated recipe; ``workers`` overrides the recipe's executor setting.

    A run into an output that holds an unfinished run of the same recipe finishes it;
    ``resume=True`` additionally requires such a run to exist.
    """
    spec = recipe.input
    ray = recipe.executor.ray_settings()
    output = recipe.output.path
    if ray is not None and "://" not in output:
        output = os.path.abspath(output)  # Ray's workers do not share this process's folder
    settings = RunSettings(
        name=recipe.name,
        inputs=recipe.input_files(),
        fields=FieldMap(
            text=spec.text_field, id=spec.id_field, url=spec.url_field,
            source=spec.source_field, default_source=spec.source,
            prefix_source=spec.id_policy == "prefix_source",
        ),
        layout=Layout(output, recipe.output.format,
                      recipe.output.resolved_compression),
        # 0 asks the Ray executor for every CPU of the cluster
        workers=workers or recipe.executor.workers or (0 if ray else os.cpu_count() or 1),
        shard_bytes=int(recipe.executor.shard_mb * 1_000_000),
        seed=recipe.seed,
        strict=strict,
        keep_work=recipe.executor.keep_work,
        overwrite=overwrite,
        resume=resume,
        id_policy=spec.id_policy,
        ray=ray,
        resolved_recipe=recipe.resolved(),
    )
    return run_pipeline(recipe.steps, settings, progress, notice)
