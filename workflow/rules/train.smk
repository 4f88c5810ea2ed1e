# Training and evaluation. One train job per (run, seed): adding a seed adds jobs and never reruns (so never deletes)
# a finished seed's folder. A run the profile leaves out has one job that writes a note. DVC has one stage per run
# that loops over the seeds; tests/workflow_dag.py maps the two onto each other.


rule train:
    input:
        prepared=prepared_of_run,
        noisy=f"{NOISY}/seed{{seed}}",
        code=CODE["train"],
    output:
        directory(f"{RESULTS}/models/{{run}}/seed{{seed}}"),
    log:
        f"{LOGS}/models/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/{{run}}/seed{{seed}}.tsv"
    conda:
        "../envs/ran.yaml"
    resources:
        gpu=1,
    params:
        profile=PROFILE,
        out=lambda wildcards, output: parent(output[0]),
        noisy=lambda wildcards, input: parent(input.noisy),
        checkpoints=f"{RESULTS}/checkpoints/{{run}}",  # outside every output: a failed job keeps its checkpoints
        run=run_params,
        training=TRAINING,
    shell:
        # The log is appended to, each attempt under a dated line: an interrupted attempt's log stays above the
        # one that resumes it.
        'echo "== attempt $(date -u +%Y-%m-%dT%H:%M:%SZ) ==" >> {log:q};'
        " ran train --params params.yaml --profile {params.profile:q} --run {wildcards.run:q}"
        " --prepared {input.prepared:q} --noisy {params.noisy:q} --out {params.out:q}"
        " --checkpoints {params.checkpoints:q} --seeds {wildcards.seed} 2>> {log:q}"


rule train_not_selected:
    input:
        prepared=prepared_of_run,  # DVC's train stage reads them whatever the selection: the same DAG
        noisy=expand(f"{NOISY}/seed{{seed}}", seed=config["seeds"]),
        code=CODE["train"],
    output:
        f"{RESULTS}/models/{{run}}/not_selected.json",
    log:
        f"{LOGS}/models/{{run}}/not_selected.log",
    conda:
        "../envs/ran.yaml"
    params:
        profile=PROFILE,
        noisy=lambda wildcards, input: parent(input.noisy[0]),
        out=lambda wildcards, output: parent(output[0]),
        checkpoints=f"{RESULTS}/checkpoints/{{run}}",
    shell:
        "ran train --params params.yaml --profile {params.profile:q} --run {wildcards.run:q}"
        " --prepared {input.prepared:q} --noisy {params.noisy:q} --out {params.out:q}"
        " --checkpoints {params.checkpoints:q} 2> {log:q}"


rule evaluate:
    input:
        models=models_of_run,
        prepared=prepared_of_run,
        code=CODE["evaluate"],
    output:
        metrics=f"{RESULTS}/eval/{{run}}/metrics.json",
        masks=f"{RESULTS}/eval/{{run}}/masks.npz",
        score=f"{RESULTS}/eval/{{run}}/score.json",
    log:
        f"{LOGS}/eval/{{run}}.log",
    conda:
        "../envs/ran.yaml"
    resources:
        gpu=1,
    params:
        profile=PROFILE,
        models=lambda wildcards, input: parent(input.models[0]),
        out=lambda wildcards, output: parent(output.metrics),
        run=run_params,
        seeds=config["seeds"],
        selected=is_selected,
    shell:
        "ran evaluate --params params.yaml --profile {params.profile:q} --run {wildcards.run:q}"
        " --models {params.models:q} --prepared {input.prepared:q} --out {params.out:q} 2> {log:q}"
