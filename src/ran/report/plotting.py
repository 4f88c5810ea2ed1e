"""Matplotlib plumbing for the report figures: headless backend, reproducible PNG + PDF, placeholders."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report runs on CI machines and clusters without a display

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from ran.atomic import write_bytes_atomic  # noqa: E402
from ran.report.outputs import FIGURE_SUFFIXES  # noqa: E402

DPI = 110
PAPER_STYLE = {"color": "0.35", "marker": "D", "markerfacecolor": "white", "linestyle": "none", "label": "paper"}
OURS_STYLE = {"color": "tab:blue", "marker": "o", "linestyle": "none", "capsize": 3, "label": "ours (mean ± std)"}
# Without fixed metadata the PDF embeds its creation time and reruns would differ byte for byte.
_METADATA = {".png": {"Software": None}, ".pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Write `stem.png` and `stem.pdf` atomically and close the figure."""
    written = []
    for suffix in FIGURE_SUFFIXES:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=suffix[1:], dpi=DPI, bbox_inches="tight", metadata=_METADATA[suffix])
        written.append(write_bytes_atomic(Path(f"{stem}{suffix}"), buffer.getvalue()))
    plt.close(fig)
    return written


def placeholder(stem: str | Path, title: str, note: str) -> list[Path]:
    """A figure that says why there is nothing to draw, so every declared output exists."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=12, weight="bold")
    ax.text(0.5, 0.28, note, ha="center", va="center", fontsize=9, color="0.3", wrap=True)
    return save_figure(fig, stem)


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.0, height: float = 3.5, **kwargs):
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kwargs)
