"""Usage charts: SVG drawn on the server with pygal, so they show without JavaScript.

pygal writes a ``<script>`` (its tooltips' config) even with ``js=[]``, and comments
naming its web site: both are taken out, so the chart runs nothing and names nothing
outside. Its ``<style>`` stays: the chart is served as its own ``image/svg+xml`` response
(shown with ``<img>``, where a browser runs no script at all) whose policy allows that
inline style and nothing else, while every page keeps its policy without inline styles.
"""

import xml.etree.ElementTree as ElementTree
from datetime import datetime

import pygal
from pygal.style import Style

from registry_tokens.registry_tokens.usage import UsagePoint

SVG = "http://www.w3.org/2000/svg"
# What a chart's response may use: its own inline style, nothing else (no script, no fetch).
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
CHARTS = {"downloads": "Downloads", "bytes": "Bytes downloaded"}
_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1f2328",
    foreground_strong="#1f2328",
    foreground_subtle="#57606a",
    colors=("#0b5cad", "#8250df"),
    font_family="system-ui, sans-serif",
)

ElementTree.register_namespace("", SVG)
ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")


def label(at: datetime, interval: str) -> str:
    """A bucket as the chart's axis and the table beside it name it (UTC)."""
    return at.strftime("%Y-%m-%d %H:00") if interval == "hour" else at.strftime("%Y-%m-%d")


def usage_chart(points: list[UsagePoint], interval: str, chart: str, title: str) -> str:
    """One series (``chart``: downloads or bytes) per bucket, as an SVG document."""
    config = pygal.Config(js=[])
    drawn = pygal.Bar(
        config,
        style=_STYLE,
        title=title,
        show_legend=False,
        width=800,
        height=320,
        x_label_rotation=40,
        show_minor_x_labels=False,
        x_labels_major_count=8,
        truncate_label=-1,
        disable_xml_declaration=True,
        print_values=False,
        min_scale=1,
        max_scale=6,
    )
    drawn.x_labels = [label(point.at, interval) for point in points]
    drawn.add(CHARTS[chart], [getattr(point, chart) for point in points])
    return _without_script(drawn.render(is_unicode=True), title)


def _without_script(svg: str, title: str) -> str:
    """The chart with no ``<script>`` and no comment, titled for screen readers."""
    # pygal's own output, never a client's (so no untrusted XML): parsing drops comments.
    root = ElementTree.fromstring(svg)  # noqa: S314
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (f"{{{SVG}}}script", "script"):
                parent.remove(child)
    root.set("role", "img")
    root.set("aria-label", title)
    heading = ElementTree.Element(f"{{{SVG}}}title")
    heading.text = title
    root.insert(0, heading)
    return ElementTree.tostring(root, encoding="unicode")
