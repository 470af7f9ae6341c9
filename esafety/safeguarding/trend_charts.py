"""The trends charts, drawn on the server as SVG with pygal and put inline in the page
(issue 5 §7: "drawn as charts").

The app's Content-Security-Policy allows no inline script, no inline style and nothing
from elsewhere, so each chart is cleaned before it is used: pygal's tooltip script and
configuration, its ``<style>`` element, its comments (links to pygal.org), its tooltip
box (an inline ``style``) and the XML namespace declarations (not needed inline in HTML)
are taken out, and a chart that still carries a script, a style or a web address is
refused (:func:`unsafe_parts`). pygal's own stylesheet, for every chart, is served once
as an ordinary stylesheet (:func:`stylesheet`, at ``/safeguarding/trends/charts.css``).

Each chart is a picture of a table the page prints beside it: the numbers never need
the picture (WCAG 1.1.1). Bars are the brand's dark teal on white (7:1, WCAG 1.4.11 asks
3:1), values and labels in the page's ink.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

from esafety.safeguarding.small_numbers import Figure, Withheld
from esafety.safeguarding.trends import Breakdown

__all__ = ["CHART_CLASS", "bar_chart", "stylesheet", "unsafe_parts"]

# pygal puts a finder for its map plugins (unused here) on sys.meta_path, an old-style one
# that makes every failed import afterwards warn (ImportWarning), and fail where warnings
# are errors (the tests; qrcode's optional imports): take it off again.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

CHART_CLASS = "trend-chart"
INK = "#1f2a30"
INK_SOFT = "#4a5862"
BAR = "#1d5c63"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'

#: Short names for the kinds, to fit beside a bar (the table gives each in full).
SHORT_KINDS = {
    "illegal_content": "Illegal content",
    "indecent_images_of_children": "Indecent images of children",
    "youth_produced_sexual_imagery": "Nudes shared by children",
    "online_sexual_abuse": "Sexual abuse, grooming",
    "sexual_violence_harassment": "Sexual violence, harassment",
    "radicalisation": "Radicalisation, extremism",
    "online_bullying": "Online bullying",
    "online_hate": "Online hate",
    "filtering_breach": "Not blocked by the filter",
    "data_breach": "Data breach",
    "staff_allegation": "About a member of staff",
    "parent_carer_concern": "About a parent or carer",
    "technology_misuse": "Misuse of technology",
    "pupil_welfare": "Pupil's wellbeing",
}

STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground=INK,
    foreground_strong=INK,
    foreground_subtle=INK_SOFT,
    font_family=FONT,
    label_font_family=FONT,
    major_label_font_family=FONT,
    value_font_family=FONT,
    value_label_font_family=FONT,
    tooltip_font_family=FONT,
    title_font_family=FONT,
    legend_font_family=FONT,
    no_data_font_family=FONT,
    label_font_size=15,
    major_label_font_size=15,
    value_font_size=15,
    title_font_size=16,
    no_data_font_size=20,
    guide_stroke_color="#d9ddd6",
    major_guide_stroke_color="#b9bfb5",
    opacity="1",
    opacity_hover="1",
    stroke_opacity="1",
    stroke_opacity_hover="1",
    transition="none",
    colors=(BAR,),
    value_colors=(INK,),
)

# Values sit just past the end of each bar, in ink (white inside a short bar would vanish).
_OWN_CSS = f"""
.{CHART_CLASS} {{ width: 100%; height: auto; display: block; }}
.{CHART_CLASS} .text-overlay text.value {{ fill: {INK}; font-weight: 600; }}
.{CHART_CLASS}.chart--across .text-overlay text.value {{
  text-anchor: start; transform: translate(6px, 0); }}
.{CHART_CLASS}.chart--up .text-overlay text.value {{ transform: translate(0, -12px); }}
.{CHART_CLASS} text.no_data {{ fill: {INK_SOFT}; }}
"""

_NAMESPACES = (
    ' xmlns="http://www.w3.org/2000/svg"',
    ' xmlns:xlink="http://www.w3.org/1999/xlink"',
)


def unsafe_parts(svg: str) -> list[str]:
    """What in ``svg`` the page's CSP would block or that reaches outside: empty when safe."""
    found = []
    if re.search(r"<script", svg, re.IGNORECASE):
        found.append("a <script>")
    if re.search(r"<style", svg, re.IGNORECASE):
        found.append("a <style> element")
    if re.search(r"\sstyle=", svg, re.IGNORECASE):
        found.append("a style attribute")
    if re.search(r"\son[a-z]+=", svg, re.IGNORECASE):
        found.append("an event handler attribute")
    addresses = re.findall(r"(?:https?:)?//[\w.-]+\.\w+(?:/[\w./?=&%-]*)?", svg)
    found += [f"the address {address.rstrip('-')}" for address in addresses]
    return found


