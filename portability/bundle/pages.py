"""The frame every HTML page of a patient's copy shares: escaping, head, CSP, stylesheet.

Every value that comes from DICOM or the site's settings goes through :func:`e`
(``html.escape``): names can contain markup, e.g. ``<script>alert(1)</script>^Eve``. Pages carry a
Content-Security-Policy that allows only files of the copy itself (no script at all), link the
one stylesheet ``IHE_PDI/STYLE.CSS`` and never put the patient's name or ID in the title.
"""
from __future__ import annotations

import html
from importlib import resources

STYLESHEET = "IHE_PDI/STYLE.CSS"
CSP = "default-src 'none'; img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'"


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def series_caption(t, series: dict) -> str:
    """``CT series 2: Thorax`` (or ``CT series 2`` without a description)."""
    fields = dict(modality=series.get("Modality") or "?", number=series.get("SeriesNumber") or "?")
    if series.get("SeriesDescription"):
        return t("index.series.caption", description=series["SeriesDescription"], **fields)
    return t("index.series.caption_plain", **fields)


def stylesheet() -> bytes:
    return resources.files(__package__).joinpath("static/style.css").read_bytes()


def page(t, title: str, main: str, *, base: str, home: bool = True, nav: str = "") -> str:
    """A whole page in ``t``'s language. ``base`` leads from the page to the root of the copy."""
    back = (f'<header><p><a href="{base}INDEX.HTM" accesskey="h">{e(t("viewer.home"))}</a></p>{nav}</header>'
            if home else (f"<header>{nav}</header>" if nav else ""))
    return "\n".join([
        "<!DOCTYPE html>",
        f'<html lang="{e(t.lang)}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f'<link rel="stylesheet" href="{base}{STYLESHEET}"></head><body>',
        back, f"<main>{main}</main>", "</body></html>", ""])
