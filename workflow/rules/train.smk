# Training and evaluation: one job per run; each job loops over params.yaml's `seeds` itself.


rule train:
    input:
        prepared=prepared_of_run,
        noisy=NOISY,
        code=CODE["train"],
    output:
        directory(f"{RESULTS}/models/{{run}}"),
    log:
        f"{LOGS}/models/{{run}}.log",
    conda:
        "../envs/ran.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/models/{{run}}.tsv"
    params:
        profile=PROFILE,
        checkpoints=f"{RESULTS}/checkpoints/{{run}}",  # outside every output: a failed job keeps its checkpoints
        run=run_params,
        selected=is_selected,  # a run the profile leaves out only writes not_selected.json
        training=TRAINING,
        seeds=config["seeds"],
    resources:
        gpu=1,
    shell:
        # The log is appended to, each attempt under a dated line: an interrupted attempt's log stays above the
        # one that resumes it.
        "echo \"== attempt $(date -u +%Y-%m-%dT%H:%M:%SZ) ==\" >> {log:q};"
        " ran train --params params.yaml --profile {params.profile:q} --run {wildcards.run:q}"
        " --prepared {input.prepared:q} --noisy {input.noisy:q} --out {output:q} --checkpoints {params.checkpoints:q}"
        " 2>> {log:q}"


rule evaluate:
    input:
        models=f"{RESULTS}/models/{{run}}",
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
    params:
        out=lambda wildcards, output: parent(output.metrics),
        run=run_params,
        seeds=config["seeds"],
    resources:
        gpu=1,
    shell:
        "ran evaluate --params params.yaml --run {wildcards.run:q} --models {input.models:q}"
        " --prepared {input.prepared:q} --out {params.out:q} 2> {log:q}"
