"""Proxy language models: train small GPTs on prepared shards, evaluate them on the held-out
split, compare data recipes, and sweep sizes and token budgets for scaling fits
(``assay train``, ``assay compare``, ``assay sweep``; ``pip install 'assay[train]'``).

- :mod:`assay.train.model`: the GPT, its shapes and parameter counts;
- :mod:`assay.train.trainer`: :class:`~assay.train.trainer.Trainer`, Step Law defaults;
- :mod:`assay.train.data`: batches as a pure function of the step;
- :mod:`assay.train.schedule`: cosine, WSD and Power learning-rate schedules;
- :mod:`assay.train.evaluate`: held-out loss, bits per byte, cloze accuracy;
- :mod:`assay.train.checkpoint`: safetensors checkpoints that resume exactly;
- :mod:`assay.train.compare`, :mod:`assay.train.sweep`: the two experiment commands.

Importing this package does not import PyTorch; its modules do.
"""

from assay.train.config import TrainConfig, TrainError

__all__ = ["TrainConfig", "TrainError"]
