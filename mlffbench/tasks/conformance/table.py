"""The suite's report as a rich table: one row per check, status and measured deviations."""

from __future__ import annotations

from mlffbench.tasks.conformance.checks import FAILED, PASSED, REPORTED, Report

STYLE = {PASSED: "green", FAILED: "bold red", REPORTED: "yellow", "skipped": "dim"}


def report_table(report: Report):
    from rich.table import Table

    table = Table(title=f"conformance of {report.model} ({report.dtype})", show_lines=True)
    table.add_column("check", style="bold")
    table.add_column("status")
    table.add_column("measured (tolerance)")
    table.add_column("note")
    for r in report.results:
        measured = "\n".join(("" if m.ok else "✗ ") + m.text() for m in r.measurements)
        table.add_row(r.name, f"[{STYLE.get(r.status, '')}]{r.status}[/]", measured, r.detail)
    return table
