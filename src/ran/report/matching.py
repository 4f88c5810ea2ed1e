"""Match the paper's table rows to runs of params.yaml by their attributes, never by a hand-written row -> run map.

A paper row names a model ("Attention-92", "ResNet-164", "Attention-Local-Conv-56"), a depth and, depending on the
table, an attention type, a learning mechanism, a mask structure and a noise level. Those become criteria on the
resolved run configuration (`ran.config.run_config`); exactly one run may satisfy them.
"""

from __future__ import annotations

import math

# Table 6 prints no attention type, learning mechanism or mask: its Attention-N rows are the paper's default network.
TABLE6_ATTENTION_DEFAULTS = {"attention": "mixed", "learning": "ARL", "mask": "encoder_decoder"}
ATTENTION_TYPES = ("mixed", "channel", "spatial")


def network_name(model: str, depth: int) -> str:
    """'Attention-Local-Conv-56', 56 -> 'attention56'; 'ResNet-164', 164 -> 'resnet164' (family = first word)."""
    family = model.split("-", 1)[0].lower()
    return f"{family}{int(depth)}"


def _none_if_absent(value):
    return None if value in (None, "none") else value


def paper_criteria(row: dict, dataset: str | None = None) -> dict:
    """Attribute criteria a run must meet to stand for this paper row (Table 6 rows need `dataset`)."""
    network = network_name(row["model"], row["depth"])
    is_attention = network.startswith("attention")
    criteria = {"dataset": row.get("dataset", dataset), "network": network, "noise": float(row.get("noise_level", 0.0))}
    if criteria["dataset"] is None:
        raise ValueError(f"paper row {row['model']!r} (Table {row.get('table')}) names no dataset; pass one")
    for key in ("attention", "learning", "mask"):
        if key in row:
            value = _none_if_absent(row[key])
        else:
            value = TABLE6_ATTENTION_DEFAULTS[key] if is_attention else None
        # Table 4 calls its local-convolution row's attention "local": that names the mask, not an activation
        # (f1/f2/f3), so the activation is left free and the mask criterion does the matching.
        if key == "attention" and value is not None and value not in ATTENTION_TYPES:
            continue
        criteria[key] = value
    return criteria


def _meets(run: dict, criteria: dict) -> bool:
    for key, wanted in criteria.items():
        have = run.get(key)
        if key == "noise":
            if not math.isclose(float(have or 0.0), wanted, abs_tol=1e-9):
                return False
        elif have != wanted:
            return False
    return True


def match_run(runs: list[dict], criteria: dict) -> str | None:
    """The id of the one run meeting `criteria`, or None when the matrix has none (a quoted baseline)."""
    found = [run["run"] for run in runs if _meets(run, criteria)]
    if len(found) > 1:
        raise ValueError(f"paper row {criteria} matches several runs {found}; make params.yaml unambiguous")
    return found[0] if found else None
