"""The Art. 15 notice of a patient's copy: purposes, recipients, retention, source, rights.

What the site declares (:class:`SiteNotice`, from the service settings), what the audit store
recorded (:class:`~portability.disclosures.Disclosure`) and what the images say about where they
come from (:class:`Source`) are turned into rows of translated text (:func:`rows`), which
:mod:`.html` lays out as INDEX.HTM sections and README.TXT paragraphs. Codes (purposes, lawful
bases) become catalog texts; site values and DICOM values are shown as given (and escaped by the
HTML writer).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..disclosures import BUNDLE, DOWNLOAD, Disclosure

#: the rights of Chapter III a patient can exercise here, in the order the notice lists them
RIGHTS = ("access", "rectification", "erasure", "restriction", "objection", "portability", "consent")


@dataclass(frozen=True)
class SiteNotice:
    """What the site declares; see :mod:`portability.settings` for the environment variables."""
    controller: str
    languages: tuple[str, ...] = ("en", "de")
    purposes: tuple[tuple[str, str], ...] = (("care", "care"),)
    retention_years: int | None = None
    retention_law: str | None = None
    authority: str | None = None
    authority_contact: str | None = None
    rights_contact: str | None = None
    recipient_names: Mapping[str, str] = field(default_factory=dict)
    user_organisations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings, language: str | None = None) -> "SiteNotice":
        """The site's notice; a patient's preferred ``language`` goes first."""
        langs = tuple(dict.fromkeys(((language,) if language else ()) + tuple(settings.bundle_languages)))
        return cls(controller=settings.issuer, languages=langs, purposes=tuple(settings.site_purposes),
                   retention_years=settings.retention_years, retention_law=settings.retention_law,
                   authority=settings.supervisory_authority,
                   authority_contact=settings.supervisory_authority_contact,
                   rights_contact=settings.rights_contact, recipient_names=dict(settings.recipient_names),
                   user_organisations=dict(settings.user_organisations))


@dataclass(frozen=True)
class Source:
    """Where one series comes from, as its images and Orthanc's reception record it."""
    modality: str | None
    date: str | None  # DICOM DA
    device: tuple[str, ...]  # manufacturer and model, station, institution (those present)
    sender: str | None  # the AE title that sent it to Orthanc (RemoteAET)


@dataclass(frozen=True)
class Art15:
    site: SiteNotice
    disclosures: list[Disclosure] | None  # None: built without access to the audit store
    sources: list[Source]


def _dicom_date(da: str | None):
    from datetime import date

    if da and len(da) >= 8 and da[:8].isdigit():
        try:
            return date(int(da[:4]), int(da[4:6]), int(da[6:8]))
        except ValueError:
            return None
    return None


def purpose_text(t, code: str | None) -> str:
    if code and t.has(f"purpose.{code}"):
        return t(f"purpose.{code}")
    return t("purpose.other", code=code or "?")


def basis_text(t, code: str | None) -> str:
    return t(f"basis.{code}") if code and t.has(f"basis.{code}") else t("basis.unknown")


def recipient_text(t, site: SiteNotice, d: Disclosure) -> str:
    if d.kind == BUNDLE:
        return t("recipient.you")
    if d.kind == DOWNLOAD:
        return t("recipient.staff", organisation=site.user_organisations.get(d.recipient, site.controller))
    return site.recipient_names.get(d.recipient) or d.recipient.partition(":")[2] or d.recipient


@dataclass(frozen=True)
class Rows:
    """The notice in one language, as plain strings (not yet escaped)."""
    purposes: list[tuple[str, str, str]]  # purpose, basis, why listed
    recipients: list[tuple[str, str, str, str, str]] | None  # date, recipient, purpose, basis, form
    any_deidentified: bool
    retention: list[str]
    sources: list[str]
    rights: list[str]
    how: str
    authority: list[str]


def rows(t, notice: Art15) -> Rows:
    site = notice.site
    site_basis = dict(site.purposes)
    purposes: dict[tuple[str, str], str] = {}
    for purpose, basis in site.purposes:
        purposes.setdefault((purpose, basis), t("art15.purposes.origin.site"))
    recipients = None
    if notice.disclosures is not None:
        recipients = []
        for d in notice.disclosures:
            basis = d.lawful_basis or site_basis.get(d.purpose or "")
            if d.kind != BUNDLE:
                purposes[(d.purpose or "", basis or "")] = t("art15.purposes.origin.ran")
            form = t("form.identified") if d.identified else t("form.deidentified", profile=d.profile)
            recipients.append((t.date(d.at), recipient_text(t, site, d), purpose_text(t, d.purpose),
                               basis_text(t, basis), form))
    if site.retention_years is not None:
        retention = [t("art15.retention.years", years=site.retention_years)]
        if site.retention_law:
            retention.append(t("art15.retention.law", law=site.retention_law))
    else:
        retention = [t("art15.retention.ask")]
    sources = []
    for src in notice.sources:
        device = ", ".join(src.device) or t("art15.source.unknown")
        line = t("art15.source.item", modality=src.modality or "?", date=t.date(_dicom_date(src.date)), device=device)
        if src.sender:
            line += "; " + t("art15.source.sender", aet=src.sender)
        sources.append(line)
    authority = [t("art15.authority.text"), ", ".join(filter(None, (site.authority, site.authority_contact)))] \
        if site.authority else [t("art15.authority.unknown")]
    return Rows(
        purposes=[(purpose_text(t, p), basis_text(t, b), why) for (p, b), why in purposes.items()],
        recipients=recipients,
        any_deidentified=any(not d.identified for d in notice.disclosures or ()),
        retention=retention, sources=list(dict.fromkeys(sources)),
        rights=[t(f"rights.{r}") for r in RIGHTS],
        how=t("art15.rights.how", contact=site.rights_contact) if site.rights_contact else t("art15.rights.how_default"),
        authority=authority)
