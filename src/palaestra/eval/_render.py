"""Render a :class:`~palaestra.eval.Report` as HTML, Markdown and rich terminal tables.

All three draw on the same :func:`~palaestra.eval._report.sections`, so
they show identical numbers. The HTML is one self-contained file: inline
CSS, figures as base64 ``data:`` PNGs, no scripts, no external links.

Other reports (``palaestra evolve``'s) are built from the same parts, through
the public :func:`html_page` and :func:`markdown_page`: a title, a list of
:class:`~palaestra.eval.Section` tables and their figures, in the same style.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from palaestra.eval._metrics import Price
from palaestra.eval._report import (
    Report,
    ReportFiles,
    Section,
    build_report,
    figures,
    pct,
    sections,
)

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#dde2ea; --bg:#f6f7f9; --accent:#3366aa;
        --good:#2e9e5b; --bad:#d1495b; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:24px 28px 48px; }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:18px; margin:32px 0 6px; padding-top:8px; border-top:1px solid var(--line); }
p.meta, p.intro, figcaption { color:var(--muted); margin:4px 0 10px; }
nav { margin:10px 0 0; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; margin-right:14px; }
.cards { display:flex; flex-wrap:wrap; gap:14px; margin:18px 0 4px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 16px;
        min-width:250px; flex:1; }
.card .name { font-weight:600; }
.card .sub { color:var(--muted); font-size:12px; }
.card .big { font-size:30px; font-weight:700; color:var(--accent); margin-top:6px; }
.card .ci { color:var(--muted); font-size:12px; }
.card .kv { display:grid; grid-template-columns:max-content auto; gap:2px 14px; margin-top:8px;
            font-size:13px; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line);
        font-size:13px; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:right;
         white-space:nowrap; }
th { background:#eef1f6; font-weight:600; }
th.l, td.l { text-align:left; }
tr:nth-child(even) td { background:#fafbfc; }
td.yes { color:var(--good); font-weight:600; }
.scroll { overflow-x:auto; }
figure { margin:14px 0 0; background:#fff; border:1px solid var(--line); border-radius:6px;
         padding:8px; }
figure img { max-width:100%; display:block; margin:0 auto; }
.notes { background:#fff8e6; border:1px solid #f0d9a0; border-radius:6px; padding:8px 14px; }
"""


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


_NUMBER = re.compile(r"^[−+-]?[$\d]")


def numeric_columns(sec: Section) -> list[bool]:
    """Which columns hold numbers (right-aligned); the others are text (left-aligned)."""
    return [
        all(_NUMBER.match(row[i]) or row[i] == "-" for row in sec.rows) and bool(sec.rows)
        for i in range(len(sec.headers))
    ]


