"""Variable-rate (gain unit) learned image codecs, as specified in docs/model-format.md.

Three architectures, all with per-level gain vectors ``y_gain [L, M]`` / ``y_gain_inv [L, M]``
(Cui et al. 2021) applied to the latent ``y``:

* ``FactorizedGain``  -- architecture ``bmshj2018-factorized`` (one EntropyBottleneck per level)
* ``Bls2017Gain``     -- architecture ``b2018-gdn`` (one EntropyBottleneck per level)
* ``MeanScaleGain``   -- architecture ``mbt2018-mean`` (EntropyBottleneck on z shared by all levels,
  GaussianConditional with CompressAI's 64-entry scale table on y)

Levels are 1-based everywhere (level ``l`` uses row ``l-1`` of the gain matrices), matching the model
names ``FAMILY-LEVEL``.

Conventions (TFC style, no input padding): "same" convolutions, so ``y`` is ``ceil(H/16) x ceil(W/16)``
and ``z`` is ``ceil(y/4)``; the synthesis output is cropped to the input size and the output of ``h_s`` is
cropped to the size of ``y``.
"""

from __future__ import annotations

import math
from typing import Dict, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN as _CompressAIGDN
from compressai.models.base import get_scale_table

LEAKY_RELU_SLOPE = 0.01
SCALE_BOUND = 0.11

MSSSIM_LAMBDAS = [2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00]
MSE_LAMBDAS = [0.0018, 0.0035, 0.0067, 0.0130]
# CompressAI's eight MSE lambdas (quality 1..8): the MS-SSIM families' warm-up uses the one of the
# same quality index.
MSE_LAMBDAS_8 = [0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800]


def c(cin: int, cout: int, k: int, s: int, bias: bool = True) -> nn.Conv2d:
    """``c(k, s)`` of the contract: Conv2d(k, stride s, padding k//2)."""
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, bias=bias)


