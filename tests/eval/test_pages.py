"""The public rendering API other reports build on: Section tables, html_page, markdown_page."""

from __future__ import annotations

import base64

import pytest

from palaestra.eval import CurvePoint, Section, html_page, markdown_page, panel_curves

SEC = Section(
    key="models",
    title="Success <per> group",
    intro="why",
    headers=["model", "success"],
    rows=[["a|b", "50%"], ["c", "-"]],
    figures=["curves", "absent"],
)


def test_html_page_is_self_contained_and_escaped() -> None:
    png = b"\x89PNG fake"
    page = html_page("My report", [SEC], {"curves": ("the curves", png)}, footer=["<p>end</p>"])
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<h1>My report</h1>" in page and "<style>" in page
    assert "Success &lt;per&gt; group" in page  # titles are escaped
    assert base64.b64encode(png).decode() in page  # the figure is embedded
    assert page.count("<figure>") == 1  # a figure the section names but nobody drew is skipped
    assert page.index("</table>") < page.index("<figure>") < page.index("<p>end</p>")
    assert "http" not in page  # no external links or assets


def test_markdown_page_has_the_same_table() -> None:
    md = markdown_page("My report", [SEC], footer=["Details: x"])
    assert md.startswith("# My report\n") and md.endswith("Details: x\n")
    assert "| model | success |" in md and "| a\\|b | 50% |" in md  # cells escaped


def _points(series: str, values: list[float]) -> list[CurvePoint]:
    return [CurvePoint("heldin", series, x, v, v - 0.1, v + 0.1) for x, v in enumerate(values)]


def test_panel_curves_draw_a_png_or_nothing() -> None:
    pytest.importorskip("matplotlib")
    png = panel_curves([*_points("improve", [0.1, 0.3]), *_points("control", [0.1, 0.2])])
    assert png is not None and png.startswith(b"\x89PNG")
    # deterministic bytes for the same data
    assert png == panel_curves([*_points("improve", [0.1, 0.3]), *_points("control", [0.1, 0.2])])
    assert panel_curves(_points("improve", [0.5])) is None  # one point is not a curve
    assert panel_curves([]) is None
