"""Recipe validation: every mistake is reported before work starts, located, with choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.pipeline import with_executor
from assay.recipe import RecipeError, load_recipe, parse_recipe

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "sample_text.jsonl.gz"


def _recipe(steps: str, extra: str = "", path: str = str(SAMPLE)) -> str:
    return f"name: t\ninput:\n  path: {path}\noutput: out/t\n{extra}steps:\n{steps}"


def _error(text: str) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, source="r.yaml")
    return info.value


def test_valid_recipe_builds_steps_with_defaults() -> None:
    recipe = parse_recipe(_recipe("  - language: {keep: [en, de], min_score: 0.5}\n"))
    (step,) = recipe.steps
    assert step.name == "language"
    assert step.params.min_score == 0.5
    assert recipe.output.path == "out/t"
    assert recipe.output.format == "parquet"
    assert recipe.resolved()["steps"] == [{"language": {"keep": ["en", "de"], "min_score": 0.5}}]


def test_bare_step_name_and_null_params_are_accepted() -> None:
    recipe = parse_recipe(_recipe("  - language\n  - exact_dedup:\n"))
    assert [s.name for s in recipe.steps] == ["language", "exact_dedup"]


def test_unknown_step_names_line_and_choices() -> None:
    err = _error(_recipe("  - language: {}\n  - gopher_qualty: {}\n"))
    assert err.line == 7
    assert "unknown step 'gopher_qualty'" in str(err)
    assert "did you mean 'gopher_quality'" in str(err)
    assert "valid steps:" in str(err) and "exact_dedup" in str(err)
    assert str(err).startswith("r.yaml:7:")


def test_unknown_parameter_names_line_and_valid_parameters() -> None:
    err = _error(_recipe("  - language:\n      keep: [en]\n      min_scor: 0.3\n"))
    assert err.line == 8
    assert "unknown parameter 'min_scor'" in str(err)
    assert "did you mean 'min_score'" in str(err)
    assert "keep" in str(err)


def test_wrong_type_names_line_and_field() -> None:
    err = _error(_recipe("  - language:\n      min_score: high\n"))
    assert err.line == 7
    assert "min_score" in str(err) and "'high'" in str(err)


def test_missing_input_path_fails_before_work() -> None:
    err = _error(_recipe("  - language: {}\n", path="/no/such/corpus-*.jsonl"))
    assert err.line == 3
    assert "matches no file" in str(err)


def test_unknown_top_level_key() -> None:
    err = _error(_recipe("  - language: {}\n", extra="workerz: 3\n"))
    assert err.line == 5
    assert "unknown parameter 'workerz'" in str(err)


def test_missing_required_key() -> None:
    err = _error("name: t\noutput: out\nsteps: []\n")
    assert "missing required key 'input'" in str(err)


def test_yaml_syntax_error_is_located() -> None:
    err = _error("name: t\ninput: [unclosed\n")
    assert err.line is not None and err.line >= 2
    assert "invalid YAML" in str(err)


def test_recipe_is_data_only() -> None:
    # A Python tag is refused by the safe loader, never executed.
    err = _error("name: !!python/object/apply:os.system ['echo hacked']\n")
    assert "invalid YAML" in str(err)


def test_load_recipe_reports_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_recipe("  - nope: {}\n"))
    with pytest.raises(RecipeError, match=r"bad\.yaml:6: unknown step 'nope'"):
        load_recipe(path)


def test_example_recipe_is_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    recipe = load_recipe(root / "examples" / "web-quality.yaml", check_inputs=False)
    assert [s.name for s in recipe.steps] == [
        "language", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality",
        "exact_dedup",
    ]


def test_executor_block_chooses_ray_and_checks_its_settings() -> None:
    base = "name: r\ninput: {path: x.jsonl}\noutput: out\nsteps: []\n"
    recipe = parse_recipe(base + "executor: {type: ray, address: '10.0.0.5:6379', task_timeout_s: 60}\n",
                          check_inputs=False)
    ray = recipe.executor.ray_settings()
    assert ray is not None and ray.address == "10.0.0.5:6379" and ray.task_timeout_s == 60
    assert ray.max_retries == 3
    assert parse_recipe(base, check_inputs=False).executor.ray_settings() is None
    with pytest.raises(RecipeError) as bad:
        parse_recipe(base + "executor: {type: dask}\n", check_inputs=False)
    assert bad.value.line == 5 and "'local' or 'ray'" in str(bad.value)
    with pytest.raises(RecipeError, match="max_retries"):
        parse_recipe(base + "executor: {type: ray, max_retries: -1}\n", check_inputs=False)


def test_command_line_executor_overrides_the_recipe() -> None:
    base = "name: r\ninput: {path: x.jsonl}\noutput: out\nsteps: []\n"
    recipe = parse_recipe(base, check_inputs=False)
    ray = with_executor(recipe, "ray", "ray://head:10001")
    assert ray.resolved()["executor"]["type"] == "ray"
    assert ray.executor.ray_settings().address == "ray://head:10001"
    assert with_executor(recipe, None, None) is recipe
    with pytest.raises(RecipeError, match="--address needs the ray executor"):
        with_executor(recipe, None, "head:6379")
