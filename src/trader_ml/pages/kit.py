"""The pages' kit: the matplotlib setup, inline PNG figures, and the Jinja2 templates every page renders."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: render to memory

import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, PackageLoader  # noqa: E402
from markupsafe import Markup  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

COLORS = ["#2e7d32", "#1565c0", "#ef6c00", "#757575", "#c62828"]  # one per regime, in REGIMES order
REGIME_CMAP = ListedColormap(COLORS)  # regime codes 0-4 as an image: one image per band, not a patch per day

# Every page is a Jinja2 template with autoescaping: text from a manifest or a summary is escaped
# wherever it lands; only the markup the templates themselves render passes as is.
TEMPLATES = Environment(loader=PackageLoader("trader_ml.pages", "templates"), autoescape=True)


def figure_png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def render_template(name: str, **context) -> Markup:
    return Markup(TEMPLATES.get_template(name).render(**context))


def html_table(title: str, columns: list[str], rows: dict[str, list]) -> Markup:
    """A titled table: one row per key, one cell per column (floats to 3 places, None as -)."""
    return render_template("table.html", title=title, columns=columns, rows=rows)


def html_figures(items: list[tuple[str, str]]) -> Markup:
    """Titled inline images: (title, data: URL) pairs."""
    return render_template("figures.html", items=items)
