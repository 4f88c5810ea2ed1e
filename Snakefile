# Residual Attention Network on CIFAR: the whole replication as one DAG (docs/workflow.md).
# params.yaml is the single source of truth; `--config profile=smoke` picks another profile.
import sys

from snakemake.utils import min_version

from ran.config import ConfigError, check_local_copies, check_overrides, flag, read_yaml, validate_params

min_version("9.0")


configfile: "params.yaml"


# All before any job runs, each problem one line (a stop is `sys.exit(line)`, no traceback): the file strictly first
# (Snakemake's own reading keeps the last of two equal keys; DVC refuses them), then the schema and the cross-key
# rules on what Snakemake resolved (an unknown key says where it belongs), then the command line's overrides (the
# jobs read params.yaml from disk, so only `profile` and `allow_long` may differ from it), then the local CIFAR
# copies the profile will read.
try:
    ON_DISK = read_yaml("params.yaml")
    config.update(flag(config, "allow_long"))  # `--config allow_long=true` arrives as the string 'true'
    validate_params(
        config,
        source="params.yaml" if config == ON_DISK else "params.yaml with the command line's --config/--configfile",
    )
    check_overrides(config, ON_DISK)
    check_local_copies(config)
except ConfigError as error:
    sys.exit(str(error))
ALLOW_LONG = bool(config.get("allow_long", False))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# The cost before the first job (dry runs and --lint included): images per run and the time at the recorded speeds.
if workflow.is_main_process:
    from ran.plan import announce

    announce(config, PROFILE, RECORDS, allow_long=ALLOW_LONG)


# A real run (not -n, --touch, --lint or a cluster submission) on a machine without GPU stops here, after the DAG
# and before its first job, when what it would train needs more than a day (ran.plan.guard; `allow_long` goes on).
onstart:
    if workflow.is_main_process and workflow.local_exec and not workflow.touch:
        from ran.plan import guard

        stop = guard(config, PROFILE, RECORDS, runs=runs_to_train(workflow), allow_long=ALLOW_LONG)
        if stop:
            sys.exit(stop)


rule all:
    default_target: True
    input:
        final_targets(),
