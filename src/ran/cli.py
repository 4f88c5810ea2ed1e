"""`ran <command> ...`: the one entry point every Snakemake rule and DVC stage calls.

Commands are imported lazily so that light steps (listing runs, preparing data, building tables) never pay for
importing TensorFlow or JAX. Each command module exposes `main(argv) -> int` with its own argparse parser.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "runs": ("ran.config", "List the runs that params.yaml defines (validated against the schema)."),
    "plan": ("ran.plan", "What a profile will cost: images per run, time at the recorded (or probed) speed."),
    "synth": ("ran.data.synthetic", "Write a synthetic CIFAR archive in the official binary format."),
    "download": ("ran.data.download", "Download and verify a CIFAR archive (or take a local copy)."),
    "prepare": ("ran.data.prepare", "Parse CIFAR binary records into uint8 arrays plus a manifest."),
    "noise": ("ran.data.noise", "Corrupt training labels with the paper's Eq. 7 noise matrix."),
    "train": ("ran.train.run", "Train one run of the experiment matrix (resumable)."),
    "evaluate": ("ran.evaluate", "Test error, per-class error, confusion matrix and soft masks of a model."),
    "record": ("ran.records", "Copy finished real-data runs of a profile into workflow/resources/records."),
    "tables": ("ran.report.tables", "Paper-vs-ours tables (CSV, Markdown, LaTeX) from run outputs."),
    "figures": ("ran.report.figures", "Training curves, per-table charts and attention-mask pictures."),
    "report": ("ran.report.render", "Execute the report notebook and render it to HTML."),
    "bench": ("ran.bench", "Benchmark training and inference speed of one network."),
    "gpucheck": ("ran.gpucheck", "On a GPU machine: benches, compile caches, a short run, evaluation: one JSON."),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ran <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"ran: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
