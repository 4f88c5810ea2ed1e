"""params.yaml validation: the schema and the cross-key rules name the offending key."""

import copy
import re

import pytest

from ran.config import (
    ConfigError,
    all_runs,
    load_params,
    needed_datasets,
    resolve_profile,
    run_config,
    selected_runs,
    validate_params,
)


def test_shipped_params_are_valid_and_define_every_paper_configuration(params):
    runs = all_runs(params)
    assert len(runs) == len({r["run"] for r in runs}) == 29
    assert {r["network"] for r in runs} == {
        "attention56", "attention92", "attention128", "attention164", "attention236", "attention452", "resnet164"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p["runs"]["c10_a56_arl_mixed"].update(attentoin="mixed"), "attentoin"),
        (lambda p: p["runs"]["c10_a56_arl_mixed"].update(attention="soft"), "runs.c10_a56_arl_mixed.attention"),
        (lambda p: p["runs"]["c10_r164"].update(learning="ARL"), "runs.c10_r164"),
        (lambda p: p.update(profile="nightly"), "'nightly'"),
        (lambda p: p["training"].update(batch_size=0), "training.batch_size"),
        (lambda p: p["profiles"]["smoke"].update(iterations="4"), "profiles.smoke.iterations"),
        (lambda p: p["runs"]["c100_r164"].update(noise=0.3), "runs.c100_r164.noise"),
        (lambda p: p.update(extra=1), "extra is not a top-level key; the keys there are "),
        (lambda p: p["profiles"].update({"x$(touch PWNED)": p["profiles"]["smoke"]}), "profiles: 'x$(touch PWNED)'"),
        (lambda p: p.update(profile="x;rm -rf ~"), "profile: 'x;rm -rf ~' does not match"),
        (lambda p: p["profiles"]["cpu"].update(runs=["c10_a56_arl_mixed", "c10_typo"]),
         "profiles.cpu.runs: ['c10_typo'] are not runs of the matrix"),
        (lambda p: p["profiles"]["cpu"].update(runs="some"), "profiles.cpu.runs"),
        (lambda p: p["profiles"]["paper"].pop("runs"), "'runs' is a required property"),
    ],
)
def test_invalid_params_name_the_key(params, mutate, message):
    bad = copy.deepcopy(params)
    mutate(bad)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_params(bad)


def test_profile_overrides_training_keys(params):
    smoke = resolve_profile(params, "smoke")
    assert smoke["batch_size"] == params["profiles"]["smoke"]["batch_size"]
    assert smoke["momentum"] == params["training"]["momentum"]
    paper = resolve_profile(params, "paper")
    assert (paper["batch_size"], paper["iterations"], paper["base_lr"]) == (64, 160000, 0.1)
    assert [round(f * paper["iterations"]) for f in paper["lr_decay_at"]] == [64000, 96000]


def test_profiles_select_runs_and_the_datasets_they_need(params):
    assert selected_runs(params, "paper") == list(params["runs"])
    assert selected_runs(params, "cpu") == ["c10_a56_arl_mixed", "c10_a56_nal_mixed"]
    assert needed_datasets(params, "cpu") == ["cifar10"] and needed_datasets(params, "paper") == ["cifar10", "cifar100"]
    assert "runs" not in resolve_profile(params, "cpu"), "the selection must not be part of how a run trains"


def test_run_defaults_are_filled(params):
    assert run_config(params, "c10_a56_arl_mixed")["mask"] == "encoder_decoder"
    assert run_config(params, "c10_r164")["attention"] is None
    assert run_config(params, "c10_r164_noise30")["noise"] == 0.3
    with pytest.raises(ConfigError, match="unknown run 'nope'"):
        run_config(params, "nope")


@pytest.mark.parametrize("addition, key", [
    ("  c10_a56_arl_mixed: {dataset: cifar10, network: attention92, attention: mixed, learning: ARL}\n",
     "'c10_a56_arl_mixed'"),
    ("training:\n  batch_size: 8\n", "'training'"),
])
def test_duplicate_keys_are_errors_naming_key_and_lines(root, tmp_path, addition, key):
    text = (root / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text.rstrip("\n") + "\n" + addition)
    line = text.rstrip("\n").count("\n") + 2
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: duplicate key {key} at line {line} \(first at"):
        load_params(path)


def test_yaml_syntax_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: paper\nseeds: [0\nruns: {}\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))} is not valid YAML at line 3"):
        load_params(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="holds a list, expected a mapping"):
        load_params(path)
