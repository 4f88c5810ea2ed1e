"""`ran report`: execute the report notebook with papermill and render it to one self-contained HTML file.

Code cells are hidden (exclude_input), nothing is fetched from the network (no CDN scripts), and the figures are
embedded as base64, but for large per-run pictures beyond a size budget (ran.report.sections.embedded_stems): those
are linked from the figures folder beside the report, and the banner says how many (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ran.atomic import write_text_atomic
from ran.config import ConfigError, load_params, resolve_profile

KERNEL_NAME = "python3"
# The lab template minus its CDN scripts: the report opens offline (workflow/notebooks/offline.html.j2).
OFFLINE_TEMPLATE = Path(__file__).resolve().parents[3] / "workflow" / "notebooks" / "offline.html.j2"


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """Make sure Jupyter knows a kernel called `name`; on a bare CI machine register this interpreter's ipykernel."""
    from jupyter_client.kernelspec import KernelSpecManager

    if name in KernelSpecManager().find_kernel_specs():
        return name
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", name], check=True,
                   capture_output=True)
    return name


def local_kernel_manager(socket_dir: Path):
    """A kernel manager talking to its kernel over Unix sockets in `socket_dir`: nothing listens on TCP, and the
    kernel has no reason to warn that its traffic is unencrypted."""
    from jupyter_client.manager import AsyncKernelManager

    class LocalKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport, self.ip = "ipc", str(socket_dir / "kernel")

    return LocalKernelManager


def execute(notebook: Path, executed: Path, parameters: dict, kernel: str, timeout_s: int) -> None:
    import papermill

    papermill.execute_notebook(str(notebook), str(executed), parameters=parameters, kernel_name=kernel,
                               progress_bar=False, log_output=False, execution_timeout=timeout_s, cwd=str(Path.cwd()),
                               kernel_manager_class=local_kernel_manager(executed.parent))


def to_html(executed: Path, title: str) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file=str(OFFLINE_TEMPLATE), exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True)
    notebook = nbformat.read(executed, as_version=4)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
    return body


def render_report(notebook: str | Path, out: str | Path, profile: str, results: str | Path, params_path: str | Path,
                  kernel: str = KERNEL_NAME, timeout_s: int = 600) -> Path:
    """Run the notebook on `results` and write the HTML to `out` atomically; returns `out`."""
    notebook, out = Path(notebook), Path(out)
    if not notebook.is_file():
        raise FileNotFoundError(f"report notebook not found: {notebook}")
    if not Path(results).is_dir():
        raise FileNotFoundError(f"results folder not found: {results}")
    parameters = {"profile": profile, "results_dir": str(Path(results).resolve()),
                  "params_path": str(Path(params_path).resolve()), "report_dir": str(out.parent.resolve())}
    with tempfile.TemporaryDirectory(prefix="ran-report-") as tmp:
        executed = Path(tmp) / notebook.name
        execute(notebook, executed, parameters, ensure_kernel(kernel), timeout_s)
        html = to_html(executed, f"Residual Attention Network replication ({profile} profile)")
    return write_text_atomic(out, html)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ran report", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument("--profile", help="profile the results belong to (default: the file's `profile`)")
    parser.add_argument("--notebook", required=True, help="workflow/notebooks/report.ipynb")
    parser.add_argument("--results", required=True, help="results/{profile} (its tables/ and figures/ are read)")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.add_argument("--kernel", default=KERNEL_NAME, help="Jupyter kernel name (default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per notebook cell (default: %(default)s)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        profile = resolve_profile(load_params(args.params), args.profile)["name"]
        out = render_report(args.notebook, args.out, profile, args.results, args.params, args.kernel, args.timeout)
    except (ConfigError, FileNotFoundError) as error:
        parser.exit(2, f"ran report: {error}\n")
    size_kib = out.stat().st_size / 1024
    print(f"ran report: {out} ({size_kib:.0f} KiB, {time.perf_counter() - started:.1f} s)")
    return 0
