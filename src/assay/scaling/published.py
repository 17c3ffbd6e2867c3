"""Published constants of the laws, each with the paper (and table or code) it comes from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.scaling.fit import FittedLaw
from assay.scaling.laws import ChinchillaLaw, DataConstrainedLaw, KaplanLaw, Law


@dataclass(frozen=True)
class PublishedLaw:
    """A law with a paper's fitted constants."""

    key: str
    law: Law
    theta: np.ndarray
    source: str

    def fitted(self) -> FittedLaw:
        """As a FittedLaw without bootstrap samples (so without intervals)."""
        return FittedLaw(self.law, self.theta, np.empty((0, len(self.theta))), source=self.source)


PUBLISHED: dict[str, PublishedLaw] = {
    p.key: p
    for p in (
        PublishedLaw("hoffmann", ChinchillaLaw(),
                     ChinchillaLaw.from_report(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28),
                     "Hoffmann et al. 2022 (rounded)"),
        PublishedLaw("hoffmann-unrounded", ChinchillaLaw(),
                     np.array([6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083]),
                     "Hoffmann et al. 2022 (unrounded)"),
        PublishedLaw("besiroglu", ChinchillaLaw(),
                     ChinchillaLaw.from_report(E=1.8172, A=482.01, B=2085.43, alpha=0.3478,
                                               beta=0.3658),
                     "Besiroglu et al. 2024"),
        PublishedLaw("muennighoff", DataConstrainedLaw(),
                     np.array([6.255414, 7.3049974, 0.6254804, 0.3526596, 0.3526596,
                               np.log(15.387756), np.log(5.309743)]),
                     "Muennighoff et al. 2023"),
        PublishedLaw("kaplan", KaplanLaw(),
                     KaplanLaw.from_report(N_c=6.4e13, D_c=1.8e13, alpha_N=0.076, alpha_D=0.103),
                     "Kaplan et al. 2020"),
    )
}

# Muennighoff et al. 2023: how fast repeated tokens and excess parameters lose value.
MUENNIGHOFF_R_D = 15.387756
MUENNIGHOFF_R_N = 5.309743


@dataclass(frozen=True)
class StepLaw:
    """Li et al. 2025 ("Predictable Scale: Part I", Step Law): optimal hyperparameters.

    eta_opt = 1.79 N^-0.713 D^0.307 and B_opt = 0.58 D^0.571 tokens, with N the
    non-embedding parameters and D the training tokens.
    """

    lr_coef: float = 1.79
    lr_n: float = -0.713
    lr_d: float = 0.307
    batch_coef: float = 0.58
    batch_d: float = 0.571
    source: str = "Step Law, Li et al. 2025"


@dataclass(frozen=True)
class DeepSeekLaw:
    """Bi et al. 2024 (DeepSeek LLM), laws in compute C = M D (M: non-embedding FLOPs/token).

    eta_opt = 0.3118 C^-0.1250; B_opt = 0.2920 C^0.3271 tokens; M_opt = 0.1715 C^0.5243;
    D_opt = 5.8316 C^0.4757.
    """

    lr_coef: float = 0.3118
    lr_c: float = -0.1250
    batch_coef: float = 0.2920
    batch_c: float = 0.3271
    m_coef: float = 0.1715
    m_c: float = 0.5243
    d_coef: float = 5.8316
    d_c: float = 0.4757
    source: str = "DeepSeek LLM, Bi et al. 2024"


@dataclass(frozen=True)
class VocabularyLaw:
    """Tao et al. 2024 ("Scaling Laws with Vocabulary"), optimal vocabulary parameters N_v = V d.

    Approach 2 (derivative-based): N_v = 3,145,728 (N_nv / 33e6)^0.8353974.
    Approach 1 (IsoFLOPs): C = (N_nv / e^-2.4846510)^2, N_v = e^-1.5890313 C^0.4163623.
    N_nv counts non-vocabulary parameters. Constants from the paper's public code.
    """

    base_nv: float = 3_145_728.0
    base_nnv: float = 33e6
    gamma: float = 0.8353974035228025
    nnv_log_coef: float = -2.4846510161625193
    nv_log_coef: float = -1.589031299255507
    nv_flops_exp: float = 0.4163622634135234
    source: str = "Tao et al. 2024"


STEP_LAW = StepLaw()
DEEPSEEK = DeepSeekLaw()
VOCABULARY = VocabularyLaw()

# Dense (no sparsity) BF16 tensor peak FLOP/s per GPU, from the vendors' datasheets.
GPU_PEAK_FLOPS: dict[str, float] = {
    "v100": 125e12,  # FP16 tensor (no BF16)
    "a100": 312e12,
    "h100": 989.5e12,  # SXM
    "h100-pcie": 756e12,
    "h200": 989.5e12,
    "b200": 2250e12,
    "mi300x": 1307.4e12,
}
