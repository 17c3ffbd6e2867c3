"""Checkpoints in safetensors: the model, the AdamW state and the step, in one file.

``RUN/checkpoint.safetensors`` holds tensors named ``model.<parameter>`` (the tied output
layer once, as ``model.wte.weight``) and ``optim.<i>.<state>`` (AdamW's ``step``,
``exp_avg`` and ``exp_avg_sq`` of parameter ``i`` in the optimizer's order), and in its
metadata ``assay`` a JSON object: format, step, tokens seen, the model shape and the train
configuration. Nothing in it is executable (unlike a pickle), and any safetensors reader
loads the weights: ``safetensors.torch.load_file(path)``.

The batch of a step is a pure function of the step (:mod:`assay.train.data`) and the model
has no dropout, so the model, the optimizer state and the step are all a resumed run needs
to continue exactly as an uninterrupted one. The file is written under a temporary name and
renamed, so a run killed while saving keeps its previous checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from assay.train.config import TrainError

FORMAT = "assay-checkpoint-1"
FILE = "checkpoint.safetensors"


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    meta: dict[str, Any]) -> Path:
    """Write model, optimizer state (unless None: the weights alone) and ``meta``
    (JSON-serialisable) to ``path`` atomically."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()["state"] if optimizer is not None else {}
    for i, entry in state.items():
        for key, value in entry.items():
            tensors[f"optim.{i}.{key}"] = (value if torch.is_tensor(value)
                                           else torch.tensor(value)).detach().contiguous().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    save_file(tensors, str(tmp), metadata={"assay": orjson.dumps({"format": FORMAT, **meta}).decode()})
    os.replace(tmp, path)
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``assay`` metadata of a checkpoint."""
    with safe_open(str(path), framework="pt") as f:
        meta = orjson.loads((f.metadata() or {}).get("assay", "{}"))
    if meta.get("format") != FORMAT:
        raise TrainError(f"{path}: not an assay checkpoint (format {meta.get('format')!r})")
    return meta


def load_checkpoint(path: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load weights (and the optimizer state) in place; return the metadata."""
    meta = read_meta(path)
    model_state: dict[str, torch.Tensor] = {}
    optim_state: dict[int, dict[str, torch.Tensor]] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            kind, rest = key.split(".", 1)
            if kind == "model":
                model_state[rest] = f.get_tensor(key)
            elif kind == "optim" and optimizer is not None:
                i, name = rest.split(".", 1)
                optim_state.setdefault(int(i), {})[name] = f.get_tensor(key)
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in model_state.items()})
    if optimizer is not None:
        full = optimizer.state_dict()
        full["state"] = {i: {k: (v if k == "step" else v.to(device)) for k, v in s.items()}
                         for i, s in optim_state.items()}
        optimizer.load_state_dict(full)
    return meta
