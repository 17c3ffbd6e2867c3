"""Recipe file -> validated :class:`Recipe`; the only place a recipe is parsed.

A recipe is data only: YAML is loaded with the safe loader, step names are looked up in
the registry and parameters are validated by each step's typed ``Params``. Every problem
is reported before any work starts, as ``FILE:LINE: message`` with the valid choices.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assay.engine.ids import IdPolicy
from assay.engine.plan import PipelineError, plan_stages
from assay.errors import AssayError
from assay.io.readers import InputError, InputFile, resolve_inputs
from assay.io.writers import Compression, OutputFormat
from assay.steps import Step, step_class, step_names
from assay.steps.base import Seed

Location = tuple[Any, ...]


class RecipeError(AssayError, ValueError):
    """A recipe problem, located in its file."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        super().__init__(message, file=source, line=line)

    @property
    def source(self) -> str:
        return self.file or "<string>"


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
    """How the local executor runs the recipe."""

    workers: int | None = Field(None, ge=1, description="worker processes; default: CPU count")
    shard_mb: float = Field(2.0, gt=0, description="decoded input per shard (task), in MB")
    keep_work: bool = Field(False, description="keep intermediate stage data after success")


class _RecipeFile(_Strict):
    name: str
    input: InputSpec
    output: OutputSpec
    steps: list[Any] = Field(default_factory=list)
    seed: Seed = 0
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)

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
    data, lines = _load_yaml(text, source)
    if not isinstance(data, dict):
        raise RecipeError(source, 1, "a recipe is a mapping with keys name, input, output, steps")
    try:
        spec = _RecipeFile.model_validate(data)
    except ValidationError as exc:
        raise _located(exc, source, lines, (), _RecipeFile) from None
    steps = [_build_step(item, i, source, lines) for i, item in enumerate(spec.steps)]
    try:
        plan_stages(steps)
    except PipelineError as exc:
        raise RecipeError(source, _line(lines, ("steps", exc.step)), exc.message) from None
    recipe = Recipe(
        name=spec.name, input=spec.input, output=spec.output, steps=steps, seed=spec.seed,
        executor=spec.executor, source=source,
    )
    if check_inputs:
        try:
            recipe.input_files()
        except InputError as exc:
            raise RecipeError(source, _line(lines, ("input", "path")), str(exc)) from None
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
            source, _line(lines, here),
            "each step is written `- step_name: {param: value}`; got " + repr(item)[:80],
        )
    if not isinstance(params, dict):
        raise RecipeError(
            source, _line(lines, (*here, name)),
            f"parameters of step {name!r} must be a mapping, got {type(params).__name__}",
        )
    try:
        cls = step_class(str(name))
    except KeyError:
        hint = difflib.get_close_matches(str(name), step_names(), n=1)
        did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
        raise RecipeError(
            source, _line(lines, (*here, name)),
            f"unknown step {name!r}; {did_you_mean}valid steps: {', '.join(step_names())}",
        ) from None
    try:
        return cls(**params)
    except ValidationError as exc:
        raise _located(exc, source, lines, (*here, name), cls.Params, step=str(name)) from None


def _located(
    exc: ValidationError,
    source: str,
    lines: dict[Location, int],
    prefix: Location,
    model: type[BaseModel],
    step: str | None = None,
) -> RecipeError:
    """Turn pydantic's most telling error into a located message with the valid choices: an
    unknown key first (a typo also makes a required key missing), else the first error."""
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(err["loc"])
    line = _line(lines, (*prefix, *loc))
    field = ".".join(str(p) for p in loc)
    owner = f"step {step!r}" if step else "the recipe"
    if err["type"] == "extra_forbidden":
        valid = _field_names(model, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
        return RecipeError(
            source, line,
            f"unknown parameter {field!r} for {owner}; {did_you_mean}valid: {', '.join(valid)}",
        )
    if err["type"] == "missing":
        return RecipeError(source, line, f"{owner} is missing required key {field!r}")
    got = err.get("input")
    return RecipeError(source, line, f"{field}: {err['msg']} (got {got!r}) in {owner}")


def _field_names(model: type[BaseModel], loc: Location) -> list[str]:
    """The keys valid at ``loc``: of the model that holds them, found through optional, list
    and dict fields."""
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None:
            continue
        stack = [info.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
                break
            stack.extend(get_args(annotation))
    return sorted(model.model_fields)


def _line(lines: dict[Location, int], loc: Location) -> int | None:
    """The line of the deepest known node on the path ``loc``."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


# Expanded nodes a recipe may hold: real recipes have hundreds; aliases that expand past
# this are a "billion laughs" document, refused before anything walks the expansion.
MAX_NODES = 100_000


def _load_yaml(text: str, source: str) -> tuple[Any, dict[Location, int]]:
    """Safe-load YAML and record the 1-based line of every key and list item.

    Refused with their line: invalid YAML, a key given twice in one mapping (a silent
    last-wins would hide a typo), aliases that expand past :data:`MAX_NODES` nodes or refer
    to themselves, and nesting too deep to read.
    """
    loader = yaml.SafeLoader(text)  # the safe loader refuses tags such as !!python/object
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _check_nodes(root, source)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RecipeError(
            source, mark.line + 1 if mark else None, f"invalid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    except RecursionError:
        raise RecipeError(source, None, "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    lines: dict[Location, int] = {}
    _index_lines(root, (), lines)
    return data, lines


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Duplicate keys, self-referring aliases and the expanded size, without expanding: an
    alias is the same node object as its anchor, so each distinct node is sized once."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise RecipeError(source, node.start_mark.line + 1,
                                  f"the YAML expands to more than {MAX_NODES:,} nodes (aliases that "
                                  "repeat aliases); a recipe is far smaller")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise RecipeError(source, node.start_mark.line + 1, "a YAML alias refers to itself")
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, source)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_keys(node: yaml.MappingNode, source: str) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            raise RecipeError(source, line, f"key {key.value!r} is given twice in one mapping (first on "
                                            f"line {seen[key.value]}); keep one")
        seen[key.value] = line


def _index_lines(node: yaml.Node, loc: Location, lines: dict[Location, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, key.value)
            lines[child] = key.start_mark.line + 1
            _index_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*loc, i), lines)
