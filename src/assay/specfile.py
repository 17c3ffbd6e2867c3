"""YAML spec files (recipes, prepare recipes) with line numbers, and their located errors.

Every problem in a spec file is reported as ``FILE:LINE: message`` with the valid choices,
before any work starts. :func:`load_yaml` refuses what a data file should never be (a key
given twice, aliases that expand past :data:`MAX_NODES` nodes or refer to themselves,
nesting too deep to read) and records the line of every key and list item;
:func:`located_error` turns pydantic's most telling error into such a message.
"""

from __future__ import annotations

import difflib
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from assay.errors import AssayError

Location = tuple[Any, ...]


class RecipeError(AssayError, ValueError):
    """A recipe problem, located in its file."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        super().__init__(message, file=source, line=line)

    @property
    def source(self) -> str:
        return self.file or "<string>"


def located_error(
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
    line = line_of(lines, (*prefix, *loc))
    field = ".".join(str(p) for p in loc)
    owner = f"step {step!r}" if step else "the recipe"
    if err["type"] == "extra_forbidden":
        valid = field_names(model, loc[:-1])
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


def field_names(model: type[BaseModel], loc: Location) -> list[str]:
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


def line_of(lines: dict[Location, int], loc: Location) -> int | None:
    """The line of the deepest known node on the path ``loc``."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


# Expanded nodes a recipe may hold: real recipes have hundreds; aliases that expand past
# this are a "billion laughs" document, refused before anything walks the expansion.
MAX_NODES = 100_000


def load_yaml(text: str, source: str) -> tuple[Any, dict[Location, int]]:
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
