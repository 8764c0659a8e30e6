"""The evaluation chart: Recall@10, NDCG@10 and coverage per model, with the publishing gate drawn in.

Built on a bare ``Figure`` with the Agg canvas (no pyplot), so it needs no display, keeps no global
state, and is safe in Dagster's run workers.
"""

from __future__ import annotations

import base64
import io
from typing import Final

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from assets.recommendations.training import TrainedRecommendations

_PANELS: Final = (("recall", "Recall@10"), ("ndcg", "NDCG@10"), ("coverage", "Catalog coverage"))
_COLOURS: Final = {"popularity": "#9aa5b1", "item_item": "#3e7cb1", "als": "#f39237"}


def metrics_png(result: TrainedRecommendations, *, dpi: int = 90) -> bytes:
    """A PNG with one panel per metric; the chosen model is outlined, the NDCG gate is a dashed line."""
    names = list(result.evaluations)
    figure = Figure(figsize=(9.0, 3.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(_PANELS))
    for ax, (attr, title) in zip(np.atleast_1d(axes), _PANELS, strict=True):
        values = [getattr(result.evaluations[n].metrics, attr) for n in names]
        bars = ax.bar(names, values, color=[_COLOURS.get(n, "#777777") for n in names])
        for bar, name, value in zip(bars, names, values, strict=True):
            if name == result.chosen:
                bar.set_edgecolor("#222222")
                bar.set_linewidth(2.0)
            ax.annotate(
                f"{value:.3f}",
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if attr == "ndcg":
            ax.axhline(result.gate_threshold, color="#c0392b", linestyle="--", linewidth=1)
            ax.annotate(
                f"gate {result.gate_factor:g}x popularity",
                (0.98, result.gate_threshold),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=7,
                color="#c0392b",
            )
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, max(1e-6, *values, result.gate_threshold if attr == "ndcg" else 0) * 1.2)
        ax.tick_params(labelsize=8)
    verdict = "passes" if result.passes_gate else "FAILS"
    figure.suptitle(
        f"{result.version}: chosen {result.chosen}, {verdict} the gate", fontsize=10, fontweight="bold"
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str = "evaluation") -> str:
    """Markdown that the Dagster UI renders inline (a data URI, so no file server is needed)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
