"""The FROC table the evaluation commands print (Rich, no model imports)."""

from __future__ import annotations

from rich.table import Table

from mammocad.eval.froc import FrocReport


def froc_table(
    report: FrocReport,
    *,
    title: str = "FROC: sensitivity at false positives per image",
    end_column: str = "all (FP/img)",
) -> Table:
    """One row per curve: truths, sensitivity at each FP rate, and the end of the curve
    (every prediction kept) with its false positives per image."""
    table = Table(title=title)
    curves = list(report.curves.values())
    table.add_column("curve")
    table.add_column("truths", justify="right")
    for rate in curves[0].fp_rates if curves else ():
        table.add_column(f"{rate:g}", justify="right")
    table.add_column(end_column, justify="right")
    ends = report.all_candidates()
    for curve in curves:
        end = ends[curve.name]
        table.add_row(
            curve.name,
            str(curve.n_truths),
            *(f"{value:.2f}" for value in curve.sensitivity_at),
            f"{end['sensitivity']:.2f} ({end['fp_per_image']:.1f})",
        )
    return table
