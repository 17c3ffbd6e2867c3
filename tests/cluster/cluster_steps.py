"""Steps for the cluster tests, imported by the test drivers and by the Ray workers (the
cluster starts with this folder on PYTHONPATH), never by the pytest process itself. The
engine tests' steps (``tests/engine/steps_for_tests.py``, e.g. ``fail_on_for_test``) are
there too."""

from __future__ import annotations

import os
import random
import time

import pyarrow as pa

from assay.documents import ID
from assay.steps import DocumentStep, StepOutput, StepParams, register


class ShuffleParams(StepParams):
    max_sleep_s: float = 0.5
    log: str | None = None  # a file each task appends its first document's id to, when done


@register
class Shuffle(DocumentStep):
    """Sleeps a random time per shard (seeded by its first id) so tasks finish in an order
    unlike the one they started in; keeps every row. Each task logs its node and its first
    id (cluster tests only)."""

    name = "shuffle_for_test"
    kind = "signal"
    Params = ShuffleParams

    def __call__(self, table: pa.Table) -> pa.Table:
        first = table.column(ID)[0].as_py() if table.num_rows else ""
        time.sleep(random.Random(first).uniform(0, self.params.max_sleep_s))
        if self.params.log:
            import ray  # the Ray executor's tasks say which node they ran on

            node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "here"
            with open(self.params.log, "a", encoding="utf-8") as log:
                log.write(f"{node}\t{first}\n")
        return super().__call__(table)

    def compute(self, texts: list[str]) -> StepOutput:
        return StepOutput({})


class StallParams(StepParams):
    folder: str  # where the first attempt of a shard leaves a mark
    shards: int = 2  # how many shards stall


@register
class Stall(DocumentStep):
    """On a Ray worker, hangs the first attempt at the first ``shards`` shards to arrive for
    a minute; later attempts, other shards and any run off Ray pass at once (cluster tests
    only)."""

    name = "stall_for_test"
    kind = "signal"
    Params = StallParams

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        first = table.column(ID)[0].as_py() if table.num_rows else ""
        if ray.is_initialized() and first not in _stalled(self.params.folder):
            for slot in range(self.params.shards):  # claim a free slot, atomically
                try:
                    fd = os.open(os.path.join(self.params.folder, f"slot-{slot}"),
                                 os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    continue
                os.write(fd, first.encode())
                os.close(fd)
                time.sleep(60)
                break
        return super().__call__(table)

    def compute(self, texts: list[str]) -> StepOutput:
        return StepOutput({})


def _stalled(folder: str) -> set[str]:
    out = set()
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), encoding="utf-8") as slot:
            out.add(slot.read())
    return out
