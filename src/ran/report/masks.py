"""Attention-mask pictures in the manner of the paper's Fig. 1: test images with each stage's soft mask overlaid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ran.report.plotting import new_figure, placeholder, save_figure

MAX_IMAGES = 8
OVERLAY_ALPHA = 0.5


def stage_keys(masks: dict) -> list[str]:
    """`stage1`, `stage2`, ... present in masks.npz, in numeric order."""
    keys = [k for k in masks if k.startswith("stage") and k[len("stage"):].isdigit()]
    return sorted(keys, key=lambda k: int(k[len("stage"):]))


def normalise(mask: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] per picture: channel-mean masks span a narrow range, and f2 masks are not in [0, 1]."""
    low, high = float(mask.min()), float(mask.max())
    return np.zeros_like(mask, dtype=np.float32) if high - low < 1e-12 else (mask - low) / (high - low)


def value_range(low: float, high: float) -> str:
    """`[−0.03, −0.00]`: brackets and a true minus sign keep a negative upper bound legible (not `-0.03--0.00`)."""
    return "[" + ", ".join(f"{value:.2f}".replace("-", "\u2212") for value in (low, high)) + "]"


def grey(image: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB uint8 image."""
    return np.asarray(image, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def mask_grid(run_id: str, masks: dict, stem: str | Path, labels: list[str] | None = None) -> list[Path]:
    """Rows = test images, columns = the image, then its soft mask of each attention stage over it."""
    images = np.asarray(masks.get("images", np.zeros((0, 32, 32, 3), np.uint8)))
    stages = stage_keys(masks)
    count = min(len(images), MAX_IMAGES)
    if count == 0 or not stages:
        return placeholder(stem, f"{run_id}: no soft masks", "masks.npz is missing or holds no images / stages")
    size = images.shape[1]
    fig, axes = new_figure(ncols=1 + len(stages), nrows=count, width=1.6 * (1 + len(stages)), height=1.6 * count)
    for row in range(count):
        axes[row, 0].imshow(images[row])
        if labels and row < len(labels):
            axes[row, 0].set_ylabel(labels[row], fontsize=8)
        for col, key in enumerate(stages, start=1):
            mask = np.asarray(masks[key][row], dtype=np.float32)
            # a grey background keeps the colour map readable over colourful images
            axes[row, col].imshow(grey(images[row]), cmap="gray", vmin=0, vmax=255)
            # extent stretches the low-resolution mask over the whole image, bilinear like the network's upsampling
            axes[row, col].imshow(normalise(mask), cmap="jet", alpha=OVERLAY_ALPHA, vmin=0, vmax=1,
                                  extent=(-0.5, size - 0.5, size - 0.5, -0.5), interpolation="bilinear")
            axes[row, col].set_xlabel(value_range(mask.min(), mask.max()), fontsize=8, labelpad=1)
    axes[0, 0].set_title("image", fontsize=9)
    for col, key in enumerate(stages, start=1):
        height, width = np.asarray(masks[key]).shape[1:3]
        axes[0, col].set_title(f"stage {key[len('stage'):]}\n{height}×{width} mask", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{run_id}: soft masks (channel mean, min-max per picture; raw range below)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)
