"""A GPT in one file: the proxy model that ``assay train`` fits to prepared shards.

The shape of nanoGPT's ``model.py`` (Karpathy 2022), a decoder-only transformer after
GPT-2 (Radford et al. 2019), with the choices small-model studies make today:

- **pre-norm** residual blocks (``x + attn(norm(x))``, ``x + mlp(norm(x))``) and a final
  norm, as GPT-2; LayerNorm without biases, linear layers without biases (nanoGPT's
  ``bias=False``);
- **positions**: rotary embeddings (``rope``, Su et al. 2021, "RoFormer: Enhanced
  Transformer with Rotary Position Embedding"; the rotate-half form of GPT-NeoX and Llama)
  or a learned absolute table (``learned``, GPT-2);
- **MLP**: GELU with 4x width (GPT-2), or SwiGLU (Shazeer 2020, "GLU Variants Improve
  Transformer") with width 8/3 x ``d_model`` rounded up to a multiple of 32, which keeps
  the parameter count of the GELU MLP;
- **tied embeddings**: the output layer is the token embedding (Press & Wolf 2017), so the
  checkpoint holds it once;
- causal attention through ``torch.nn.functional.scaled_dot_product_attention``.

Initialisation is GPT-2's: N(0, 0.02) for every weight, and N(0, 0.02 / sqrt(2 n_layer))
for the projections that write into the residual stream.

Parameter counts follow Kaplan et al. 2020: N (non-embedding) leaves out the token and
position embeddings; this is the N of ``assay fit`` and of the Step Law.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from assay.quantities import parse_count
from assay.train.config import Mlp, Positions, TrainError


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT. ``d_ff`` None means 4 d_model (GELU) or the SwiGLU width with the
    same parameters (8/3 d_model rounded up to a multiple of 32)."""

    vocab_size: int
    context: int = 256
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    mlp: Mlp = "gelu"
    positions: Positions = "rope"
    d_ff: int | None = None
    rope_base: float = 10_000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise TrainError(f"d_model {self.d_model} is not a multiple of n_head {self.n_head}")
        if self.positions == "rope" and (self.d_model // self.n_head) % 2:
            raise TrainError("rotary embeddings need an even head dimension")
        if min(self.vocab_size, self.context, self.n_layer, self.n_head, self.d_model) < 1:
            raise TrainError("vocab_size, context, n_layer, n_head and d_model must be positive")

    @property
    def hidden(self) -> int:
        """The MLP's inner width."""
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "swiglu":
            return 32 * math.ceil(8 * self.d_model / 3 / 32)
        return 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_parameters(config: GPTConfig) -> dict[str, int]:
    """Parameters of a GPT of this shape, without building it: ``non_embedding`` (Kaplan et
    al.'s N), ``embedding`` (tokens and learned positions) and ``total``."""
    d, h = config.d_model, config.hidden
    attention = 4 * d * d
    mlp = (3 if config.mlp == "swiglu" else 2) * d * h
    norms = 2 * d
    non_embedding = config.n_layer * (attention + mlp + norms) + d  # + the final norm
    embedding = config.vocab_size * d + (config.context * d if config.positions == "learned" else 0)
    return {"non_embedding": non_embedding, "embedding": embedding, "total": non_embedding + embedding}


def flops_per_token(config: GPTConfig, context: int | None = None) -> float:
    """Training FLOPs per token, forward and backward: 6 (N + V d) for the matrix products
    (non-embedding weights and the tied output layer) plus 12 n_layer d T for attention
    scores and values (Chowdhery et al. 2022, PaLM, appendix B; Kaplan et al. 2020)."""
    t = config.context if context is None else context
    n = count_parameters(config)["non_embedding"]
    return 6.0 * (n + config.vocab_size * config.d_model) + 12.0 * config.n_layer * config.d_model * t


# Named shapes: (n_layer, n_head, d_model). Non-embedding parameters in the comment.
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 2, 64),  # ~0.1M
    "1m": (5, 4, 128),  # ~1.0M
    "5m": (6, 4, 256),  # ~4.7M
    "20m": (8, 8, 448),  # ~19M
    "gpt2": (12, 12, 768),  # ~85M, GPT-2 small: 124M with GPT-2's vocabulary
}


