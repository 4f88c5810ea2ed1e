"""params.yaml validation: the schema and the cross-key rules name the offending key."""

import copy

import pytest

from ran.config import ConfigError, all_runs, resolve_profile, run_config, validate_params


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
        (lambda p: p.update(extra=1), "'extra' was unexpected"),
    ],
)
def test_invalid_params_name_the_key(params, mutate, message):
    bad = copy.deepcopy(params)
    mutate(bad)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        validate_params(bad)


def test_profile_overrides_training_keys(params):
    smoke = resolve_profile(params, "smoke")
    assert smoke["batch_size"] == params["profiles"]["smoke"]["batch_size"]
    assert smoke["momentum"] == params["training"]["momentum"]
    paper = resolve_profile(params, "paper")
    assert (paper["batch_size"], paper["iterations"], paper["base_lr"]) == (64, 160000, 0.1)
    assert [round(f * paper["iterations"]) for f in paper["lr_decay_at"]] == [64000, 96000]


def test_run_defaults_are_filled(params):
    assert run_config(params, "c10_a56_arl_mixed")["mask"] == "encoder_decoder"
    assert run_config(params, "c10_r164")["attention"] is None
    assert run_config(params, "c10_r164_noise30")["noise"] == 0.3
    with pytest.raises(ConfigError, match="unknown run 'nope'"):
        run_config(params, "nope")