def _ticks(top: int) -> list[int]:
    """Whole-number gridlines from 0, about five of them, reaching past ``top``."""
    step = max(1, math.ceil(top / 5))
    if step > 5:
        step = math.ceil(step / 5) * 5
    last = (top // step + 1) * step
    return list(range(0, last + 1, step))


def _cleaner(description: str, *extra_classes: str) -> Callable[[Any], Any]:
    def clean(root: Any) -> Any:  # an ElementTree element (lxml's when it is installed)
        for parent in list(root.iter()):
            for child in list(parent):
                # A comment's (or processing instruction's) tag is a function, not a name.
                is_comment = not isinstance(child.tag, str)
                name = "" if is_comment else child.tag.rsplit("}", 1)[-1]
                if (
                    is_comment
                    or name in ("script", "style")
                    or "tooltip-overlay" in child.get("class", "").split()
                ):
                    parent.remove(child)
                elif name == "title" and parent is root:
                    child.text = description
            parent.attrib.pop("style", None)
        root.attrib.pop("id", None)
        root.set("class", " ".join(["pygal-chart", CHART_CLASS, *extra_classes]))
        root.set("role", "img")
        root.set("aria-label", description)
        root.set("focusable", "false")
        return root

    return clean


def _config(**settings: Any) -> pygal.Config:
    config = pygal.Config()
    config.style = STYLE
    config.js = []  # pygal's tooltips load a script from kozea.github.io: never
    config.css = []  # no extra stylesheets (pygal's base one is served by stylesheet())
    config.disable_xml_declaration = True
    config.show_legend = False
    config.print_values = True
    config.print_zeroes = True
    config.print_values_position = "top"
    config.truncate_label = -1
    config.margin = 12
    for key, value in settings.items():
        setattr(config, key, value)
    return config


def _value(figure: Figure, *, across: bool) -> int | dict[str, Any]:
    """A bar's value; a withheld figure has no bar, only its words (short when upright)."""
    if figure.count is not None:
        return figure.count
    text = figure.text if across else ("<3" if figure.withheld is Withheld.SMALL else "–")
    return {"value": 0, "formatter": lambda _value: text}


def bar_chart(
    breakdown: Breakdown, *, across: bool, short: Mapping[str, str] | None = None
) -> Markup:
    """``breakdown`` as a bar chart: bars ``across`` (long labels, one row each) or up
    (months, year groups). Withheld figures have no bar; their label says why."""
    figures = breakdown.figures
    counts = [f.count for f in figures]
    top = max([c for c in counts if c is not None] + [1])
    description = f"Bar chart: {breakdown.title.lower()}. The figures are in the table beside it."
    # About the width the page gives a chart, so that text is drawn near its true size.
    size = {"width": 620, "height": 60 + 36 * max(len(figures), 2)} if across else {}
    chart_type = pygal.HorizontalBar if across else pygal.Bar
    chart = chart_type(
        _config(
            **size,
            **({} if across else {"width": 620, "height": 320}),
            range=(0, _ticks(top)[-1]),
            y_labels=_ticks(top),
            x_label_rotation=0 if across or len(figures) <= 12 else 30,
            no_data_text="No concerns",
        )
    )
    chart.add_xml_filter(_cleaner(description, "chart--across" if across else "chart--up"))
    labels = [(short or {}).get(f.key, f.label) for f in figures]
    values: list[Any] = [_value(f, across=across) for f in figures]
    # pygal draws the first row of a horizontal chart at the bottom: reverse, so the chart
    # reads top to bottom in the table's order.
    chart.x_labels = labels[::-1] if across else labels
    chart.add(breakdown.title, values[::-1] if across else values)
    svg = str(chart.render(is_unicode=True))
    for namespace in _NAMESPACES:
        svg = svg.replace(namespace, "")
    problems = unsafe_parts(svg)
    if problems:
        raise RuntimeError(f"the {breakdown.key} chart still carries {', '.join(problems)}")
    return Markup(svg)  # noqa: S704 - pygal escapes the labels; cleaned and checked above


@cache
def stylesheet() -> str:
    """pygal's stylesheet for the charts, scoped to ``.trend-chart``, and ours after it."""
    found: list[str] = []

    def keep(root: Any) -> Any:
        found.extend(e.text or "" for e in root.iter() if str(e.tag).endswith("style"))
        return root

    chart = pygal.Bar(_config(css=["file://style.css", "file://graph.css"]))
    chart.add_xml_filter(keep)
    chart.add("sample", [1])
    chart.render()
    css = re.sub(r"#chart-[0-9a-f-]+", f".{CHART_CLASS}", "\n".join(found))
    return css + _OWN_CSS
