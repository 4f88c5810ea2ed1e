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



# Where a point's label may go, in points from the point (dx, dy, horizontal alignment), nearest first: the four
# diagonals, the sides, centred above and below, then further up and down (a text line apart) for crowded neighbours.
_SIDES = ((6, "left"), (-6, "right"))
LABEL_SLOTS = (*((dx, dy, ha) for dy in (6, -6, 0) for dx, ha in _SIDES), (0, 10, "center"), (0, -10, "center"),
               *((dx, dy, ha) for dy in (16, -16, 26, -26, 36, -36) for dx, ha in _SIDES))
LABEL_GAP_PX = 1.5  # kept between boxes, so hinting at the saved DPI cannot make them touch
MARKER_HALF_PT = 4.0  # half the box kept clear around each marker (markersize 6 reaches 3 pt from the centre)


def _overlap(a, b) -> float:
    """Area two display-space boxes share once one is grown by LABEL_GAP_PX (0 when they are that far apart)."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0) + LABEL_GAP_PX
    height = min(a.y1, b.y1) - max(a.y0, b.y0) + LABEL_GAP_PX
    return max(width, 0.0) * max(height, 0.0)


def _outside(box, frame) -> float:
    """Area of `box` beyond the axes frame."""
    inside = (max(min(box.x1, frame.x1) - max(box.x0, frame.x0), 0.0)
              * max(min(box.y1, frame.y1) - max(box.y0, frame.y0), 0.0))
    return box.width * box.height - inside


def marker_boxes(ax, points) -> list:
    """Display-space boxes around data points, kept clear of labels."""
    from matplotlib.transforms import Bbox

    half = MARKER_HALF_PT * ax.figure.dpi / 72
    return [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in ax.transData.transform(points)]


def _slot_box(label, slot, renderer):
    dx, dy, ha = slot
    label.xyann = (dx, dy)
    label.set_ha(ha)
    return label.get_window_extent(renderer)


def _greedy(boxes, base, order) -> tuple[float, int, list[int]]:
    """Each label in `order` takes its first free slot (or the least-crowded one) given those placed before it;
    returns (crowding left, slots' distance ranks summed, slot per label)."""
    chosen, crowding, ranks = {}, 0.0, 0
    for i in order:
        costs = [base[i][j] + sum(_overlap(box, boxes[k][chosen[k]]) for k in chosen)
                 for j, box in enumerate(boxes[i])]
        free = [j for j, cost in enumerate(costs) if cost == 0]
        chosen[i] = free[0] if free else costs.index(min(costs))
        crowding, ranks = crowding + costs[chosen[i]], ranks + chosen[i]
    return crowding, ranks, [chosen[i] for i in range(len(boxes))]


def place_labels(ax, points, texts, obstacles=(), fontsize: float = 7) -> list:
    """Annotate each point with its text in one of LABEL_SLOTS so that no label leaves the axes or covers a marker,
    an obstacle or another label: greedy, nearest slot first, over a few placing orders (a crowded row of points,
    as when our errors stretch the axis, defeats any single order); the least-crowded, then nearest, layout wins.

    Boxes are measured in display space: call it on the final layout, drawn (fig.canvas.draw()) so that the axis
    limits are final too.
    """
    renderer = ax.figure.canvas.get_renderer()
    frame, fixed = ax.get_window_extent(renderer), [*marker_boxes(ax, points), *obstacles]
    labels = [ax.annotate(text, point, xytext=LABEL_SLOTS[0][:2], textcoords="offset points", fontsize=fontsize,
                          va="center") for point, text in zip(points, texts, strict=True)]
    boxes = [[_slot_box(label, slot, renderer) for slot in LABEL_SLOTS] for label in labels]
    base = [[_outside(box, frame) + sum(_overlap(box, other) for other in fixed) for box in row] for row in boxes]
    xy = ax.transData.transform(points) if len(points) else []
    free = [sum(cost == 0 for cost in row) for row in base]
    orders = [range(len(labels)), *(sorted(range(len(labels)), key=key) for key in (
        lambda i: xy[i][0], lambda i: -xy[i][0], lambda i: -xy[i][1], lambda i: xy[i][1], lambda i: free[i]))]
    _, _, slots = min(_greedy(boxes, base, order) for order in orders)
    for label, slot in zip(labels, slots, strict=True):
        _slot_box(label, LABEL_SLOTS[slot], renderer)
    return labels
