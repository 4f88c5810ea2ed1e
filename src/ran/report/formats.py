"""A small table type and its three renderings: CSV (every column), Markdown and LaTeX (the text columns)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ran.atomic import write_text_atomic
from ran.report.outputs import TABLE_SUFFIXES


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    text: bool = True  # False: CSV only (raw numbers behind a formatted text column)


@dataclass
class Table:
    name: str  # file stem: table1, seed_project, ...
    title: str
    caption: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)

    def text_columns(self) -> list[Column]:
        return [c for c in self.columns if c.text]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow([_cell(row.get(c.key)) for c in table.columns])
    return buffer.getvalue()


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def to_markdown(table: Table) -> str:
    columns = table.text_columns()
    lines = [f"**{table.title}.** {table.caption}", ""]
    lines.append("| " + " | ".join(_md_escape(c.label) for c in columns) + " |")
    lines.append("|" + "|".join(" --- " for _ in columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_md_escape(_cell(row.get(c.key))) for c in columns) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "−": r"$-$", "—": "---", "≤": r"$\le$", "|": r"$|$", "×": r"$\times$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    columns = table.text_columns()
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{latex_escape(table.title)}. {latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.name}}}",
        r"\begin{tabular}{" + "l" * len(columns) + "}",
        r"\hline",
        " & ".join(latex_escape(c.label) for c in columns) + r" \\",
        r"\hline",
    ]
    lines += [" & ".join(latex_escape(_cell(row.get(c.key))) for c in columns) + r" \\" for row in table.rows]
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"




def write_table(table: Table, out_dir: str | Path) -> list[Path]:
    """`{name}.csv`, `{name}.md` and `{name}.tex` in `out_dir`, each written atomically."""
    out_dir = Path(out_dir)
    renderers = {".csv": to_csv, ".md": to_markdown, ".tex": to_latex}
    return [write_text_atomic(out_dir / f"{table.name}{suffix}", renderers[suffix](table)) for suffix in TABLE_SUFFIXES]
