"""`ran gpucheck`: one command for a GPU machine that measures what the first GPU run needs, into one JSON file.

    ran gpucheck --out gpucheck.json

In this order, each step started only while the budget (`--budget-s`, default 540 s) lasts, on the current Keras
backend and then on the other one where it is importable:
1. `ran bench` of every network (`--networks`, default Attention-56, Attention-92, ResNet-164) in every precision
   (`--precisions`, default float32 and bfloat16) at the first batch (`--batches`, default 64 and 512);
2. the compile time of the first network with a cold and then a warm persistent compilation cache: two `ran bench`
   processes sharing one fresh cache folder;
3. (current backend only) a short `quick`-shaped Attention-56 run on synthetic data through `train_seed`
   (`--train-iterations`), then its evaluation through `ran.evaluate`'s functions;
4. the benches at the other batches.
Each step runs in a child process (a fresh framework per backend, which can be stopped): a step still running when
the budget ends gets `GRACE_S` more seconds and is then stopped; whatever did not run is listed with the reason.
The JSON is rewritten after every step, so an interrupted check still leaves its figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ran.runtime import cpu_isa, gpu_signals

NETWORKS = "attention56,attention92,resnet164"
BACKENDS = ("tensorflow", "jax")
GRACE_S = 45  # the default budget plus this stays under 10 minutes
TEST_IMAGES = 1000  # evaluation images (synthetic); two views of them are scored, as `ran evaluate` does


def current_backend() -> str:
    """Keras's backend as Keras picks it (KERAS_BACKEND, else keras.json), read without importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def importable(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


def chosen_backends(spec: str) -> list[str]:
    """`auto`: the current backend, then the other where it is importable; else the comma list as given."""
    if spec != "auto":
        return [name.strip() for name in spec.split(",") if name.strip()]
    first = current_backend()
    return [first] + [name for name in BACKENDS if name != first and importable(name)]


def bench_argv(network: str, precision: str, batch: int, steps: int, repeats: int) -> list[str]:
    return ["--network", network, "--precision", precision, "--batch-size", str(batch), "--steps", str(steps),
            "--repeats", str(repeats)]


def bench_tasks(args, batches: list[int]) -> list[dict]:
    return [{"kind": "bench", "network": network, "precision": precision, "batch_size": batch,
             "argv": bench_argv(network, precision, batch, args.steps, args.repeats)}
            for batch in batches for network in args.networks for precision in args.precisions]


def train_task(args) -> dict:
    return {"kind": "train", "network": "attention56", "iterations": args.train_iterations,
            "batch_size": args.train_batch, "train_images": args.train_images, "test_images": args.test_images,
            "params": str(Path(args.params).resolve())}


def stages(args, backends: list[str]) -> list[dict]:
    """The steps in the order the budget spends itself on them (the module docstring)."""
    first, rest = args.batches[:1], args.batches[1:]
    out = []
    for index, backend in enumerate(backends):
        out.append({"backend": backend, "kind": "child", "tasks": bench_tasks(args, first)})
        out.append({"backend": backend, "kind": "compile_cache"})
        if index == 0 and args.train_iterations > 0:
            out.append({"backend": backend, "kind": "child", "tasks": [train_task(args)]})
        if rest:
            out.append({"backend": backend, "kind": "child", "tasks": bench_tasks(args, rest)})
    return out


def describe(task: dict) -> str:
    if task["kind"] == "bench":
        return f"bench {task['network']} {task['precision']} batch {task['batch_size']}"
    if task["kind"] == "train":
        return f"train+evaluate {task['network']} {task['iterations']} iterations batch {task['batch_size']}"
    return task["kind"]


# ---- the child process: one backend, a list of measurements ----------------------------------------------------


def child_main(tasks_file: str, results_file: str, deadline: float, work: str) -> int:
    """Run `tasks_file`'s measurements in this process, one JSON line each into `results_file`."""
    from ran.runtime import DeviceNotVisible, load_framework, prepare_runtime

    prepare_runtime(int(os.environ.get("RAN_JOBS_PER_GPU", "1")))
    with open(results_file, "a") as results:
        def write(record: dict) -> None:
            results.write(json.dumps(record) + "\n")
            results.flush()

        try:
            load_framework()
        except DeviceNotVisible as error:
            write({"kind": "device_check", "error": str(error)})
            return 0
        from ran.train import provenance

        write({"kind": "device", "device": provenance.device_description(), "cpu": provenance.cpu_model(),
               "libraries": provenance.library_versions()})
        for index, task in enumerate(json.loads(Path(tasks_file).read_text())):
            if index and time.time() >= deadline:  # the first was started in time, by the parent
                return 0
            write({"kind": "started", "index": index})
            write({"kind": "done", "index": index, **run_task(task, Path(work))})
    return 0