def d(cin: int, cout: int, k: int, s: int) -> nn.ConvTranspose2d:
    """``d(k, s)`` of the contract: ConvTranspose2d(k, stride s, padding k//2, output_padding s-1)."""
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class GDN(_CompressAIGDN):
    """CompressAI's standard GDN / IGDN (sqrt form) with access to the *effective* parameters.

    ``effective()`` returns ``(beta, gamma)`` after CompressAI's non-negative reparametrization, i.e. the
    values that are exported.  ``set_effective(beta, gamma)`` pins exact effective values (used by the
    exporter after rounding to f16, so that any later reference computation uses exactly the values the
    Rust side reads); the raw parameters are set to the closest reparametrized equivalent, and
    ``clear_effective()`` removes the pin (e.g. to continue training).
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__(channels, inverse=inverse)
        self._pinned = None

    def effective(self):
        if self._pinned is not None:
            return self._pinned
        return self.beta_reparam(self.beta), self.gamma_reparam(self.gamma)

    @torch.no_grad()
    def set_effective(self, beta: torch.Tensor, gamma: torch.Tensor, pin: bool = True) -> None:
        beta = beta.detach().to(self.beta.dtype)
        gamma = gamma.detach().to(self.gamma.dtype)
        self.beta.copy_(self.beta_reparam.init(beta))
        self.gamma.copy_(self.gamma_reparam.init(gamma))
        self._pinned = (beta.clone(), gamma.clone()) if pin else None

    def clear_effective(self) -> None:
        self._pinned = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = x.shape[1]
        beta, gamma = self.effective()
        norm = F.conv2d(x**2, gamma.reshape(C, C, 1, 1), beta)
        if self.inverse:
            return x * torch.sqrt(norm)
        return x * torch.rsqrt(norm)


def to_input(x: torch.Tensor) -> torch.Tensor:
    """Image -> float32 ``[1, 3, H, W]`` in [0, 1].

    Accepts uint8 ``[H, W, 3]`` (divided by 255 in float32, as the Rust side does) or float
    ``[3, H, W]`` / ``[1, 3, H, W]`` already in [0, 1].
    """
    if not torch.is_tensor(x):
        x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        if x.dim() != 3 or x.shape[2] != 3:
            raise ValueError(f"uint8 input must be [H, W, 3], got {tuple(x.shape)}")
        return (x.permute(2, 0, 1).to(torch.float32) / 255.0).unsqueeze(0).contiguous()
    x = x.to(torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"float input must be [3, H, W] or [1, 3, H, W], got {tuple(x.shape)}")
    return x


class _GainModel(nn.Module):
    architecture = ""

    def __init__(self, N: int, M: int, levels: int):
        super().__init__()
        self.N, self.M, self.levels = int(N), int(M), int(levels)
        self.y_gain = nn.Parameter(torch.ones(levels, M))
        self.y_gain_inv = nn.Parameter(torch.ones(levels, M))

    # -- gains --------------------------------------------------------------------------------
    @torch.no_grad()
    def set_gain_ramp(self, lo: float, hi: float) -> None:
        """Geometric ramp ``y_gain[l] = lo * (hi/lo)^(l/(L-1))`` (same for all channels), inverse 1/gain."""
        L = self.levels
        t = torch.arange(L, dtype=torch.float64) / max(L - 1, 1)
        g = lo * (hi / lo) ** t
        self.y_gain.copy_(g[:, None].expand(L, self.M).to(torch.float32))
        self.y_gain_inv.copy_((1.0 / g)[:, None].expand(L, self.M).to(torch.float32))

    def _check_level(self, level: int) -> int:
        level = int(level)
        if not 1 <= level <= self.levels:
            raise ValueError(f"level {level} out of range 1..{self.levels}")
        return level

    def gains(self, level: int):
        level = self._check_level(level)
        g = self.y_gain[level - 1].reshape(1, self.M, 1, 1)
        gi = self.y_gain_inv[level - 1].reshape(1, self.M, 1, 1)
        return g, gi

    # -- bookkeeping ----------------------------------------------------------------------------
    def entropy_bottleneck_modules(self):
        return [m for m in self.modules() if isinstance(m, EntropyBottleneck)]

    def aux_loss(self) -> torch.Tensor:
        return sum(m.loss() for m in self.entropy_bottleneck_modules())

    def update(self, force: bool = True, update_quantiles: bool = True) -> None:
        """Compute the integer CDF tables (CompressAI ``update``); call before ``inference``/export."""
        for m in self.entropy_bottleneck_modules():
            m.update(force=force, update_quantiles=update_quantiles)

    def transform_layers(self):
        """(name, module) for every conv / deconv / GDN of the four transforms, in contract naming."""
        out = []
        for tname in ("g_a", "g_s", "h_a", "h_s"):
            seq = getattr(self, tname, None)
            if seq is None:
                continue
            for i, layer in enumerate(seq):
                if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, GDN)):
                    out.append((f"{tname}.{i}", layer))
        return out


class _FactorizedBase(_GainModel):
    """Shared code of the two factorized-prior architectures (one EntropyBottleneck(M) per level)."""

    def _make_entropy_models(self):
        self.entropy_bottlenecks = nn.ModuleList(EntropyBottleneck(self.M) for _ in range(self.levels))

    def forward(self, x: torch.Tensor, level: int) -> Dict:
        H, W = x.shape[-2:]
        g, gi = self.gains(level)
        y = self.g_a(x)
        y_tilde, y_lik = self.entropy_bottlenecks[level - 1](y * g)
        x_hat = self.g_s(y_tilde * gi)[..., :H, :W]
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik}, "y": y}

    def density_bits(self, y: torch.Tensor, skip_level: int) -> torch.Tensor:
        """Bits of ``y`` under every level's density except ``skip_level``, with ``y`` and the gains
        detached: only the densities learn from it.

        One random level per batch gives each of the L per-level densities 1/L of the steps; a 64/96
        bmshj2018-factorized run left them so broad after 5,500 steps that levels 1-3 cost the same
        bits.  This term lets every density follow its level's ``y * gain`` at every step, for the
        price of L-1 density evaluations on the (small) latent.
        """
        y = y.detach().float()
        bits = y.new_zeros(())
        for level, eb in enumerate(self.entropy_bottlenecks, start=1):
            if level == skip_level:
                continue
            g = self.y_gain[level - 1].detach().reshape(1, self.M, 1, 1)
            _, lik = eb(y * g)
            bits = bits - torch.log2(lik).sum()
        return bits

    def y_medians(self, level: int) -> torch.Tensor:
        """Medians of the level's EntropyBottleneck, ``[M]``."""
        return self.entropy_bottlenecks[self._check_level(level) - 1]._get_medians().detach().reshape(-1)

    @torch.no_grad()
    def inference(self, x: torch.Tensor, level: int) -> Dict[str, torch.Tensor]:
        """The exact computation of docs/model-format.md (batch 1; outputs without batch dimension)."""
        x = to_input(x)
        H, W = x.shape[-2:]
        g, gi = self.gains(level)
        med = self.y_medians(level).reshape(1, self.M, 1, 1)
        y = self.g_a(x)
        y_g = y * g
        y_sym = torch.round(y_g - med)
        y_hat = (y_sym + med) * gi
        x_hat = self.g_s(y_hat)[..., :H, :W].clamp(0.0, 1.0)
        return {
            "x": x[0],
            "y": y[0],
            "y_gained": y_g[0],
            "y_symbols": y_sym[0].to(torch.int32),
            "y_hat": y_hat[0],
            "x_hat": x_hat[0],
        }


