"""Synthetic CIFAR archives (official layout, deterministic, learnable) and the synth -> download -> prepare -> noise
chain through the `ran` CLI."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import yaml

from ran.cli import main as ran
from ran.data.archive import read_sidecar, sha256_file
from ran.data.layout import get_layout
from ran.data.noise import level_tag, load_noisy_labels
from ran.data.prepare import load_manifest, load_split, prepare
from ran.data.synthetic import write_synthetic_archive

OFFICIAL_MEMBERS = {
    "cifar10": ["cifar-10-batches-bin/batches.meta.txt", *(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in
                range(1, 6)), "cifar-10-batches-bin/test_batch.bin"],
    "cifar100": ["cifar-100-binary/coarse_label_names.txt", "cifar-100-binary/fine_label_names.txt",
                 "cifar-100-binary/test.bin", "cifar-100-binary/train.bin"],
}


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_official_layout_and_deterministic_bytes(tmp_path, dataset):
    first = write_synthetic_archive(tmp_path / "a.tar.gz", dataset, 3, 2, seed=7)
    second = write_synthetic_archive(tmp_path / "b.tar.gz", dataset, 3, 2, seed=7)
    other = write_synthetic_archive(tmp_path / "c.tar.gz", dataset, 3, 2, seed=8)
    assert first == second == sha256_file(tmp_path / "b.tar.gz") == read_sidecar(tmp_path / "a.tar.gz")
    assert other != first
    assert (tmp_path / "a.tar.gz.sha256").read_text() == f"{first}  a.tar.gz\n"
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        files = {m.name: m for m in tar.getmembers() if m.isfile()}
        assert sorted(files) == OFFICIAL_MEMBERS[dataset]
        layout = get_layout(dataset)
        record = layout.record_bytes
        train_sizes = [files[layout.member(f)].size for f in layout.train_files]
        assert train_sizes == [3 * layout.num_classes * record // len(train_sizes)] * len(train_sizes)
        assert files[layout.member(layout.test_files[0])].size == 2 * layout.num_classes * record


def test_tiny_classifier_beats_chance(tmp_path):
    """Nearest class mean on raw pixels: far above the 10% chance level, so a tiny network has a signal to learn."""
    write_synthetic_archive(tmp_path / "s.tar.gz", "cifar10", 8, 4, seed=0)
    prepare(tmp_path / "s.tar.gz", "cifar10", tmp_path / "p")
    images, labels = load_split(tmp_path / "p", "train")
    test_images, test_labels = load_split(tmp_path / "p", "test")
    means = np.stack([images[labels == c].reshape(-1, 3072).mean(0) for c in range(10)])
    distances = ((test_images.reshape(-1, 1, 3072).astype(float) - means) ** 2).sum(-1)
    accuracy = np.mean(distances.argmin(1) == test_labels)
    assert accuracy > 0.5
    # ... and the mean colour alone, which survives crops and flips, carries the signal too.
    colour = images.reshape(len(images), -1, 3).mean(1)
    colour_means = np.stack([colour[labels == c].mean(0) for c in range(10)])
    test_colour = test_images.reshape(len(test_images), -1, 3).mean(1)
    assert np.mean(((test_colour[:, None] - colour_means) ** 2).sum(-1).argmin(1) == test_labels) > 0.3


def test_cli_chain_synth_download_prepare_noise(tmp_path, root, capsys):
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["synthetic"] = {"train_per_class": 4, "test_per_class": 2, "seed": 1}
    params["seeds"] = [0, 1]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    data = tmp_path / "data" / "smoke"
    for dataset in ("cifar10", "cifar100"):
        synthetic = data / "synthetic" / f"{dataset}-binary.tar.gz"
        archive = data / "archives" / f"{dataset}-binary.tar.gz"
        prepared = data / "prepared" / dataset
        assert ran(["synth", "--params", str(params_file), "--dataset", dataset, "--out", str(synthetic)]) == 0
        assert ran(["download", "--params", str(params_file), "--profile", "smoke", "--dataset", dataset,
                    "--synthetic", str(synthetic), "--out", str(archive)]) == 0
        assert archive.read_bytes() == synthetic.read_bytes()
        assert ran(["prepare", "--dataset", dataset, "--archive", str(archive), "--out", str(prepared)]) == 0
        manifest = load_manifest(prepared)
        assert manifest["synthetic"] and manifest["splits"]["train"]["count"] == 4 * len(manifest["class_names"])
    noisy = data / "noisy" / "cifar10"
    assert ran(["noise", "--params", str(params_file), "--prepared", str(data / "prepared" / "cifar10"),
                "--out", str(noisy)]) == 0
    levels = [level_tag(level) for level in params["label_noise"]["levels"]]
    assert sorted(p.relative_to(noisy).as_posix() for p in noisy.rglob("*.*")) == sorted(
        f"seed{seed}/noise{level}_seed{seed}.{ext}" for level in levels for seed in (0, 1) for ext in ("npz", "json"))
    _, clean = load_split(data / "prepared" / "cifar10", "train")
    assert load_noisy_labels(noisy, 0.5, 1).shape == clean.shape
    assert json.loads((noisy / "seed1" / "noise0.5_seed1.json").read_text())["dataset"] == "cifar10"
    # One seed (Snakemake's job per seed) writes its folder and leaves the others as they are.
    before = (noisy / "seed0" / "noise0.5_seed0.npz").stat().st_mtime_ns
    assert ran(["noise", "--params", str(params_file), "--prepared", str(data / "prepared" / "cifar10"),
                "--out", str(noisy), "--seeds", "1"]) == 0
    assert (noisy / "seed0" / "noise0.5_seed0.npz").stat().st_mtime_ns == before
    # The official profile ignores --synthetic; a wrong --sha256 override fails cleanly and leaves nothing.
    capsys.readouterr()
    bad = tmp_path / "bad.tar.gz"
    with pytest.raises(SystemExit) as exit_info:
        ran(["download", "--dataset", "cifar10", "--url", (data / "synthetic" / "cifar10-binary.tar.gz").as_uri(),
             "--sha256", "0" * 64, "--out", str(bad)])
    assert exit_info.value.code == 1 and "checksum mismatch" in capsys.readouterr().err
    assert not bad.exists()
    # Noise for a dataset other than label_noise.dataset is refused.
    with pytest.raises(SystemExit):
        ran(["noise", "--params", str(params_file), "--prepared", str(data / "prepared" / "cifar100"),
             "--out", str(tmp_path / "n")])
