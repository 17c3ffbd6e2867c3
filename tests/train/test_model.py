"""The GPT: parameter counts, causality, tied embeddings, RoPE's relative positions, shapes."""

from __future__ import annotations

import pytest
import torch

from assay.train.model import (
    GPT,
    PRESETS,
    GPTConfig,
    RotaryEmbedding,
    count_parameters,
    flops_per_token,
    shape_for,
    shape_for_parameters,
)


@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_parameter_counts_match_the_module(mlp: str, positions: str) -> None:
    config = GPTConfig(vocab_size=300, context=48, n_layer=3, n_head=4, d_model=64, mlp=mlp,  # type: ignore[arg-type]
                       positions=positions)  # type: ignore[arg-type]
    model = GPT(config)
    counted = model.parameter_counts()
    assert counted == count_parameters(config)
    assert counted["total"] == sum(p.numel() for p in model.parameters())
    expected_embedding = 300 * 64 + (48 * 64 if positions == "learned" else 0)
    assert counted["embedding"] == expected_embedding
    # 12 d^2 per layer for GELU (4 d^2 attention + 8 d^2 MLP), plus the norms.
    if mlp == "gelu":
        assert counted["non_embedding"] == 3 * (12 * 64 * 64 + 2 * 64) + 64


def test_swiglu_keeps_the_parameters_of_the_gelu_mlp() -> None:
    gelu = count_parameters(GPTConfig(1000, d_model=384, n_head=6, mlp="gelu"))["non_embedding"]
    swiglu = count_parameters(GPTConfig(1000, d_model=384, n_head=6, mlp="swiglu"))["non_embedding"]
    assert GPTConfig(1000, d_model=384, n_head=6, mlp="swiglu").hidden == 1024  # 8/3 x 384
    assert abs(swiglu - gelu) / gelu < 0.01


def test_output_layer_is_the_token_embedding() -> None:
    model = GPT(GPTConfig(vocab_size=50, context=8, n_layer=1, n_head=2, d_model=16))
    assert [k for k in model.state_dict() if "wte" in k] == ["wte.weight"]
    x = torch.randint(0, 50, (2, 8))
    with torch.no_grad():
        model.wte.weight[7].mul_(5.0)
        logits = model(x)
    hidden = model.norm(model.blocks[0](model.wte(x)))
    assert torch.allclose(logits, hidden @ model.wte.weight.T, atol=1e-5)


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_causal_later_tokens_do_not_change_earlier_logits(positions: str) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, context=16, n_layer=2, n_head=2, d_model=32, positions=positions,
                          mlp="swiglu")).eval()
    x = torch.randint(0, 64, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % 64
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_rope_scores_depend_only_on_relative_position() -> None:
    rope = RotaryEmbedding(head_dim=8, context=32, base=10_000.0)
    q, k = torch.randn(8), torch.randn(8)

    def score(i: int, j: int) -> float:
        qs = torch.zeros(1, 1, 32, 8)
        ks = torch.zeros(1, 1, 32, 8)
        qs[0, 0, i], ks[0, 0, j] = q, k
        return float(rope(qs)[0, 0, i] @ rope(ks)[0, 0, j])

    assert score(5, 2) == pytest.approx(score(20, 17), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_loss_ignores_minus_100_and_reduces_per_position() -> None:
    model = GPT(GPTConfig(vocab_size=20, context=6, n_layer=1, n_head=1, d_model=8))
    x = torch.randint(0, 20, (2, 6))
    y = torch.randint(0, 20, (2, 6))
    per = model(x, y, reduction="none")
    assert per.shape == (2, 6)
    y2 = y.clone()
    y2[1, 3:] = -100
    assert torch.isclose(model(x, y2), torch.cat([per[0], per[1, :3]]).mean())
    with pytest.raises(ValueError, match="longer than the context"):
        model(torch.zeros(1, 7, dtype=torch.long))


def test_shapes_from_presets_strings_and_counts() -> None:
    assert set(PRESETS) >= {"tiny", "1m", "5m"}
    one = count_parameters(shape_for("1m", 8192, 256))["non_embedding"]
    five = count_parameters(shape_for("5m", 8192, 256))["non_embedding"]
    assert 0.9e6 < one < 1.1e6 and 4.5e6 < five < 5.5e6
    c = shape_for("3x96", 100, 32)
    assert (c.n_layer, c.d_model, c.n_head) == (3, 96, 3)
    assert shape_for("2x64x4", 100, 32).n_head == 4
    for target in (50_000, 2_000_000, 30_000_000):
        n = count_parameters(shape_for_parameters(target, 1000, 128))["non_embedding"]
        assert abs(n / target - 1) < 0.15
    assert count_parameters(shape_for("2M", 1000, 128))["non_embedding"] == pytest.approx(2e6, rel=0.15)
    with pytest.raises(ValueError, match="preset"):
        shape_for("huge", 100, 32)
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(100, d_model=30, n_head=4)


def test_gpt2_small_has_124m_parameters_with_its_vocabulary() -> None:
    config = shape_for("gpt2", 50257, 1024, positions="learned")
    assert count_parameters(config)["total"] == pytest.approx(124e6, rel=0.01)
    # PaLM's estimate: 6 N_total (here: non-embedding + the output layer) + 12 L d T.
    n = count_parameters(config)["non_embedding"] + 50257 * 768
    assert flops_per_token(config) == 6 * n + 12 * 12 * 768 * 1024