class FactorizedGain(_FactorizedBase):
    """Architecture ``bmshj2018-factorized``: 4 x (5x5 /2) with GDN, factorized prior, gains."""

    architecture = "bmshj2018-factorized"

    def __init__(self, N: int, M: int, levels: int):
        super().__init__(N, M, levels)
        self.g_a = nn.Sequential(
            c(3, N, 5, 2), GDN(N), c(N, N, 5, 2), GDN(N), c(N, N, 5, 2), GDN(N), c(N, M, 5, 2)
        )
        self.g_s = nn.Sequential(
            d(M, N, 5, 2), GDN(N, inverse=True), d(N, N, 5, 2), GDN(N, inverse=True),
            d(N, N, 5, 2), GDN(N, inverse=True), d(N, 3, 5, 2),
        )
        self._make_entropy_models()


class Bls2017Gain(_FactorizedBase):
    """Architecture ``b2018-gdn`` (Balle 2018 PCS / TFC bls2017): 9x9/4, 5x5/2, 5x5/2, N channels."""

    architecture = "b2018-gdn"

    def __init__(self, N: int, levels: int, M: int = None):
        if M is not None and M != N:
            raise ValueError("b2018-gdn has M = N")
        super().__init__(N, N, levels)
        self.g_a = nn.Sequential(
            c(3, N, 9, 4), GDN(N), c(N, N, 5, 2), GDN(N), c(N, N, 5, 2, bias=False)
        )
        self.g_s = nn.Sequential(
            d(N, N, 5, 2), GDN(N, inverse=True), d(N, N, 5, 2), GDN(N, inverse=True), d(N, 3, 9, 4)
        )
        self._make_entropy_models()


class MeanScaleGain(_GainModel):
    """Architecture ``mbt2018-mean``: mean-scale hyperprior; ``h_a`` sees the gained latent."""

    architecture = "mbt2018-mean"

    def __init__(self, N: int, M: int, levels: int):
        super().__init__(N, M, levels)
        if (3 * M) % 2:
            raise ValueError("mbt2018-mean needs an even M (3M/2 channels)")
        self.g_a = nn.Sequential(
            c(3, N, 5, 2), GDN(N), c(N, N, 5, 2), GDN(N), c(N, N, 5, 2), GDN(N), c(N, M, 5, 2)
        )
        self.g_s = nn.Sequential(
            d(M, N, 5, 2), GDN(N, inverse=True), d(N, N, 5, 2), GDN(N, inverse=True),
            d(N, N, 5, 2), GDN(N, inverse=True), d(N, 3, 5, 2),
        )
        self.h_a = nn.Sequential(
            c(M, N, 3, 1), nn.LeakyReLU(LEAKY_RELU_SLOPE), c(N, N, 5, 2),
            nn.LeakyReLU(LEAKY_RELU_SLOPE), c(N, N, 5, 2),
        )
        self.h_s = nn.Sequential(
            d(N, M, 5, 2), nn.LeakyReLU(LEAKY_RELU_SLOPE), d(M, 3 * M // 2, 5, 2),
            nn.LeakyReLU(LEAKY_RELU_SLOPE), c(3 * M // 2, 2 * M, 3, 1),
        )
        self.entropy_bottleneck = EntropyBottleneck(N)
        # CompressAI's 64-entry table, set at construction so inference works before update().
        self.gaussian_conditional = GaussianConditional(get_scale_table().tolist(),
                                                        scale_bound=SCALE_BOUND)

    def update(self, force: bool = True, update_quantiles: bool = True) -> None:
        super().update(force=force, update_quantiles=update_quantiles)
        self.gaussian_conditional.update_scale_table(get_scale_table(), force=True)

    def _hyper_params(self, z_hat: torch.Tensor, hy: int, wy: int):
        params = self.h_s(z_hat)[..., :hy, :wy]
        scales, means = params.chunk(2, 1)
        return scales, means

    def forward(self, x: torch.Tensor, level: int) -> Dict:
        H, W = x.shape[-2:]
        g, gi = self.gains(level)
        y = self.g_a(x)
        y_g = y * g
        z = self.h_a(y_g)
        z_tilde, z_lik = self.entropy_bottleneck(z)
        scales, means = self._hyper_params(z_tilde, y.shape[-2], y.shape[-1])
        y_tilde, y_lik = self.gaussian_conditional(y_g, scales, means)
        x_hat = self.g_s(y_tilde * gi)[..., :H, :W]
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}}

    def z_medians(self) -> torch.Tensor:
        return self.entropy_bottleneck._get_medians().detach().reshape(-1)

    @torch.no_grad()
    def inference(self, x: torch.Tensor, level: int) -> Dict[str, torch.Tensor]:
        """The exact computation of docs/model-format.md (batch 1; outputs without batch dimension)."""
        x = to_input(x)
        H, W = x.shape[-2:]
        g, gi = self.gains(level)
        y = self.g_a(x)
        y_g = y * g
        z = self.h_a(y_g)
        med_z = self.z_medians().reshape(1, self.N, 1, 1)
        z_sym = torch.round(z - med_z)
        z_hat = z_sym + med_z
        scales, means = self._hyper_params(z_hat, y.shape[-2], y.shape[-1])
        idx = self.gaussian_conditional.build_indexes(scales)
        y_sym = torch.round(y_g - means)
        y_hat = (y_sym + means) * gi
        x_hat = self.g_s(y_hat)[..., :H, :W].clamp(0.0, 1.0)
        return {
            "x": x[0],
            "y": y[0],
            "y_gained": y_g[0],
            "z": z[0],
            "z_symbols": z_sym[0].to(torch.int32),
            "z_hat": z_hat[0],
            "scales": scales[0],
            "scale_indexes": idx[0].to(torch.int32),
            "means": means[0],
            "y_symbols": y_sym[0].to(torch.int32),
            "y_hat": y_hat[0],
            "x_hat": x_hat[0],
        }


