"""Recipe file -> validated :class:`Recipe`; the only place a recipe is parsed.

A recipe is data only: YAML is loaded with the safe loader, step names are looked up in
the registry and parameters are validated by each step's typed ``Params``. Every problem
is reported before any work starts, as ``FILE:LINE: message`` with the valid choices.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assay.engine.ids import IdPolicy
from assay.engine.plan import PipelineError, plan_stages
from assay.engine.settings import RaySettings
from assay.io.files import InputError, InputFile, resolve_inputs
from assay.io.writers import Compression, OutputFormat
from assay.llm.spec import LLMSpec
from assay.specfile import Location, RecipeError, line_of, load_yaml, located_error
from assay.steps import Step, step_class, step_names
from assay.steps.base import Seed
from assay.steps.llm.base import LLMStep


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSpec(_Strict):
    """Where the documents come from and which fields hold the core columns."""

    path: str | list[str] = Field(description="file, glob or fsspec URL (or a list of them)")
    format: Literal["auto", "jsonl", "parquet", "warc", "html"] = "auto"
    text_field: str = "text"
    id_field: str = "id"
    url_field: str = "url"
    source_field: str = "source"
    source: str | None = Field(None, description="source name when a record has none")
    id_policy: IdPolicy = Field(
        "keep", description="ids repeated across documents: keep (count and warn), prefix_source "
        "(make every id SOURCE/ID) or fail")


class OutputSpec(_Strict):
    """Where the curated output goes and in which format."""

    path: str
    format: OutputFormat = "parquet"
    compression: Compression | None = Field(None, description="default: zstd for parquet, none for jsonl")

    @property
    def resolved_compression(self) -> Compression:
        if self.compression is not None:
            return self.compression
        return "zstd" if self.format == "parquet" else "none"


class ExecutorSpec(_Strict):
    """What runs the recipe's tasks: worker processes on this machine, or a Ray cluster."""

    type: Literal["local", "ray"] = Field("local", description="local processes, or Ray tasks")
    workers: int | None = Field(
        None, ge=1, description="tasks at once; default: this machine's CPUs (local), the cluster's (ray)"
    )
    shard_mb: float = Field(2.0, gt=0, description="decoded input per shard (task), in MB")
    keep_work: bool = Field(False, description="keep intermediate stage data after success")
    address: str = Field(
        "auto", min_length=1,
        description="ray: auto (the cluster this machine is part of), local (start one here), "
        "HOST:PORT or ray://HOST:PORT",
    )
    max_retries: int = Field(3, ge=0, le=100, description="ray: retries of a task whose worker or node died")
    task_timeout_s: float | None = Field(
        None, gt=0, description="ray: stop and retry a task running longer than this"
    )
    connect_timeout_s: float = Field(15.0, gt=0, le=600, description="ray: how long to try reaching address")

    def ray_settings(self) -> RaySettings | None:
        """The Ray executor's settings, or None for the local executor."""
        if self.type != "ray":
            return None
        return RaySettings(self.address, self.max_retries, self.task_timeout_s, self.connect_timeout_s)


class _RecipeFile(_Strict):
    name: str
    input: InputSpec
    output: OutputSpec
    steps: list[Any] = Field(default_factory=list)
    seed: Seed = 0
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    llm: LLMSpec | None = Field(None, description="the model every LLM step asks (see docs/llm.md)")

    @field_validator("output", mode="before")
    @classmethod
    def _output_as_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class Recipe(BaseModel):
    """A validated recipe: inputs, output, the step objects, seed and executor settings."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    input: InputSpec
    output: OutputSpec
    steps: list[Step]
    seed: Seed = 0
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    llm: LLMSpec | None = None
    source: str = "<python>"

    def resolved(self) -> dict[str, Any]:
        """The recipe with every default filled in, as stored in the manifest."""
        return {
            "name": self.name,
            "input": self.input.model_dump(mode="json"),
            "output": self.output.model_dump(mode="json"),
            "steps": [step.describe() for step in self.steps],
            "seed": self.seed,
            "executor": self.executor.model_dump(mode="json"),
            **({"llm": self.llm.model_dump(mode="json")} if self.llm is not None else {}),
        }

    def input_files(self) -> list[InputFile]:
        return resolve_inputs(self.input.path, self.input.format)


def load_recipe(path: str | Path, *, check_inputs: bool = True) -> Recipe:
    """Read and validate a recipe file; raise :class:`RecipeError` on the first problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(source, None, f"cannot read recipe: {exc.strerror}") from None
    return parse_recipe(text, source=source, check_inputs=check_inputs)


def parse_recipe(text: str, *, source: str = "<string>", check_inputs: bool = True) -> Recipe:
    """Validate recipe YAML ``text``; ``source`` names it in error messages."""
    data, lines = load_yaml(text, source)
    if not isinstance(data, dict):
        raise RecipeError(source, 1, "a recipe is a mapping with keys name, input, output, steps")
    try:
        spec = _RecipeFile.model_validate(data)
    except ValidationError as exc:
        raise located_error(exc, source, lines, (), _RecipeFile) from None
    steps = [_build_step(item, i, source, lines) for i, item in enumerate(spec.steps)]
    for i, step in enumerate(steps):
        if isinstance(step, LLMStep):
            if spec.llm is not None:
                steps[i] = step = step.with_llm(spec.llm)
            if step.params.llm is None:
                raise RecipeError(source, line_of(lines, ("steps", i)),
                                  f"step {step.name} asks a language model: add an llm: block "
                                  "(backend, base_url, model) to the recipe or to the step")
    try:
        plan_stages(steps)
    except PipelineError as exc:
        raise RecipeError(source, line_of(lines, ("steps", exc.step)), exc.message) from None
    recipe = Recipe(
        name=spec.name, input=spec.input, output=spec.output, steps=steps, seed=spec.seed,
        executor=spec.executor, llm=spec.llm, source=source,
    )
    if check_inputs:
        try:
            recipe.input_files()
        except InputError as exc:
            raise RecipeError(source, line_of(lines, ("input", "path")), str(exc)) from None
    return recipe


def _build_step(item: Any, index: int, source: str, lines: dict[Location, int]) -> Step:
    here = ("steps", index)
    if isinstance(item, str):
        name, params = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, params = next(iter(item.items()))
        params = {} if params is None else params
    else:
        raise RecipeError(
            source, line_of(lines, here),
            "each step is written `- step_name: {param: value}`; got " + repr(item)[:80],
        )
    if not isinstance(params, dict):
        raise RecipeError(
            source, line_of(lines, (*here, name)),
            f"parameters of step {name!r} must be a mapping, got {type(params).__name__}",
        )
    try:
        cls = step_class(str(name))
    except KeyError:
        hint = difflib.get_close_matches(str(name), step_names(), n=1)
        did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
        raise RecipeError(
            source, line_of(lines, (*here, name)),
            f"unknown step {name!r}; {did_you_mean}valid steps: {', '.join(step_names())}",
        ) from None
    try:
        return cls(**params)
    except ValidationError as exc:
        raise located_error(exc, source, lines, (*here, name), cls.Params, step=str(name)) from None
