# Residual Attention Network on CIFAR: the whole replication as one DAG (docs/workflow.md).
# params.yaml is the single source of truth; `--config profile=smoke` picks another profile.
from snakemake.utils import min_version, validate

from ran.config import read_yaml, validate_params

min_version("9.0")


configfile: "params.yaml"


# The file strictly first (Snakemake's own reading keeps the last of two equal keys; DVC refuses them), then the
# schema (names the bad key), then the cross-key rules a schema cannot say; all before any job runs.
read_yaml("params.yaml")
validate(config, "workflow/schemas/params.schema.yaml", set_default=False)  # the schema has no defaults
validate_params(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


# The cost before the first job (dry runs included): images per run and the time at the recorded speeds.
if workflow.is_main_process:
    from ran.plan import announce

    announce(config, PROFILE, RECORDS)


rule all:
    input:
        final_targets(),
    default_target: True
