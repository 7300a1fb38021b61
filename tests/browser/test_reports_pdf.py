"""The PDF reports as a customer downloads them from the console: a cover, human labels, charts,
and the same numbers as the API's JSON report (pages rendered with pdftoppm, text with pdftotext)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import ARTEFACTS, Api

pytestmark = [
    pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils is not installed"),
    pytest.mark.timeout(900),  # the first test to use the stack waits for it to start
]


def coloured_share(png: Path) -> float:
    """The share of pixels that are neither white nor grey: bars, lines and headings."""
    from PIL import Image

    image = Image.open(png).convert("RGB")
    pixels = (
        list(image.get_flattened_data()) if hasattr(image, "get_flattened_data") else list(image.getdata())
    )
    return sum(1 for r, g, b in pixels if max(r, g, b) - min(r, g, b) > 60) / len(pixels)


def test_consolidated_pdf_has_a_cover_labels_charts_and_the_apis_numbers(
    console: Any, api: Api, tmp_path: Path
) -> None:
    user = console("acme.user")
    page = user.open("/reports")
    page.get_by_role("combobox", name="Report", exact=True).select_option("consolidated")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download PDF").click()
    pdf = tmp_path / "consolidated.pdf"
    info.value.save_as(pdf)
    page.get_by_role("status").filter(has_text="has been downloaded").wait_for()
    shutil.copy(pdf, ARTEFACTS / "consolidated-report-acme.pdf")

    report = api.get("acme.user", "/tenant/reports/consolidated/")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 4
    for png in pages:
        shutil.copy(png, ARTEFACTS / f"consolidated-report-{png.name}")
    # The cover is mostly its colour band; chart pages carry coloured bars and lines.
    assert coloured_share(pages[0]) > 0.15
    assert sum(1 for png in pages[1:] if coloured_share(png) > 0.02) >= 2

    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    cover = text.stdout.split("\f")[0]
    assert "Consolidated report" in cover and "Acme Corp" in cover
    assert "Period" in cover and "Generated at" in cover and "Contents" in cover
    body = text.stdout
    # Human labels, never the API's keys.
    assert "compliance_pct" not in body and "critical_open" not in body and "mtta" not in body.lower()
    assert "Compliance (%)" in body
    # The same numbers as the API.
    incidents = report["incidents"]["summary"]
    lines = [" ".join(line.split()) for line in body.splitlines()]
    assert f"Total {incidents['total']:,}" in lines
    assert f"Critical open {incidents['critical_open']:,}" in lines
    for priority, figures in report["incidents"]["sla"]["by_priority"].items():
        overall, pct = figures["overall"], figures["overall"]["compliance_pct"]
        row = (
            f"{priority} {figures['counted']:,} {overall['fully_compliant']:,} "
            f"{overall['partially_compliant']:,} {overall['non_compliant']:,}"
        )
        assert any(line.startswith(row) for line in lines), row
        if pct is not None:
            assert any(line.startswith(row) and f"{pct:.1f} %" in line for line in lines), (row, pct)
    for severity, count in report["offenses"]["open_by_severity"].items():
        assert f"{severity} {count:,}" in lines
