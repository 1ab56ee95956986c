"""An image tower that learns from a few thousand images on a CPU: fixed feature banks, a
whitening fitted to the dataset, then a small trained network.

A vision transformer or CNN trained from scratch on ~5,000 images for minutes on two cores
barely beats a colour histogram (measured: docs/BENCHMARKS.md). What does learn in that budget
is a projection over features that are computed *once*:

- **colour layout**: a soft joint RGB histogram (6 bins a channel, triangle memberships), over
  the whole image and its 2 × 2 quadrants, square-rooted (Hellinger);
- **edges**: oriented gradient energy (8 directions, half-wave rectified Sobel responses — HOG
  without the arctangent) at two scales, over the whole image and a 4 × 4 grid, as
  per-cell orientation distributions;
- **shapes**: a single-layer k-means dictionary of contrast-normalised, whitened 6 × 6 colour
  patches at 32 px with the "triangle" encoding, pooled over the whole image and quadrants
  (Coates, Lee & Ng 2011: one such layer beats much deeper random or briefly trained networks
  on small data);
- the concatenation (each bank L2-normalised) is PCA-whitened to `bank_dim` dimensions.

The dictionary and the whitening are *fitted* to the training images (`fit`, unsupervised,
seconds) and stored as buffers in the model's weights, so serving computes exactly the same
features. Everything is plain convolution, pooling and matrix products: it exports to ONNX.
Only the projection (`project`: LayerNorm → Linear → GELU → Linear) trains, so the trainer
caches the bank output per image (and per augmented view) and a step costs one small MLP.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encoder.bank_tower import BankTower
from encoder.config import VisionConfig

COLOUR_BINS = 6
ORIENTATIONS = 8
KMEANS_SIZE = 32  # the dictionary sees the image at 32 px (the scale Coates & Ng used)
KMEANS_PATCH = 6
PATCH_NOISE = 0.01  # variance added before contrast normalisation (flat patches stay flat)
WHITEN_EPS = 0.1  # ZCA regulariser on the patches
BANK_EPS = 0.1  # PCA whitening regulariser (a floor on each direction's scale)


def colour_layout(rgb: Tensor, bins: int = COLOUR_BINS) -> Tensor:
    """[B,3,H,W] in [0,1] → [B, 5·bins³]: soft joint histograms of image and quadrants."""
    centres = torch.linspace(0, 1, bins, device=rgb.device).view(1, 1, bins, 1, 1)
    member = (1 - (rgb.unsqueeze(2) - centres).abs() * (bins - 1)).clamp(min=0)
    r, g, b = member[:, 0], member[:, 1], member[:, 2]  # [B,bins,H,W]
    joint = r[:, :, None, None] * g[:, None, :, None] * b[:, None, None, :]
    joint = joint.flatten(1, 3)  # [B,bins³,H,W]
    return _pooled(joint, 2).clamp(min=0).sqrt()


def edge_layout(rgb: Tensor, orientations: int = ORIENTATIONS, grid: int = 4) -> Tensor:
    """Oriented gradient energy at full and half scale: per cell, a distribution over
    `orientations` directions (square-rooted), for the image and a grid × grid layout."""
    gray = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).contiguous()
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=rgb.device) / 8
    angles = torch.arange(orientations, device=rgb.device) * (2 * math.pi / orientations)
    filters = (
        torch.cos(angles).view(-1, 1, 1) * sobel + torch.sin(angles).view(-1, 1, 1) * sobel.t()
    ).unsqueeze(1)
    out = []
    for scale in (1, 2):
        image = F.avg_pool2d(gray, scale) if scale > 1 else gray
        energy = F.relu(F.conv2d(image, filters, padding=1))
        cells = _cells(energy, grid)  # [B, 1+grid², O]
        out.append((cells / (cells.sum(2, keepdim=True) + 1e-3)).sqrt().flatten(1))
    return torch.cat(out, 1)


def _cells(maps: Tensor, grid: int) -> Tensor:
    """[B,C,H,W] → [B, 1+grid², C]: mean over the image, then over each cell of a grid."""
    whole = maps.mean((2, 3)).unsqueeze(1)
    # adaptive_avg_pool2d's cells, spelled as slices: it exports to ONNX only for sizes that a
    # grid divides (the k-means maps are 27 px), slices of known bounds export everywhere.
    height, width = int(maps.shape[2]), int(maps.shape[3])
    cells = [
        maps[
            :,
            :,
            _lo(i, height, grid) : _hi(i, height, grid),
            _lo(j, width, grid) : _hi(j, width, grid),
        ].mean((2, 3))
        for i in range(grid)
        for j in range(grid)
    ]
    return torch.cat([whole, torch.stack(cells, 1)], 1)


def _lo(i: int, size: int, grid: int) -> int:
    return (i * size) // grid


def _hi(i: int, size: int, grid: int) -> int:
    return -(-((i + 1) * size) // grid)


def _pooled(maps: Tensor, grid: int) -> Tensor:
    return _cells(maps, grid).flatten(1)


class PatchDictionary(nn.Module):
    """Single-layer k-means features (Coates, Lee & Ng 2011) as convolutions.

    Each 6 × 6 colour patch x (a vector of 108) is contrast-normalised, ZCA-whitened
    (z = W(x̂ − μ)), and encoded against k unit-norm centroids c_j by the triangle rule
    f_j = max(0, mean_i d_i − d_j), d_j = ‖z − c_j‖; maps are pooled over image and quadrants.
    """

    unfold: Tensor
    mean: Tensor
    whiten: Tensor
    centroids: Tensor

    def __init__(self, k: int, patch: int = KMEANS_PATCH) -> None:
        super().__init__()
        dim = 3 * patch * patch
        self.patch = patch
        # A fixed one-hot filter bank turns every patch into a channel vector (ONNX: one Conv).
        self.register_buffer("unfold", torch.eye(dim).view(dim, 3, patch, patch))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("whiten", torch.eye(dim))
        self.register_buffer("centroids", torch.zeros(k, dim))

    def patches(self, rgb: Tensor) -> Tensor:
        """[B,3,S,S] → [B, L, 108]: every contrast-normalised patch, whitened."""
        cols = F.conv2d(rgb, self.unfold)  # [B,108,S',S']
        cols = cols.flatten(2).transpose(1, 2)  # [B,L,108]
        centred = cols - cols.mean(2, keepdim=True)
        normed = centred / (centred.pow(2).mean(2, keepdim=True) + PATCH_NOISE).sqrt()
        return (normed - self.mean) @ self.whiten

    def forward(self, rgb: Tensor) -> Tensor:
        z = self.patches(rgb)
        sq = z.pow(2).sum(2, keepdim=True) - 2 * z @ self.centroids.t() + 1.0
        dist = sq.clamp(min=0).sqrt()
        act = F.relu(dist.mean(2, keepdim=True) - dist)  # [B,L,K]
        side = rgb.shape[-1] - self.patch + 1
        maps = act.transpose(1, 2).reshape(rgb.shape[0], -1, side, side)
        return _pooled(maps, 2)

    @torch.no_grad()
    def fit(self, rgb: Tensor, generator: torch.Generator, samples: int = 100_000) -> None:
        """ZCA whitening and spherical k-means (10 rounds) on random patches of `rgb`."""
        self.whiten.copy_(torch.eye(self.whiten.shape[0]))
        self.mean.zero_()
        cols = torch.cat([self.patches(rgb[i : i + 256]) for i in range(0, len(rgb), 256)])
        flat = cols.reshape(-1, cols.shape[-1])
        sample = flat[torch.randint(0, flat.shape[0], (samples,), generator=generator)]
        mean = sample.mean(0)
        values, vectors = torch.linalg.eigh(torch.cov((sample - mean).t()))
        whiten = vectors @ torch.diag((values.clamp(min=0) + WHITEN_EPS).rsqrt()) @ vectors.t()
        z = (sample - mean) @ whiten
        k = self.centroids.shape[0]
        centroids = z[torch.randperm(len(z), generator=generator)[:k]]
        for _ in range(10):
            centroids = F.normalize(centroids, dim=1)
            assign = (z @ centroids.t()).argmax(1)
            summed = torch.zeros_like(centroids).index_add_(0, assign, z)
            empty = torch.bincount(assign, minlength=k) == 0
            summed[empty] = z[torch.randint(0, len(z), (int(empty.sum()),), generator=generator)]
            centroids = summed
        self.mean.copy_(mean)
        self.whiten.copy_(whiten)
        self.centroids.copy_(F.normalize(centroids, dim=1))


class FeatureBankTower(BankTower):
    """Fixed banks → PCA whitening (fitted) → trained projection; one output token.

    `forward(pixel_values)` returns `last_hidden_state` [B, 1, width] like a transformers
    tower whose only token is the summary. `bank(pixel_values)` is the fixed part (cached by
    the trainer) and `project(bank)` the trained part.
    """

    pixel_mean: Tensor
    pixel_std: Tensor
    bank_mean: Tensor
    bank_proj: Tensor

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.width = cfg.width
        self.register_buffer("pixel_mean", torch.tensor(cfg.mean).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(cfg.std).view(1, 3, 1, 1))
        self.dictionary = PatchDictionary(cfg.bank_kmeans)
        raw = self.raw_dim(cfg.bank_kmeans)
        self.register_buffer("bank_mean", torch.zeros(raw))
        self.register_buffer("bank_proj", torch.zeros(raw, cfg.bank_dim))
        hidden = int(cfg.width * cfg.mlp_ratio)
        self.project = nn.Sequential(
            nn.LayerNorm(cfg.bank_dim),
            nn.Dropout(cfg.bank_dropout),
            nn.Linear(cfg.bank_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, cfg.width),
        )

    @staticmethod
    def raw_dim(kmeans: int) -> int:
        return 5 * COLOUR_BINS**3 + 2 * 17 * ORIENTATIONS + 5 * kmeans

    def raw_bank(self, pixel_values: Tensor) -> Tensor:
        """The concatenated banks, each L2-normalised, before whitening."""
        rgb = (pixel_values * self.pixel_std + self.pixel_mean).clamp(0, 1)
        small = F.interpolate(rgb, size=KMEANS_SIZE, mode="area")
        parts = (colour_layout(small), edge_layout(rgb), self.dictionary(small))
        return torch.cat([F.normalize(p, dim=1) for p in parts], 1)

    def bank(self, pixel_values: Tensor) -> Tensor:
        return (self.raw_bank(pixel_values) - self.bank_mean) @ self.bank_proj

    def tokens(self, bank: Tensor) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=self.project(bank).unsqueeze(1))

    @torch.no_grad()
    def fit(self, pixel_values: Tensor, seed: int = 0) -> None:
        """Dictionary and PCA whitening from training images (normalised as served)."""
        generator = torch.Generator().manual_seed(seed)
        rgb = (pixel_values.float() * self.pixel_std + self.pixel_mean).clamp(0, 1)
        self.dictionary.fit(F.interpolate(rgb, size=KMEANS_SIZE, mode="area"), generator)
        raw = torch.cat(
            [self.raw_bank(pixel_values[i : i + 256].float()) for i in range(0, len(rgb), 256)]
        )
        mean = raw.mean(0)
        dim = self.bank_proj.shape[1]
        q = min(dim, raw.shape[0] - 1, raw.shape[1])
        torch.manual_seed(seed)  # pca_lowrank draws its random projection from the global RNG
        _, singular, basis = torch.pca_lowrank(raw - mean, q=q, center=False, niter=4)
        scale = singular / math.sqrt(max(1, raw.shape[0] - 1))
        proj = torch.zeros_like(self.bank_proj)
        proj[:, :q] = basis / (scale + BANK_EPS)
        self.bank_mean.copy_(mean)
        self.bank_proj.copy_(proj)

    def is_fitted(self) -> bool:
        return bool(self.bank_proj.abs().sum() > 0)