def run_task(task: dict, work: Path) -> dict:
    """One measurement; an error is recorded in one line and the next measurement still runs."""
    import keras

    tick = time.perf_counter()
    try:
        result = bench_one(task) if task["kind"] == "bench" else train_and_evaluate(task, work)
        status = {"status": "ok", "result": result}
    except Exception as error:  # noqa: BLE001  (e.g. one precision that does not compile must not cost the rest)
        status = {"status": "error", "error": one_line(error)}
    keras.backend.clear_session()  # the next measurement's memory
    return {**status, "wall_s": time.perf_counter() - tick}


def one_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__


def bench_one(task: dict) -> dict:
    from ran.bench import benchmark, parser_and_args

    return benchmark(parser_and_args(task["argv"])[1])


def synthetic(count: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count).astype(np.int64)


def train_and_evaluate(task: dict, work: Path) -> dict:
    """A `quick`-profile Attention-56 seed cut to `iterations`, trained by `train_seed` on synthetic images, then
    scored as `ran evaluate` scores it (the saved model, single view and flip view)."""
    from ran.config import load_params, resolve_profile
    from ran.models import build_network
    from ran.train.loop import train_seed

    training = {**resolve_profile(load_params(task["params"]), "quick"), "iterations": task["iterations"],
                "batch_size": task["batch_size"], "name": "gpucheck"}
    images, labels = synthetic(task["train_images"], 0)
    record = train_seed(lambda: build_network(task["network"], 10), images, labels, training, 0, work / "model",
                        work / "checkpoints", record={"run": "gpucheck_a56"}, progress=False)
    keys = ("images_per_s", "images_per_s_steady", "train_wall_s", "total_wall_s", "dtype_policy", "jit",
            "deterministic_ops", "device", "final_train_loss", "iterations")
    return {"training": {key: record.get(key) for key in keys}, "evaluation": evaluate_model(work, task)}


def evaluate_model(work: Path, task: dict) -> dict:
    from ran.evaluate import classification_metrics, flip_tta_logits, load_trained_model, predict_logits

    images, labels = synthetic(task["test_images"], 1)
    tick = time.perf_counter()
    model = load_trained_model(work / "model" / "model.keras")
    load_s, tick = time.perf_counter() - tick, time.perf_counter()
    logits = predict_logits(model, images, 500)
    single_s, tick = time.perf_counter() - tick, time.perf_counter()
    flip_tta_logits(model, images, 500, logits)
    flip_s = time.perf_counter() - tick
    return {"test_images": len(images), "load_s": load_s, "single_view_s": single_s, "flip_view_s": flip_s,
            "infer_images_per_s_flip_view": len(images) / flip_s,
            "top1_error_pct": classification_metrics(logits, labels, 10, top5=False)["top1_error_pct"],
            "note": "random labels: the error shows the path works, not accuracy (about 90% expected)"}


# ---- the parent process: plans, budget, JSON -------------------------------------------------------------------


def run_process(command: list[str], env: dict, log: Path, stop_at: float) -> dict:
    """Run `command` (its own process group) until it ends or `stop_at`, when the group is stopped."""
    tick = time.time()
    with open(log, "ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=max(1.0, stop_at - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
    return {"returncode": code, "stopped_at_budget": code is None, "wall_s": time.time() - tick,
            "log_tail": last_lines(log) if code else None}


def last_lines(path: Path, count: int = 3) -> list[str]:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-count:]


def backend_env(backend: str, **extra) -> dict:
    return {**os.environ, "KERAS_BACKEND": backend, **extra}


