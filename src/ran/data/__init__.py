"""CIFAR-10/100 data: synthetic archives, verified downloads, safe extraction, parsing and label noise.

The pipeline (docs/architecture.md, "Paths") is four commands, each a module here:

- `ran synth` (`synthetic.py`): a small archive in the official *binary* layout, for the smoke profile and tests.
- `ran download` (`download.py`): one verified `.tar.gz` per dataset, whatever the source (official URL, mirror,
  `file://`, a pre-downloaded archive, an extracted folder, or the synthetic archive). An extracted folder is
  re-packed into a deterministic archive, so every later step sees one kind of input.
- `ran prepare` (`prepare.py`): parses the binary records (never unpickles anything) into `train.npz`, `test.npz`
  and `manifest.json`, checking counts and class balance.
- `ran noise` (`noise.py`): the paper's Eq. 7 label corruption, one artefact per (level, seed) (decision 4).

Synthetic archives carry a PAX global header `RAN.synthetic` (it is not a member, so member names stay exactly the
official ones); `prepare` reads it to take the expected counts from the archive instead of the official 50k/10k.
"""

from __future__ import annotations

# The datasets' facts, one home each: classes per dataset and their printed names.
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


class DataError(RuntimeError):
    """A data file is missing, corrupt, unsafe or not what was expected; the message says how to fix it."""


def local_copy_hint(dataset: str) -> str:
    """The sentence every download-related error ends with: how to supply the data by hand."""
    return (
        f"To use a copy you already have, set `datasets.{dataset}.local` in params.yaml to the archive or to its "
        f"extracted folder (or pass `--url file:///path/to/archive` with `--md5`/`--sha256` to `ran download`)."
    )
