"""Inline SVG for reports: KPI trend charts and the escalation graph, with no script and no external asset.

Every text that reaches the SVG goes through `xml.sax.saxutils` escaping, so a KPI or role name can
never break out of the markup.
"""

from __future__ import annotations

import datetime
import textwrap
from xml.sax.saxutils import escape, quoteattr

import networkx as nx

from ..escalation import EscalationGraph
from .model import Trend

STATUS_COLOURS = {"pass": "#2e7d32", "warn": "#b26a00", "breach": "#c62828", "missing": "#6d6d6d",
                  "error": "#6a1b9a", "no_evidence": "#6d6d6d"}


def _x_positions(times: list[str], left: float, width: float) -> list[float]:
    moments = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times]
    low, high = min(moments), max(moments)
    span = high - low or 1.0
    return [left + (m - low) / span * width if high > low else left + width / 2 for m in moments]


def trend_chart(trend: Trend, width: int = 320, height: int = 150) -> str:
    """A line chart of one KPI with its breach (solid) and warn (dashed) bounds."""
    left, right, top, bottom = 44.0, 10.0, 22.0, 26.0
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p.value for p in trend.points]
    bounds = {name: value for name, value in trend.thresholds.items()}
    low = min([*values, *bounds.values()])
    high = max([*values, *bounds.values()])
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad

    def y(value: float) -> float:
        return top + (high - value) / (high - low) * plot_h

    xs = _x_positions([p.window_start for p in trend.points], left, plot_w)
    colour = STATUS_COLOURS.get(trend.worst, "#1f4e79")
    kpi = f"{trend.kpi} [{trend.segment}]" if trend.segment else trend.kpi
    title = f"{trend.system}: {kpi} ({trend.rule}, latest {trend.worst})"
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label={quoteattr(title)}>',
             f"<title>{escape(title)}</title>",
             f'<text x="{left}" y="14" font-size="11" font-weight="bold">{escape(trend.system)} · '
             f"{escape(kpi)}</text>",
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for value in (low + pad, high - pad):
        parts.append(f'<text x="{left - 4}" y="{y(value) + 3:.1f}" font-size="9" text-anchor="end">'
                     f"{value:.3g}</text>")
    for name, value in sorted(bounds.items()):
        dash = ' stroke-dasharray="4 3"' if name.startswith("warn") else ""
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#c62828"{dash} stroke-width="1"><title>{escape(name)} {value}</title></line>')
    points = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in zip(xs, values, strict=True))
    parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for x, point in zip(xs, trend.points, strict=True):
        parts.append(f'<circle cx="{x:.1f}" cy="{y(point.value):.1f}" r="3" fill="{colour}">'
                     f"<title>{escape(point.window_start[:10])}: {point.value}</title></circle>")
    first, last = trend.points[0].window_start[:7], trend.points[-1].window_start[:7]
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="9">{escape(first)}</text>')
    parts.append(f'<text x="{left + plot_w}" y="{height - 8}" font-size="9" text-anchor="end">{escape(last)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def escalation_svg(graph: EscalationGraph) -> str:
    """The escalation graph drawn bottom-up: the entry role at the bottom, escalation edges upward."""
    config = graph.config
    layers: list[list[str]] = [sorted(layer) for layer in nx.topological_generations(graph.graph)]
    # every member is shown: the names wrap inside the box, and all boxes take the tallest one's height
    titles = {name: textwrap.wrap(role.title, 30) for name, role in config.roles.items()}
    lines = {name: textwrap.wrap(", ".join(role.members), 34, break_on_hyphens=False) or ["(no members)"]
             for name, role in config.roles.items()}
    box_w, gap_x, gap_y = 210, 24, 44
    box_h = 24 + 13 * max(len(titles[name]) + len(lines[name]) for name in config.roles)
    width: float = max(len(layer) for layer in layers) * (box_w + gap_x) + gap_x
    height: float = len(layers) * (box_h + gap_y) + gap_y
    position: dict[str, tuple[float, float]] = {}
    for depth, layer in enumerate(layers):
        row_w = len(layer) * (box_w + gap_x) - gap_x
        for index, name in enumerate(layer):
            x = (width - row_w) / 2 + index * (box_w + gap_x)
            y = height - gap_y - box_h - depth * (box_h + gap_y)
            position[name] = (x, y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="escalation" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Escalation graph">',
             "<title>Escalation graph</title>",
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for edge in config.edges:
        (sx, sy), (tx, ty) = position[edge.source], position[edge.target]
        x1, y1, x2, y2 = sx + box_w / 2, sy, tx + box_w / 2, ty + box_h
        label = f"{'/'.join(s.value for s in edge.severities)} after {_duration(edge.timeout)}"
        parts.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#555" '
                     'marker-end="url(#arrow)"/>')
        parts.append(f'<text x="{(x1 + x2) / 2 + 6:.0f}" y="{(y1 + y2) / 2 + 4:.0f}" font-size="10">'
                     f"{escape(label)}</text>")
    for name, (x, y) in position.items():
        role = config.roles[name]
        parallel = config.regulatory is not None and name == config.regulatory.role
        dash = ' stroke-dasharray="5 3"' if parallel else ""  # paged in parallel, not by an edge
        parts.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="6" fill="#f4f7fb" '
                     f'stroke="#1f4e79"{dash}/>')
        row = y + 16
        for line in titles[name]:
            parts.append(f'<text x="{x + 8:.0f}" y="{row:.0f}" font-size="11" font-weight="bold">{escape(line)}</text>')
            row += 13
        parts.append(f'<text x="{x + 8:.0f}" y="{row:.0f}" font-size="9" fill="#555">'
                     f"{escape(name)} · authority {role.authority}</text>")
        for line in lines[name]:
            row += 13
            parts.append(f'<text x="{x + 8:.0f}" y="{row:.0f}" font-size="10">{escape(line)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _duration(delta: datetime.timedelta) -> str:
    days, seconds = delta.days, delta.seconds
    return f"{days}d" if not seconds else f"{days * 24 + seconds // 3600}h"