def run_child(stage: dict, state: dict, work: Path) -> None:
    backend, tasks = stage["backend"], stage["tasks"]
    name = f"{backend}-{len(state['runs'])}"
    tasks_file, results_file = work / f"{name}.tasks.json", work / f"{name}.results.jsonl"
    tasks_file.write_text(json.dumps(tasks))
    command = [sys.executable, "-m", "ran.gpucheck", "--child", str(tasks_file), str(results_file),
               str(state["deadline"]), str(work / name)]
    process = run_process(command, backend_env(backend), work / f"{name}.log", state["deadline"] + GRACE_S)
    state["runs"].append({"backend": backend, "tasks": [describe(task) for task in tasks], **process})
    records = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    collect(backend, tasks, records, process, state)


def collect(backend: str, tasks: list[dict], records: list[dict], process: dict, state: dict) -> None:
    """File each child's lines into the report; a task without a result is listed in `not_run` with why."""
    info = state["report"]["backends"][backend]
    done, started = {}, set()
    for record in records:
        if record["kind"] == "device":
            info.update({key: record[key] for key in ("device", "cpu", "libraries")})
        elif record["kind"] == "device_check":
            info["device_check_error"] = record["error"]
        elif record["kind"] == "started":
            started.add(record["index"])
        else:
            done[record["index"]] = record
    for index, task in enumerate(tasks):
        if index in done:
            file_result(backend, task, done[index], state["report"])
        else:
            state["report"]["not_run"].append(f"{backend} {describe(task)}: {why_not(index, started, info, process)}")


def why_not(index: int, started: set, info: dict, process: dict) -> str:
    if info.get("device_check_error"):
        return "the device check failed"
    if index in started:
        return "stopped at the budget" if process["stopped_at_budget"] else "its process failed"
    if process["returncode"] not in (0, None):
        return f"its process failed ({(process['log_tail'] or ['no output'])[-1]})"
    return "budget"


def file_result(backend: str, task: dict, record: dict, report: dict) -> None:
    entry = {"backend": backend, "status": record["status"], "wall_s": record["wall_s"],
             **{key: record[key] for key in ("result", "error") if key in record}}
    if task["kind"] == "bench":
        report["bench"].append({**{key: task[key] for key in ("network", "precision", "batch_size")}, **entry})
    else:
        report["train"] = {**{key: value for key, value in task.items() if key not in ("kind", "params")}, **entry}


def compile_cache(stage: dict, state: dict, work: Path) -> None:
    """Two `ran bench` processes with one fresh cache folder: the first compiles cold, the second reads it."""
    backend, args = stage["backend"], state["args"]
    folder = work / f"cache-{backend}"
    flags = " ".join(flag for flag in os.environ.get("TF_XLA_FLAGS", "").split()
                     if not flag.startswith("--tf_xla_persistent_cache_directory"))
    env = backend_env(backend, JAX_COMPILATION_CACHE_DIR=str(folder / "jax"),
                      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      TF_XLA_FLAGS=f"{flags} --tf_xla_persistent_cache_directory={folder / 'tf'}".strip())
    measured = {}
    for label in ("cold", "warm"):
        if time.time() >= state["deadline"]:
            state["report"]["not_run"].append(f"{backend} compile with a {label} cache: budget")
            break
        out = work / f"compile-{backend}-{label}.json"
        argv = bench_argv(args.networks[0], args.precisions[0], args.batches[0], args.steps, 1) + ["--out", str(out)]
        process = run_process([sys.executable, "-m", "ran.cli", "bench", *argv], env,
                              work / f"compile-{backend}.log", state["deadline"] + GRACE_S)
        measured[label] = compile_figures(out, process)
    if measured:
        state["report"]["compile_cache"][backend] = with_ratio(measured, args)


def compile_figures(out: Path, process: dict) -> dict:
    if not out.exists():
        return {"status": "error", "process": process}
    result = json.loads(out.read_text())
    return {"status": "ok", "process_wall_s": process["wall_s"],
            **{key: result[key] for key in ("build_s", "compile_s", "predict_compile_s", "jit", "dtype_policy")}}


def with_ratio(measured: dict, args) -> dict:
    cold, warm = measured.get("cold", {}), measured.get("warm", {})
    ratio = warm["compile_s"] / cold["compile_s"] if "compile_s" in warm and "compile_s" in cold else None
    return {"network": args.networks[0], "precision": args.precisions[0], "batch_size": args.batches[0],
            **measured, "warm_over_cold_compile": ratio}


