# Tables, figures and the HTML report of one profile; `snakemake --report` also collects tables and figures.


rule tables:
    input:
        paper=PAPER,
        code=CODE["tables"],
        records=RECORDS,
        metrics=every_run(f"{RESULTS}/eval/{{run}}/metrics.json"),
    output:
        report(
            directory(f"{RESULTS}/tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/tables.log",
    conda:
        "../envs/ran.yaml"
    params:
        profile=PROFILE,
        eval=lambda wildcards, input: parent(input.metrics[0], 2),
        runs=RUNS,
        seeds=config["seeds"],
    shell:
        "ran tables --params params.yaml --profile {params.profile:q} --paper {input.paper:q} --eval {params.eval:q}"
        " --records {input.records:q} --out {output:q} 2> {log:q}"


rule figures:
    input:
        paper=PAPER,
        code=CODE["figures"],
        records=RECORDS,
        metrics=every_run(f"{RESULTS}/eval/{{run}}/metrics.json"),
        masks=every_run(f"{RESULTS}/eval/{{run}}/masks.npz"),  # read too: declared, so object storage brings them
        models=every_model(),
        prepared=every_dataset(f"{DATA}/prepared/{{dataset}}"),
    output:
        report(
            directory(f"{RESULTS}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        f"{LOGS}/figures.log",
    conda:
        "../envs/ran.yaml"
    params:
        profile=PROFILE,
        eval=lambda wildcards, input: parent(input.metrics[0], 2),
        models=lambda wildcards, input: parent(input.models[0], 2),
        prepared=lambda wildcards, input: parent(input.prepared[0]),
        runs=RUNS,
        seeds=config["seeds"],
    shell:
        "ran figures --params params.yaml --profile {params.profile:q} --paper {input.paper:q} --eval {params.eval:q}"
        " --models {params.models:q} --prepared {params.prepared:q} --records {input.records:q} --out {output:q}"
        " 2> {log:q}"


rule report:
    input:
        notebook=local("workflow/notebooks/report.ipynb"),
        code=CODE["report"],
        tables=f"{RESULTS}/tables",
        figures=f"{RESULTS}/figures",
    output:
        report(f"{RESULTS}/report/report.html", caption="../report/report.rst", category="Report"),
    log:
        f"{LOGS}/report/report.log",
    conda:
        "../envs/ran.yaml"
    params:
        profile=PROFILE,
        results=lambda wildcards, output: parent(output[0], 2),
    shell:
        "ran report --params params.yaml --profile {params.profile:q} --notebook {input.notebook:q}"
        " --results {params.results:q} --out {output:q} 2> {log:q}"
