"""The step reference of the manual (docs/hooks.py), generated from the step registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from assay.steps import step_class, step_names

ROOT = Path(__file__).resolve().parents[1]


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_registered_step_has_a_section_with_its_parameters_and_signals() -> None:
    page = _hooks().steps_page()
    for name in step_names():
        cls = step_class(name)
        assert f"## {name} {{#{name}}}" in page
        section = page.split(f"## {name} {{#{name}}}", 1)[1].split("\n## ", 1)[0]
        assert f"Kind: **{cls.kind}**" in section
        for parameter in cls.Params.model_fields:
            assert f"| `{parameter}` |" in section, (name, parameter)
        for signal in cls.signal_types:
            assert f"`{name}.{signal}`" in section, (name, signal)


def test_defaults_read_as_a_recipe_writes_them() -> None:
    hooks = _hooks()
    language = hooks.step_section("language")
    assert '| `keep` | `list[str] | None` | `["en"]` |' in language
    assert "| `min_score` | `float` | `0.65` |" in language
    row = next(line for line in hooks.step_section("decontaminate").splitlines()
               if line.startswith("| `benchmarks` |"))
    assert "| required |" in row
    assert "PydanticUndefined" not in hooks.steps_page()