def _html_table(sec: Section) -> str:
    align = ["" if num else ' class="l"' for num in numeric_columns(sec)]
    head = "".join(f"<th{a}>{html.escape(h)}</th>" for a, h in zip(align, sec.headers, strict=True))
    body: list[str] = []
    for row in sec.rows:
        cells = "".join(
            f'<td class="yes{" l" if a else ""}">{html.escape(c)}</td>'
            if c.startswith("yes")
            else f"<td{a}>{html.escape(c)}</td>"
            for a, c in zip(align, row, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _cards(report: Report) -> str:
    cards: list[str] = []
    for label, r in zip(report.labels, report.runs, strict=True):
        g = r.overall
        iv = g.success.interval()
        ci = f"{report.runs[0].confidence:.0%} CI {pct(iv[0])} – {pct(iv[1])}" if iv else ""
        k = max(g.pass_hat_k, default=0)
        pass_k = pct(g.pass_hat_k[k].value) if k else "-"
        sub = " · ".join(x for x in (r.kind, r.model_id, r.agent, r.suite) if x)
        c = g.counts
        cards.append(
            f'<div class="card"><div class="name">{html.escape(label)}</div>'
            f'<div class="sub">{html.escape(sub)}</div>'
            f'<div class="big">{pct(g.success.value)}</div><div class="ci">success · {ci}</div>'
            '<div class="kv">'
            f"<span>progress</span><span>{pct(g.progress.value)}</span>"
            f"<span>pass^{k}</span><span>{pass_k}</span>"
            f"<span>episodes</span><span>{c.episodes} ({g.n_tasks} tasks)</span>"
            f"<span>limits / errors</span><span>{c.limit} / {c.error} excluded</span>"
            "</div></div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def render_html(report: Report, figs: Mapping[str, tuple[str, bytes]]) -> str:
    secs = sections(report)
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in secs)
    parts = [
        *page_head(f"Palaestra report: {', '.join(report.labels)}"),
        "<h1>Palaestra report</h1>",
        f'<p class="meta">{html.escape(_meta(report))}</p>',
        f"<nav>{nav}</nav>",
        _cards(report),
    ]
    if report.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
        parts.append(f'<div class="notes"><ul>{items}</ul></div>')
    for sec in secs:
        parts += section_html(sec, figs)
    parts.append("</main></body></html>")
    return "\n".join(parts)


def page_head(title: str) -> list[str]:
    """The start of a self-contained report page (styles included), up to ``<main>``."""
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
    ]


def section_html(sec: Section, figs: Mapping[str, tuple[str, bytes]]) -> list[str]:
    """A section as HTML: heading, intro, table, then its figures."""
    parts = [f'<h2 id="{sec.key}">{html.escape(sec.title)}</h2>']
    if sec.intro:
        parts.append(f'<p class="intro">{html.escape(sec.intro)}</p>')
    parts.append(_html_table(sec))
    parts.extend(_img(figs[k][1], figs[k][0]) for k in sec.figures if k in figs)
    return parts


def html_page(
    title: str,
    sections: Sequence[Section],
    figures: Mapping[str, tuple[str, bytes]] | None = None,
    *,
    footer: Sequence[str] = (),
) -> str:
    """A self-contained HTML page: ``title`` as heading, then each section and its figures.

    ``figures`` maps the keys sections name in :attr:`Section.figures` to
    ``(caption, PNG bytes)``; ``footer`` is raw HTML appended after the sections.
    """
    parts = [*page_head(title), f"<h1>{html.escape(title)}</h1>"]
    for sec in sections:
        parts += section_html(sec, figures or {})
    parts += [*footer, "</main></body></html>"]
    return "\n".join(parts)


def markdown_page(title: str, sections: Sequence[Section], *, footer: Sequence[str] = ()) -> str:
    """The same page as Markdown: ``# title``, then each section; ``footer`` lines at the end."""
    lines = [f"# {title}", ""]
    for sec in sections:
        lines += section_markdown(sec)
    return "\n".join([*lines, *footer]) + "\n"


def _meta(report: Report) -> str:
    r0 = report.runs[0]
    return (
        f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC · {len(report.runs)} run(s) · "
        f"{r0.confidence:.0%} intervals from {r0.n_boot} task-level bootstrap resamples · "
        f"α = {report.alpha}"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section_markdown(sec: Section) -> list[str]:
    """A section as Markdown lines: heading, intro, table, a blank line."""
    lines = [f"## {sec.title}", ""]
    if sec.intro:
        lines += [sec.intro, ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in sec.headers) + " |")
    lines.append("|" + "|".join("---" for _ in sec.headers) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in sec.rows]
    lines.append("")
    return lines


def render_markdown(report: Report) -> str:
    lines = ["# Palaestra report", "", _meta(report), ""]
    lines += [f"> {n}" for n in report.notes] + ([""] if report.notes else [])
    for sec in sections(report):
        lines += section_markdown(sec)
    lines.append("Plots: see report.html next to this file.")
    return "\n".join(lines) + "\n"


#: Columns the terminal summary keeps (the files have them all).
_TERMINAL = {
    "overall": ("run", "success [CI]", "pass^k", "progress [CI]", "steps ± SE", "S/F/L/E"),
    "groups": ("run", "group", "success [CI]", "pass^k", "progress [CI]", "S/F/L/E"),
    "envs": ("run", "env", "success [CI]", "pass^k", "progress [CI]", "S/F/L/E"),
    "compare": ("runs", "metric", "baseline → run", "delta", "significant"),
    "curve": ("iteration", "run", "success [CI]", "progress [CI]"),
}


def print_summary(report: Report, console: Console) -> None:
    """The headline tables, with fewer columns, as rich tables."""
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for sec in sections(report):
        keep = _TERMINAL.get(sec.key)
        if keep is None or not sec.rows:
            continue
        headers = ["S/F/L/E" if h.startswith("succ /") else h for h in sec.headers]
        cols = [i for i, h in enumerate(headers) if h in keep]
        rows = sec.rows
        numeric = numeric_columns(sec)
        table = Table(title=sec.title, title_justify="left")
        for j, i in enumerate(cols):
            table.add_column(headers[i], justify="right" if numeric[i] else "left", no_wrap=j < 2)
        for row in rows:
            cells = [row[i] for i in cols]
            table.add_row(*(f"[green]{c}[/]" if c.startswith("yes") else c for c in cells))
        console.print(table)


def write_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    curve: bool = False,
    prices: Mapping[str, Price] | None = None,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: str = "palaestra",
) -> ReportFiles:
    """Build the report of ``run_dirs`` and write report.html, report.md and report.json."""
    report, episodes = build_report(
        run_dirs, curve=curve, prices=prices, alpha=alpha, n_boot=n_boot, seed=seed
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        html=out / "report.html",
        markdown=out / "report.md",
        json_path=out / "report.json",
        report=report,
    )
    files.html.write_text(render_html(report, figures(report, episodes)), encoding="utf-8")
    files.markdown.write_text(render_markdown(report), encoding="utf-8")
    files.json_path.write_text(report.model_dump_json(indent=1), encoding="utf-8")
    return files