def shape_for(spec: str, vocab_size: int, context: int, **options: Any) -> GPTConfig:
    """A GPTConfig from a preset name (``tiny``, ``1m``, ...), ``LAYERSxWIDTH`` (``4x128``:
    heads of 32 dimensions, or ``4x128x8`` with 8 heads) or a non-embedding parameter count
    (``2M``, ``500k``, ``3e6``), for which :func:`shape_for_parameters` picks the shape."""
    text = spec.strip().lower()
    if text in PRESETS:
        n_layer, n_head, d_model = PRESETS[text]
        return GPTConfig(vocab_size, context, n_layer, n_head, d_model, **options)
    m = re.fullmatch(r"(\d+)x(\d+)(?:x(\d+))?", text)
    if m:
        n_layer, d_model = int(m[1]), int(m[2])
        n_head = int(m[3]) if m[3] else max(d_model // 32, 1)
        return GPTConfig(vocab_size, context, n_layer, n_head, d_model, **options)
    try:
        target = parse_count(text)
    except ValueError:
        raise TrainError(f"model {spec!r}: give a preset ({', '.join(PRESETS)}), LAYERSxWIDTH such as "
                         "4x128, or a non-embedding parameter count such as 2M") from None
    return shape_for_parameters(target, vocab_size, context, **options)


def shape_for_parameters(target: int, vocab_size: int, context: int, aspect: float = 32.0,
                         **options: Any) -> GPTConfig:
    """The shape whose non-embedding parameters are closest to ``target``, among widths that
    are multiples of 32 with heads of 32 dimensions (multiples of 64 with heads of 64 from
    width 512), preferring ``d_model / n_layer`` near ``aspect`` (Kaplan et al. 2020 find the
    loss flat over a wide range of aspect ratios; small proxy models use 16-64)."""
    best: tuple[float, GPTConfig] | None = None
    widths = [*range(32, 512, 32), *range(512, 8193, 64)]
    for d_model in widths:
        head = 64 if d_model >= 512 else 32
        one = GPTConfig(vocab_size, context, 1, d_model // head, d_model, **options)
        per_layer = count_parameters(one)["non_embedding"] - d_model
        guess = (target - d_model) / per_layer
        for n_layer in {max(1, math.floor(guess)), max(1, math.ceil(guess))}:
            n = n_layer * per_layer + d_model
            score = abs(math.log(n / target)) + 0.1 * abs(math.log(d_model / n_layer / aspect))
            if best is None or score < best[0]:
                best = (score, GPTConfig(vocab_size, context, n_layer, d_model // head, d_model, **options))
    assert best is not None
    return best[1]


class RotaryEmbedding(nn.Module):
    """cos and sin tables of RoPE (Su et al. 2021), rotate-half form: channel pair (i, i +
    head_dim/2) is rotated by angle ``position * base^(-2i/head_dim)``."""

    def __init__(self, head_dim: int, context: int, base: float) -> None:
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(context, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", torch.cat([angles.cos()] * 2, dim=-1), persistent=False)
        self.register_buffer("sin", torch.cat([angles.sin()] * 2, dim=-1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` of shape (batch, heads, time, head_dim)."""
        t = x.shape[-2]
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * self.cos[:t].to(x.dtype) + rotated * self.sin[:t].to(x.dtype)


class Attention(nn.Module):
    """Multi-head causal self-attention."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=False)
        head_dim = config.d_model // config.n_head
        self.rope = (RotaryEmbedding(head_dim, config.context, config.rope_base)
                     if config.positions == "rope" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    """GELU MLP (GPT-2) or SwiGLU (Shazeer 2020): ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        self.up = nn.Linear(config.d_model, (2 if self.swiglu else 1) * config.hidden, bias=False)
        self.down = nn.Linear(config.hidden, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(F.gelu(h))


class Block(nn.Module):
    """A pre-norm transformer block."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """A decoder-only transformer language model; see the module docstring."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.context, config.d_model) if config.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, 0.0, config.init_std / math.sqrt(2 * config.n_layer))

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, 0.0, self.config.init_std)

    def parameter_counts(self) -> dict[str, int]:
        """``non_embedding``, ``embedding`` and ``total`` parameters, counted on the module."""
        total = sum(p.numel() for p in self.parameters())
        embedding = self.wte.weight.numel() + (self.wpe.weight.numel() if self.wpe is not None else 0)
        return {"non_embedding": total - embedding, "embedding": embedding, "total": total}

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:
        """Logits (batch, time, vocab) for ``idx``; with ``targets``, the cross-entropy in nats
        (mean over targets other than -100, or per position with ``reduction="none"``)."""
        t = idx.shape[1]
        if t > self.config.context:
            raise TrainError(f"sequence of {t} tokens is longer than the context ({self.config.context})")
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe.weight[:t]
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.norm(x), self.wte.weight)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                               reduction=reduction)
        return loss.view(targets.shape) if reduction == "none" else loss

