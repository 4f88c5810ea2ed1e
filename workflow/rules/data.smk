# Data: downloads (or synthetic archives), parsed arrays and noisy labels (docs/architecture.md, "Paths").


rule download:
    input:
        code=CODE["download"],
    output:
        f"{DATA}/archives/{{dataset}}-binary.tar.gz",
    log:
        f"{LOGS}/data/archives/{{dataset}}.log",
    conda:
        "../envs/ran.yaml"
    params:
        profile=PROFILE,
        source=lambda wildcards: config["datasets"][wildcards.dataset],
        data=config["profiles"][PROFILE]["data"],
        synthetic=config["synthetic"],  # a synthetic profile's archive is written from these
        needed=lambda wildcards: wildcards.dataset in NEEDED,  # if not, a marker instead of the data
    shell:
        "ran download --params params.yaml --profile {params.profile:q} --dataset {wildcards.dataset:q}"
        " --out {output:q} 2> {log:q}"


rule prepare:
    input:
        archive=f"{DATA}/archives/{{dataset}}-binary.tar.gz",
        code=CODE["prepare"],
    output:
        directory(f"{DATA}/prepared/{{dataset}}"),
    log:
        f"{LOGS}/data/prepared/{{dataset}}.log",
    conda:
        "../envs/ran.yaml"
    params:
        profile=PROFILE,
        data=config["profiles"][PROFILE]["data"],
    shell:
        "ran prepare --params params.yaml --profile {params.profile:q} --dataset {wildcards.dataset:q}"
        " --archive {input.archive:q} --out {output:q} 2> {log:q}"


rule noise:
    input:
        prepared=f"{DATA}/prepared/{NOISE_DATASET}",
        code=CODE["noise"],
    output:
        directory(f"{NOISY}/seed{{seed}}"),  # a folder per seed: adding a seed leaves the others (and their runs) be
    log:
        f"{LOGS}/data/noisy/{NOISE_DATASET}/seed{{seed}}.log",
    conda:
        "../envs/ran.yaml"
    params:
        label_noise=config["label_noise"],
        out=lambda wildcards, output: parent(output[0]),
    shell:
        "ran noise --params params.yaml --prepared {input.prepared:q} --out {params.out:q} --seeds {wildcards.seed}"
        " 2> {log:q}"
