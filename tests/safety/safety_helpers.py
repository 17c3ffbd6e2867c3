"""The fault-injection suite: assay run as a hostile user would run it, as a real process.

Every hostile run goes through :func:`assay`, which starts ``python -m assay`` and checks
that nothing it printed is a traceback. :class:`Canaries` records files byte for byte
before a run and checks them after it: the inputs, a folder beside the output, and the
contents of a folder that is not assay's.

With ``ASSAY_HOSTILE_LOG=FILE`` set, every hostile command and every canary check is also
appended to FILE as a JSON line (test, command, exit code, the ``error:`` line; files checked,
lost and changed), from which the closing table of the safety work is drawn.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
# Drop the capabilities that let root ignore file permissions, so permission cases behave
# as they do for any user (CI runs as root).
UNPRIVILEGED = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search"]
needs_setpriv = pytest.mark.skipif(shutil.which("setpriv") is None,
                                   reason="dropping root's permission override needs setpriv (util-linux)")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def assay(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
          prefix: list[str] | None = None, timeout: float = 180) -> Outcome:
    """Run ``python -m assay ARGS``; fail the test on a traceback in anything it printed."""
    proc = subprocess.run([*(prefix or []), sys.executable, "-m", "assay", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})
    outcome = Outcome(proc.returncode, proc.stdout, proc.stderr)
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    _log(command=[str(a) for a in args], code=outcome.code, error=errors[0] if errors else "",
         traceback="Traceback" in outcome.output)
    assert "Traceback" not in outcome.output, outcome.output
    return outcome


def _log(**record: object) -> None:
    """Append one record to ``ASSAY_HOSTILE_LOG`` when it is set (see the module's text)."""
    log = os.environ.get("ASSAY_HOSTILE_LOG")
    if log:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": test, **record}) + "\n")


def concurrently(*commands: Callable[[], Outcome]) -> list[Outcome]:
    """Run independent commands (each :func:`assay` with its arguments bound) at the same
    time, each its own process; their outcomes, in order. For commands that share nothing
    they could change: each still starts Python and imports assay (PyTorch, for some) on
    its own, which is most of what a refused command costs."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda command: command(), commands))


def refused(outcome: Outcome, *words: str) -> None:
    """A clean refusal: exit 2 and one ``error:`` line holding ``words``."""
    assert outcome.code == 2, outcome.output
    lines = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, outcome.output
    for word in words:
        assert word in lines[0], outcome.output


class Canaries:
    """Files under some roots, recorded byte for byte."""

    def __init__(self, *roots: Path) -> None:
        self.roots = roots
        self.before = self._read()

    def _read(self) -> dict[Path, str]:
        found = {}
        for root in self.roots:
            files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            for path in files:
                found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    def intact(self) -> None:
        after = self._read()
        lost = sorted(str(p) for p in self.before if p not in after)
        changed = sorted(str(p) for p in self.before if p in after and after[p] != self.before[p])
        _log(canaries=len(self.before), lost=len(lost), changed=len(changed))
        assert not lost and not changed, f"lost {lost}, changed {changed}"


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def write_recipe(path: Path, input_path: str | Path, output: str | Path, *, name: str = "hostile",
                 steps: str = "  - exact_dedup: {}\n", extra: str = "") -> Path:
    path.write_text(f"name: {json.dumps(str(name))}\ninput:\n  path: {json.dumps(str(input_path))}\n"
                    f"{extra}output: {json.dumps(str(output))}\nsteps:\n{steps}")
    return path
