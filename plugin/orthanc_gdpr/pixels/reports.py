"""Report-bearing objects: instances whose content is a report rather than an image.

SR, KO with text, presentation states with text, encapsulated documents (PDF, CDA, ...) and
document-like captures (scanned documents, dose screens, screen saves) carry names, dates and
findings in their content. They are dropped by default, or cleaned by the header engine when
``clean-structured-content`` is on.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
PRESENTATION_STATE_PREFIX = "1.2.840.10008.5.1.4.1.1.11."
ENCAPSULATED_DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
#: Conversion Types of captures that are documents: scanned document and drawing. Workstation
#: captures (WSD: screenshots, 3D renderings, key images) are images; burned-in text on them is
#: Clean Pixel Data's job (secondary captures are always read by OCR).
DOCUMENT_CONVERSIONS = frozenset({"SD", "DRW"})
#: Image Type values and series-description words of dose screens and screen saves.
DOCUMENT_IMAGE_TYPES = frozenset({"SCREEN SAVE", "DOSE_INFO", "DOSE REPORT", "REPORT"})
DOCUMENT_DESCRIPTIONS = ("DOSE REPORT", "DOSE INFO", "PATIENT PROTOCOL", "SCREEN SAVE", "REPORT")


def _has_text_item(items) -> bool:
    for item in items or ():
        if item.get("ValueType") in ("TEXT", "PNAME", "DATE", "DATETIME") or _has_text_item(item.get("ContentSequence")):
            return True
    return False


def _pr_has_text(ds: Dataset) -> bool:
    return any(a.get("TextObjectSequence") for a in ds.get("GraphicAnnotationSequence", []))


def is_report_bearing(ds: Dataset) -> str | None:
    """Why ``ds`` bears a report (a short reason), or None for an ordinary image."""
    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "")).upper()
    if sop == KEY_OBJECT_SELECTION or modality == "KO":
        return "key object selection with text" if _has_text_item(ds.get("ContentSequence")) else None
    if sop.startswith(SR_PREFIX) or modality == "SR":
        return "structured report"
    if sop.startswith(ENCAPSULATED_DOCUMENT_PREFIX) or modality == "DOC" or "EncapsulatedDocument" in ds:
        return "encapsulated document"
    if sop.startswith(PRESENTATION_STATE_PREFIX) or modality == "PR":
        return "presentation state with text" if _pr_has_text(ds) else None
    if sop.startswith(SECONDARY_CAPTURE_PREFIX) or modality in ("OT", "SC"):
        if str(ds.get("ConversionType", "")).upper() in DOCUMENT_CONVERSIONS:
            return f"document-like capture (conversion type {ds.ConversionType})"
    image_type = {str(v).upper() for v in (ds.get("ImageType") or [])}
    if image_type & DOCUMENT_IMAGE_TYPES:
        return "document-like capture (image type)"
    description = str(ds.get("SeriesDescription", "")).upper()
    if any(word in description for word in DOCUMENT_DESCRIPTIONS):
        return "document-like capture (series description)"
    return None