def host() -> dict:
    gpus = []
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30)
        gpus = [line.strip() for line in query.stdout.splitlines() if line.strip()] if query.returncode == 0 else []
    return {"gpus": gpus, "gpu_signals": gpu_signals(), "hostname": platform.node(),
            "python": platform.python_version(), "cpu_cores": os.cpu_count(), "cpu_isa": cpu_isa()}


def new_report(args, argv: list[str], backends: list[str]) -> dict:
    return {"command": "ran gpucheck " + " ".join(argv),
            "settings": {key: getattr(args, key) for key in ("networks", "batches", "precisions", "steps", "repeats",
                                                             "train_iterations", "train_batch", "budget_s")},
            "started_at": _now(), "finished_at": None, "wall_s": None, "budget_exhausted": False, "host": host(),
            "backends": {name: {"importable": importable(name), "device": None, "cpu": None, "libraries": None,
                                "device_check_error": None} for name in backends},
            "bench": [], "compile_cache": {}, "train": None, "not_run": [], "runs": []}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_report(out: Path, report: dict) -> None:
    from ran.atomic import write_text_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")


def skip(stage: dict, state: dict, reason: str) -> None:
    tasks = stage.get("tasks") or [{"kind": f"compile with a cold and a warm cache ({stage['backend']})"}]
    state["report"]["not_run"] += [f"{stage['backend']} {describe(task)}: {reason}" for task in tasks]


def run_stages(args, argv: list[str], work: Path) -> dict:
    backends = chosen_backends(args.backends)
    state = {"args": args, "deadline": time.time() + args.budget_s, "runs": [],
             "report": new_report(args, argv, backends)}
    state["report"]["runs"] = state["runs"]
    started = time.time()
    for stage in stages(args, backends):
        backend = state["report"]["backends"][stage["backend"]]
        if not backend["importable"]:
            skip(stage, state, f"{stage['backend']} is not importable here")
        elif backend["device_check_error"]:
            skip(stage, state, "the device check failed")
        elif time.time() >= state["deadline"]:
            state["report"]["budget_exhausted"] = True
            skip(stage, state, "budget")
        elif stage["kind"] == "child":
            run_child(stage, state, work)
        else:
            compile_cache(stage, state, work)
        state["report"].update(finished_at=_now(), wall_s=time.time() - started)
        write_report(Path(args.out), state["report"])
    return state["report"]


def csv_list(kind):
    return lambda text: [kind(item.strip()) for item in text.split(",") if item.strip()]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ran gpucheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--budget-s", type=float, default=540, help="no new measurement after this (default 540)")
    parser.add_argument("--networks", type=csv_list(str), default=csv_list(str)(NETWORKS), help=f"default {NETWORKS}")
    parser.add_argument("--batches", type=csv_list(int), default=[64, 512], help="default 64,512")
    parser.add_argument("--precisions", type=csv_list(str), default=["float32", "bfloat16"],
                        help="default float32,bfloat16")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed bench block (default 50)")
    parser.add_argument("--repeats", type=int, default=2, help="timed bench blocks (default 2)")
    parser.add_argument("--train-iterations", type=int, default=400, help="0 skips training (default 400)")
    parser.add_argument("--train-batch", type=int, default=64, help="the quick profile's batch (default 64)")
    parser.add_argument("--train-images", type=int, default=10000, help="synthetic training images (default 10000)")
    parser.add_argument("--test-images", type=int, default=TEST_IMAGES, help=f"default {TEST_IMAGES}")
    parser.add_argument("--backends", default="auto", help="auto (the current, then the other if importable) or a "
                                                           "comma list, e.g. jax")
    parser.add_argument("--params", default="params.yaml", help="where the quick profile is (default params.yaml)")
    args = parser.parse_args(argv)
    if not (args.networks and args.batches and args.precisions) or min(args.batches) < 1 or args.steps < 1:
        parser.error("--networks, --batches and --precisions need at least one value; batches and steps >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        tasks, results, deadline, work = argv[1:5]
        return child_main(tasks, results, float(deadline), work)
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="ran-gpucheck-") as work:
        report = run_stages(args, argv, Path(work))
    ran_count = sum(entry["status"] == "ok" for entry in report["bench"])
    print(f"gpucheck: {ran_count} benches ok, {len(report['not_run'])} not run, {report['wall_s']:.0f} s: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
