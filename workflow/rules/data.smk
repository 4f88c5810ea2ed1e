# Data: synthetic archives, downloads, parsed arrays and noisy labels (docs/architecture.md, "Paths").


rule synth:
    output:
        archive=f"{DATA}/synthetic/{{dataset}}-binary.tar.gz",
        sha256=f"{DATA}/synthetic/{{dataset}}-binary.tar.gz.sha256",
    log:
        f"{LOGS}/data/synthetic/{{dataset}}.log",
    conda:
        "../envs/ran.yaml"
    params:
        synthetic=config["synthetic"],
    shell:
        "ran synth --params params.yaml --dataset {wildcards.dataset:q} --out {output.archive:q} > {log:q} 2>&1"


rule download:
    input:
        synthetic=f"{DATA}/synthetic/{{dataset}}-binary.tar.gz",
        sha256=f"{DATA}/synthetic/{{dataset}}-binary.tar.gz.sha256",
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
    shell:
        "ran download --params params.yaml --profile {params.profile:q} --dataset {wildcards.dataset:q}"
        " --synthetic {input.synthetic:q} --out {output:q} > {log:q} 2>&1"


rule prepare:
    input:
        f"{DATA}/archives/{{dataset}}-binary.tar.gz",
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
        " --archive {input:q} --out {output:q} > {log:q} 2>&1"


rule noise:
    input:
        f"{DATA}/prepared/{NOISE_DATASET}",
    output:
        directory(NOISY),
    log:
        f"{LOGS}/data/noisy/{NOISE_DATASET}.log",
    conda:
        "../envs/ran.yaml"
    params:
        label_noise=config["label_noise"],
        seeds=config["seeds"],
    shell:
        "ran noise --params params.yaml --prepared {input:q} --out {output:q} > {log:q} 2>&1"