ARCHITECTURES = {
    "bmshj2018-factorized": FactorizedGain,
    "b2018-gdn": Bls2017Gain,
    "mbt2018-mean": MeanScaleGain,
}

# Family defaults: architecture, widths, levels, metric and the per-level lambdas.
# Loss (CompressAI RateDistortionLoss): MSE families   lambda * 255^2 * MSE + bpp;
#                                       MS-SSIM families lambda * (1 - MS-SSIM) + bpp.
FAMILIES = {
    "bmshj2018-factorized-msssim": dict(
        architecture="bmshj2018-factorized", N=128, M=192, levels=8, metric="ms-ssim",
        lambdas=MSSSIM_LAMBDAS),
    "b2018-gdn-128": dict(
        architecture="b2018-gdn", N=128, M=128, levels=4, metric="mse", lambdas=MSE_LAMBDAS),
    "mbt2018-mean-msssim": dict(
        architecture="mbt2018-mean", N=128, M=192, levels=8, metric="ms-ssim",
        lambdas=MSSSIM_LAMBDAS),
    # Random-initialisation placeholders (models/), see make_untrained.py.
    "bmshj2018-factorized-msssim-untrained": dict(
        architecture="bmshj2018-factorized", N=64, M=96, levels=8, metric="ms-ssim",
        lambdas=MSSSIM_LAMBDAS),
    "b2018-gdn-128-untrained": dict(
        architecture="b2018-gdn", N=128, M=128, levels=4, metric="mse", lambdas=MSE_LAMBDAS),
    "mbt2018-mean-msssim-untrained": dict(
        architecture="mbt2018-mean", N=64, M=96, levels=8, metric="ms-ssim",
        lambdas=MSSSIM_LAMBDAS),
}


def build_model(architecture: str, N: int, M: int, levels: int) -> _GainModel:
    if architecture == "b2018-gdn":
        return Bls2017Gain(N, levels)
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}") from None
    return cls(N, M, levels)


def build_family(family: str) -> _GainModel:
    f = FAMILIES[family]
    return build_model(f["architecture"], f["N"], f["M"], f["levels"])


def rd_loss(out: Dict, x: torch.Tensor, lmbda: float, metric: str = "mse", ms_ssim_fn=None):
    """CompressAI-style rate-distortion loss for one level: returns (loss, bpp, distortion)."""
    n, _, H, W = x.shape
    bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-math.log(2) * n * H * W)
    if metric == "mse":
        dist = F.mse_loss(out["x_hat"], x)
        return lmbda * 255**2 * dist + bpp, bpp, dist
    if ms_ssim_fn is None:
        raise ValueError("metric ms-ssim needs ms_ssim_fn(x_hat, x) -> MS-SSIM in [0, 1]")
    dist = 1 - ms_ssim_fn(out["x_hat"], x)
    return lmbda * dist + bpp, bpp, dist
