"""Paths of the selected profile, wildcard constraints and the final target (docs/architecture.md)."""

from pathlib import Path

from ran.config import CODE_DEPENDENCIES, code_files, needed_datasets, selected_runs

PROFILE = config["profile"]
DATA = f"data/{PROFILE}"
RESULTS = f"results/{PROFILE}"
LOGS = f"{RESULTS}/logs"
RUNS = config["runs"]
SELECTED = selected_runs(config, PROFILE)  # the one answer to "which runs", ran.config's, as every `ran` command's
NEEDED = needed_datasets(config, PROFILE)  # datasets the selected runs train on
# How every run trains under this profile; the selection is apart, so changing it reruns only the runs it changes.
TRAINING = {**config["training"], **{k: v for k, v in config["profiles"][PROFILE].items() if k != "runs"}}
NOISE_DATASET = config["label_noise"]["dataset"]
NOISY = f"{DATA}/noisy/{NOISE_DATASET}"
# Source files are inputs too, marked local(): under a default storage provider (docs/workflow.md, "Object
# storage") only what the jobs make lives in the bucket, and the repository's own files are read where they are.
RECORDS = local("workflow/resources/records")  # the project's committed real-data results, shown beside every report
PAPER = local("workflow/resources/paper_results.yaml")
# The modules each job imports, file by file: editing one reruns the job, as DVC does (ran.config.CODE_DEPENDENCIES).
CODE = {job: [local(path) for path in code_files(paths, workflow.basedir)] for job, paths in CODE_DEPENDENCIES.items()}


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    run="|".join(RUNS),
    seed=r"\d+",


def prepared_of_run(wildcards):
    """The prepared dataset that a run trains and is evaluated on."""
    return f"{DATA}/prepared/{RUNS[wildcards.run]['dataset']}"


def run_params(wildcards):
    """The run's row of params.yaml: a change to it reruns that run only (like DVC's `runs.<run>` params)."""
    return RUNS[wildcards.run]


def is_selected(wildcards):
    """Whether the profile trains this run (`profiles.<profile>.runs`)."""
    return wildcards.run in SELECTED


def models_of(run):
    """What evaluation reads of a run: each seed's folder, or the note of a run the profile leaves out."""
    if run in SELECTED:
        return expand(f"{RESULTS}/models/{run}/seed{{seed}}", seed=config["seeds"])
    return [f"{RESULTS}/models/{run}/not_selected.json"]


def models_of_run(wildcards):
    return models_of(wildcards.run)


def every_model():
    """`models_of` over every run of the matrix (the figures read them all)."""
    return [path for run in RUNS for path in models_of(run)]


def every_run(pattern):
    """`pattern` (with a `{run}` wildcard) expanded over every run of the matrix."""
    return expand(pattern, run=RUNS)


def every_dataset(pattern):
    """`pattern` (with a `{dataset}` wildcard) expanded over every dataset."""
    return expand(pattern, dataset=config["datasets"])


def final_targets():
    """The final target, the profile's report, which needs every other output."""
    return [f"{RESULTS}/report/report.html"]


def runs_to_train(workflow):
    """Selected runs whose train job this call will run (the plan guard's scope); all selected ones if the DAG
    cannot say (its job API is Snakemake's internal one)."""
    try:
        return list(dict.fromkeys(job.wildcards.run for job in workflow.dag.needrun_jobs() if job.rule.name == "train"))
    except Exception:  # noqa: BLE001
        return SELECTED


def parent(path, levels=1):
    """The folder `levels` above `path`: commands take folders whose files the rules list one by one."""
    return str(Path(path).parents[levels - 1])
