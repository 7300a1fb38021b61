"""The reports' PDF: a cover (company, period, generated at, contents), then one block per section —
figures with human labels and units, tables, and a chart where the figures are a trend or a
distribution — with the report's name, the company and the page number on every page.

Drawn with fpdf2's own primitives (no plotting library): charts are bars or lines over labelled
categories, with gridlines, values and an optional reference line (a contracted volume, a target).
The core PDF fonts only speak Latin-1: other characters are replaced, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ACCENT = (29, 78, 216)
INK = (15, 23, 42)
MUTED = (71, 85, 105)
GRID = (226, 232, 240)
STRIPE = (241, 245, 249)
PALETTE = [(37, 99, 235), (22, 163, 74), (234, 88, 12), (147, 51, 234), (220, 38, 38), (8, 145, 178)]
SEVERITY_COLOURS = {
    "critical": (185, 28, 28),
    "high": (234, 88, 12),
    "medium": (202, 138, 4),
    "low": (37, 99, 235),
}

# Labels a person reads in place of the API's keys; anything else is derived from the key.
LABELS = {
    "total": "Total",
    "open": "Open",
    "closed": "Closed",
    "critical open": "Critical open",
    "compliance_pct": "Compliance (%)",
    "compliance %": "Compliance (%)",
    "mtta_minutes": "Mean time to acknowledge (minutes)",
    "mttn_minutes": "Mean time to notify (minutes)",
    "mttr_minutes": "Mean time to resolve (minutes)",
    "mttd_minutes": "Mean time to detect (minutes)",
    "average_eps": "Average EPS",
    "peak_eps": "Peak EPS",
    "utilisation_pct": "Utilisation (%)",
    "estimated_gb_per_day": "Estimated GB per day",
    "contracted_volume": "Contracted volume",
    "contracted_volume_type": "Volume type",
    "domain_name": "QRadar tenant",
    "domain_id": "Domain ID",
    "account_name": "ITSM tenant",
    "account_id": "Account ID",
    "incident_id": "Incident",
    "short_id": "Alert",
    "published_time": "Published",
    "type_name": "Type",
    "sending_ip": "Sending IP",
    "tlp": "TLP",
    "TTA": "Acknowledge",
    "TTN": "Notify",
    "TTDN": "Resolve",
    "met": "Met",
    "breached": "Breached",
    "pending": "Pending",
    "no_sla": "No SLA",
    "overdue": "Overdue",
}
ACRONYMS = {"eps": "EPS", "sla": "SLA", "id": "ID", "ip": "IP", "tlp": "TLP", "gb": "GB", "itsm": "ITSM"}
UNITS = {"minutes": "minutes", "hours": "hours", "pct": "%", "seconds": "seconds"}


def human(key: str) -> str:
    """``mtta_minutes`` -> "Mean time to acknowledge (minutes)", ``tickets.open`` -> "Tickets: open"."""
    if key in LABELS:
        return LABELS[key]
    if "." in key:
        head, _, tail = key.rpartition(".")
        return f"{human(head)}: {human(tail).lower() if tail not in LABELS else human(tail)}"
    words = [w for w in key.replace("-", "_").split("_") if w]
    unit = UNITS.get(words[-1]) if len(words) > 1 else None
    if unit:
        words = words[:-1]
    text = " ".join(ACRONYMS.get(w.lower(), w) for w in words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


@dataclass
class Chart:
    """Categories on the x axis; one or more named series of numbers; an optional reference line."""

    kind: Literal["bar", "line"]
    labels: list[str]
    series: list[tuple[str, list[float]]]
    unit: str = ""
    reference: tuple[str, float] | None = None
    maximum: float | None = None
    colours: list[tuple[int, int, int]] | None = None


@dataclass
class Section:
    heading: str
    values: dict[str, Any] | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    chart: Chart | None = None


def latin1(value: Any, width: int = 60) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, float):
        value = f"{value:,.2f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    text = str(value).replace("\n", " ").replace("\x00", "")
    if len(text) > width:
        text = text[: width - 1] + "~"
    return text.encode("latin-1", "replace").decode("latin-1")


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def _value(key: str, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith(("pct", "%")):
        return f"{value:.1f} %"
    return latin1(value)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _document(title: str, company: str | None) -> Any:
    from fpdf import FPDF

    class ReportPdf(FPDF):
        def header(self) -> None:
            if self.page_no() == 1:
                return
            self.set_font("Helvetica", "B", 9)
            self.set_text_color(*ACCENT)
            self.cell(0, 6, latin1(f"{title} - {company or '-'}"), new_x="LMARGIN", new_y="NEXT")
            self.set_draw_color(*GRID)
            self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
            self.ln(3)
            self.set_text_color(*INK)

        def footer(self) -> None:
            self.set_y(-10)
            self.set_font("Helvetica", "", 8)
            self.set_text_color(*MUTED)
            self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")
            self.set_text_color(*INK)

    pdf = ReportPdf(orientation="L", format="A4")
    pdf.set_auto_page_break(auto=True, margin=14)
    pdf.set_title(latin1(title))
    pdf.set_author("SOC Portal")
    return pdf


def _cover(
    pdf: Any, title: str, company: str | None, start: datetime, end: datetime, sections: list[Section]
) -> None:
    pdf.add_page()
    pdf.set_fill_color(*ACCENT)
    pdf.rect(0, 0, pdf.w, 70, style="F")
    pdf.set_text_color(255, 255, 255)
    pdf.set_xy(20, 18)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "SOC PORTAL - MANAGED SECURITY OPERATIONS", new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(20)
    pdf.set_font("Helvetica", "B", 30)
    pdf.cell(0, 18, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(20)
    pdf.set_font("Helvetica", "", 16)
    pdf.cell(0, 10, latin1(company or "All companies"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*INK)
    pdf.set_xy(20, 85)
    facts = [
        ("Company", company or "All companies"),
        ("Period", f"{start:%d %b %Y %H:%M} to {end:%d %b %Y %H:%M} UTC"),
        ("Generated at", f"{datetime.now(UTC):%d %b %Y %H:%M} UTC"),
    ]
    for label, text in facts:
        pdf.set_x(20)
        pdf.set_font("Helvetica", "B", 11)
        pdf.set_text_color(*MUTED)
        pdf.cell(40, 8, label)
        pdf.set_font("Helvetica", "", 11)
        pdf.set_text_color(*INK)
        pdf.cell(0, 8, latin1(text, 120), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_x(20)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Contents", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for n, section in enumerate(sections, 1):
        pdf.set_x(24)
        pdf.cell(0, 6, latin1(f"{n}. {section.heading}", 100), new_x="LMARGIN", new_y="NEXT")


def _chart(pdf: Any, chart: Chart) -> None:
    height, width = 62.0, 200.0
    if pdf.get_y() + height + 18 > pdf.h - pdf.b_margin:
        pdf.add_page()
    x0, y0 = pdf.l_margin + 16, pdf.get_y() + 6
    values = [v for _, vs in chart.series for v in vs]
    top = chart.maximum or _nice_max(max([*values, chart.reference[1] if chart.reference else 0, 0]))
    pdf.set_font("Helvetica", "", 7)
    pdf.set_draw_color(*GRID)
    pdf.set_text_color(*MUTED)
    for i in range(5):
        y = y0 + height - height * i / 4
        pdf.line(x0, y, x0 + width, y)
        pdf.set_xy(x0 - 16, y - 2)
        pdf.cell(14, 4, latin1(f"{top * i / 4:,.0f}{chart.unit}"), align="R")
    n = max(1, len(chart.labels))
    slot = width / n
    if chart.kind == "bar":
        group = slot * 0.7
        bar = group / max(1, len(chart.series))
        for s, (_name, series) in enumerate(chart.series):
            for i, v in enumerate(series):
                colour = (
                    (chart.colours or [])[i]
                    if chart.colours and len(chart.series) == 1
                    else PALETTE[s % len(PALETTE)]
                )
                h = height * min(v, top) / top
                x = x0 + slot * i + (slot - group) / 2 + bar * s
                pdf.set_fill_color(*colour)
                pdf.rect(x, y0 + height - h, bar * 0.92, h, style="F")
                pdf.set_text_color(*INK)
                pdf.set_xy(x - 2, y0 + height - h - 4)
                pdf.cell(bar + 4, 4, latin1(f"{v:,.1f}".removesuffix(".0") + chart.unit), align="C")
    else:
        for s, (_name, series) in enumerate(chart.series):
            pdf.set_draw_color(*PALETTE[s % len(PALETTE)])
            pdf.set_line_width(0.6)
            points = [
                (x0 + slot * i + slot / 2, y0 + height - height * min(v, top) / top)
                for i, v in enumerate(series)
            ]
            for a, b in zip(points, points[1:], strict=False):
                pdf.line(*a, *b)
            for x, y in points if len(points) <= 40 else []:
                pdf.set_fill_color(*PALETTE[s % len(PALETTE)])
                pdf.ellipse(x - 0.8, y - 0.8, 1.6, 1.6, style="F")
        pdf.set_line_width(0.2)
    if chart.reference:
        label, value = chart.reference
        y = y0 + height - height * min(value, top) / top
        pdf.set_draw_color(220, 38, 38)
        pdf.set_dash_pattern(dash=2, gap=1.5)
        pdf.line(x0, y, x0 + width, y)
        pdf.set_dash_pattern()
        pdf.set_text_color(220, 38, 38)
        pdf.set_xy(x0 + width + 2, y - 2)
        pdf.cell(40, 4, latin1(f"{label}: {value:,.0f}{chart.unit}"))
    pdf.set_text_color(*MUTED)
    every = max(1, n // 15)
    for i, label in enumerate(chart.labels):
        if i % every:
            continue
        pdf.set_xy(x0 + slot * i, y0 + height + 1)
        pdf.cell(slot * every, 4, latin1(label, 14), align="C")
    # Legend
    pdf.set_xy(x0, y0 + height + 6)
    for s, (name, _series) in enumerate(chart.series):
        if len(chart.series) == 1 and chart.colours:
            break
        pdf.set_fill_color(*PALETTE[s % len(PALETTE)])
        pdf.rect(pdf.get_x(), pdf.get_y() + 1, 3, 3, style="F")
        pdf.set_x(pdf.get_x() + 4)
        pdf.cell(pdf.get_string_width(latin1(name)) + 6, 5, latin1(name))
    pdf.set_text_color(*INK)
    pdf.set_xy(pdf.l_margin, y0 + height + 13)


def render_pdf(
    title: str, company: str | None, start: datetime, end: datetime, sections: list[Section]
) -> bytes:
    from fpdf.fonts import FontFace

    pdf = _document(title, company)
    _cover(pdf, title, company, start, end, sections)
    pdf.add_page()
    for n, section in enumerate(sections, 1):
        if pdf.get_y() > pdf.h - 50:
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 13)
        pdf.set_text_color(*ACCENT)
        pdf.cell(0, 8, latin1(f"{n}. {section.heading}", 120), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(*INK)
        pdf.set_font("Helvetica", "", 9)
        pdf.set_draw_color(*GRID)
        pdf.set_fill_color(255, 255, 255)
        style = {
            "cell_fill_color": STRIPE,
            "cell_fill_mode": "ROWS",
            "borders_layout": "HORIZONTAL_LINES",
            "line_height": 5.5,
        }
        if section.values is not None:
            rows = [[latin1(human(k), 60), _value(k, v)] for k, v in flat(section.values).items()] or [
                ["-", "-"]
            ]
            with pdf.table(
                col_widths=(80, 60), width=140, align="LEFT", first_row_as_headings=False
            ) as table:
                for cells in rows:
                    table.row(cells)
        elif section.rows:
            width = max(30, int(270 / max(1, len(section.columns))) // 2 * 2)
            with pdf.table(
                width=min(270, width * len(section.columns)),
                align="LEFT",
                headings_style=FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=ACCENT),
                **style,
            ) as table:
                table.row([latin1(human(c), 30) for c in section.columns])
                for row in section.rows:
                    table.row(
                        [
                            _value(c, row.get(c)) if c not in ("name", "title") else latin1(row.get(c), 48)
                            for c in section.columns
                        ]
                    )
        else:
            pdf.cell(0, 6, "No data for this period.", new_x="LMARGIN", new_y="NEXT")
        if section.chart and any(v for _, vs in section.chart.series for v in vs):
            _chart(pdf, section.chart)
    return bytes(pdf.output())
