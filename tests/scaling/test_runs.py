"""Reading runs files; every bad input is an error naming the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assay.scaling.fit import fit_groups
from assay.scaling.laws import ChinchillaLaw, DataConstrainedLaw, PowerLaw
from assay.scaling.runs import RunsError, law_inputs, read_runs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text(text)
    return path


def rows(count: int) -> str:
    """``count`` valid params,tokens,loss rows."""
    pairs = [(n, d) for n in (1e7, 1e8, 1e9, 1e10) for d in (1e9, 1e10, 1e11)][:count]
    return "".join(f"{n:g},{d:g},{2 + 1e3 / n ** 0.3 + 1e3 / d ** 0.3}\n" for n, d in pairs)


def test_reads_aliases_groups_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "N,D,Loss,unique_tokens,Recipe,note\n1e8,2e9,3.1,1e9,a,x\n\n"
                           "2e8,4e9,3.0,1e9,b,y\n")
    runs = read_runs(path)
    np.testing.assert_array_equal(runs.columns["N"], [1e8, 2e8])
    np.testing.assert_array_equal(runs.columns["U"], [1e9, 1e9])
    np.testing.assert_array_equal(runs.lines, [2, 4])
    assert list(runs.by_group()) == ["a", "b"]


def test_flops_stand_in_for_tokens(tmp_path: Path) -> None:
    text = "params,FLOPs,loss\n" + "".join(f"{n:g},{6 * n * 1e10:g},3.0\n" for n in (1e7, 1e8, 1e9, 1e10))
    logx, _ = law_inputs(PowerLaw(x="D"), read_runs(write(tmp_path, text)))
    np.testing.assert_allclose(np.exp(logx["D"]), 1e10)
    bad = read_runs(write(tmp_path, text + "1e9,0,3.0\n"))
    with pytest.raises(RunsError, match=r"runs.csv:6: FLOPs/\(6\*params\) is 0"):
        law_inputs(PowerLaw(x="D"), bad)


def test_custom_target_column(tmp_path: Path) -> None:
    runs = read_runs(write(tmp_path, "tokens,bleu\n1e9,12\n"), target="bleu")
    assert runs.target == "bleu"
    np.testing.assert_array_equal(runs.columns["bleu"], [12.0])


@pytest.mark.parametrize(("text", "message"), [
    ("params,loss\n" + "1e8,3\n" * 7, "missing column 'tokens'"),
    ("params,tokens\n1e8,1e9\n", "no 'loss' column"),
    ("params,tokens,loss\n" + rows(6) + "1e9,-5,3\n", r"runs.csv:8: tokens is -5; must be a positive"),
    ("params,tokens,loss\n" + rows(6) + "0,1e9,3\n", r"runs.csv:8: params is 0"),
    ("params,tokens,loss\n" + rows(2) + "1e9,1e10,nan\n" + rows(4), r"runs.csv:4: loss is empty or NaN"),
    ("params,tokens,loss\n" + rows(3) + "1e9,,3\n" + rows(3), r"runs.csv:5: tokens is empty or NaN"),
    ("params,tokens,loss\n" + rows(6) + "1e9,1e10,inf\n", r"runs.csv:8: loss is inf"),
    ("params,tokens,loss\n" + rows(2) + "1e9,ten,3\n", r"runs.csv:4: tokens 'ten' is not a number"),
    ("params,tokens,loss\n" + rows(2) + "1e9,1e10\n", r"runs.csv:4: 2 cells, the header has 3"),
    ("params,tokens,loss\n" + rows(5), r"5 run\(s\) for the 5-parameter chinchilla law; need at least 6"),
    ("params,tokens,loss\n", "no data rows"),
    ("", "empty file"),
    ("params,tokens,n,loss\n1,1,1,1\n", "both mean params"),
])
def test_bad_input_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RunsError, match=message):
        law_inputs(ChinchillaLaw(), read_runs(write(tmp_path, text)))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RunsError, match="cannot read"):
        read_runs(tmp_path / "absent.csv")


def test_data_constrained_law_needs_unique_tokens(tmp_path: Path) -> None:
    with pytest.raises(RunsError, match="missing column 'unique_tokens'"):
        law_inputs(DataConstrainedLaw(), read_runs(write(tmp_path, "params,tokens,loss\n" + rows(12))))


def test_too_few_runs_in_one_group(tmp_path: Path) -> None:
    text = "params,tokens,loss,group\n" + "".join(f"{r.rstrip()},{'a' if i < 8 else 'b'}\n"
                                                  for i, r in enumerate(rows(12).splitlines()))
    with pytest.raises(RunsError, match=r"group 'b': .*4 run\(s\)"):
        fit_groups(ChinchillaLaw(), read_runs(write(tmp_path, text)), bootstrap=0)
