"""INDEX.HTM and the language pages (for the patient, no scripts), and README.TXT.

INDEX.HTM is in the copy's first language; every other language has its own page
``IHE_PDI/<LANG>.HTM`` (e.g. ``IHE_PDI/DE.HTM``), linked from a language menu on each. Every text
comes from the ``bundle`` message catalogs (:mod:`portability.i18n`); every DICOM or site value is
escaped (:func:`.pages.e`).
"""
from __future__ import annotations

from .fhir import human_name
from .notice import Art15, rows
from .pages import e, page, series_caption
from .viewer import LABEL, SeriesViewer


def _date(da: str | None) -> str:
    return f"{da[:4]}-{da[4:6]}-{da[6:8]}" if da and len(da) >= 8 and da[:8].isdigit() else (da or "")


def language_page(lang: str, primary: str) -> str:
    """Where the page of ``lang`` lives in the copy."""
    return "INDEX.HTM" if lang == primary else f"IHE_PDI/{lang.upper()}.HTM"


def _lang_nav(t, translators, primary: str, base: str) -> str:
    if len(translators) < 2:
        return ""
    items = "".join(f'<li><a href="{base}{language_page(o.lang, primary)}" lang="{o.lang}" hreflang="{o.lang}">'
                    f"{e(o.name)}</a></li>" for o in translators if o.lang != t.lang)
    return f'<nav aria-label="{e(t("index.lang_nav"))}"><ul class="langs">{items}</ul></nav>'


def _notice_html(t, notice: Art15) -> list[str]:
    r = rows(t, notice)
    out = [f'<section aria-labelledby="art15"><h2 id="art15">{e(t("art15.title"))}</h2>',
           f"<p>{e(t('art15.intro'))}</p>", f"<p>{e(t('art15.controller', issuer=notice.site.controller))}</p>",
           f"<h3>{e(t('art15.purposes.title'))}</h3>", f"<p>{e(t('art15.purposes.intro'))}</p>",
           f"<table><caption>{e(t('art15.purposes.title'))}</caption><thead><tr>"
           + "".join(f'<th scope="col">{e(t(k))}</th>' for k in (
               "art15.purposes.col_purpose", "art15.purposes.col_basis", "art15.purposes.col_origin"))
           + "</tr></thead><tbody>"
           + "".join(f'<tr><th scope="row">{e(p)}</th><td>{e(b)}</td><td>{e(w)}</td></tr>' for p, b, w in r.purposes)
           + "</tbody></table>",
           f"<h3>{e(t('art15.recipients.title'))}</h3>", f"<p>{e(t('art15.recipients.intro'))}</p>"]
    if r.recipients is None:
        out.append(f"<p>{e(t('art15.recipients.unavailable'))}</p>")
    elif not r.recipients:
        out.append(f"<p>{e(t('art15.recipients.none'))}</p>")
    else:
        out.append(f"<table><caption>{e(t('art15.recipients.caption'))}</caption><thead><tr>"
                   + "".join(f'<th scope="col">{e(t(k))}</th>' for k in (
                       "art15.recipients.col_date", "art15.recipients.col_recipient", "art15.recipients.col_purpose",
                       "art15.recipients.col_basis", "art15.recipients.col_form"))
                   + "</tr></thead><tbody>"
                   + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in r.recipients)
                   + "</tbody></table>")
        if r.any_deidentified:
            out.append(f"<p>{e(t('art15.deidentified.explain'))}</p>")
    out += [f"<h3>{e(t('art15.retention.title'))}</h3>", *(f"<p>{e(x)}</p>" for x in r.retention),
            f"<h3>{e(t('art15.source.title'))}</h3>", f"<p>{e(t('art15.source.intro'))}</p>",
            "<ul>" + "".join(f"<li>{e(x)}</li>" for x in r.sources) + "</ul>",
            f"<h3>{e(t('art15.rights.title'))}</h3>", f"<p>{e(t('art15.rights.intro'))}</p>",
            "<ul>" + "".join(f"<li>{e(x)}</li>" for x in r.rights) + "</ul>",
            f"<p>{e(r.how)}</p>", f"<p>{e(t('art15.rights.deadline'))}</p>",
            f"<h3>{e(t('art15.authority.title'))}</h3>", *(f"<p>{e(x)}</p>" for x in r.authority),
            f"<h3>{e(t('art15.automated.title'))}</h3>", f"<p>{e(t('art15.automated.text'))}</p>", "</section>"]
    return out


def index_htm(t, translators, patient: dict, studies: list[dict], thumbs: dict[str, str],
              viewers: dict[str, SeriesViewer], notice: Art15, *, issued: str) -> str:
    """The overview in ``t``'s language. ``thumbs``/``viewers``: SeriesInstanceUID -> thumbnail
    path / the series' viewer. ``translators``: every language of the copy, the first is INDEX.HTM."""
    primary = translators[0].lang
    base = "" if t.lang == primary else "../"
    name = human_name(patient.get("PatientName") or "")["text"]
    facts = [("index.patient", name), ("index.patient_id", patient.get("PatientID")),
             ("index.birth_date", _date(patient.get("PatientBirthDate"))),
             ("index.issued_by", notice.site.controller), ("index.date", issued)]
    main = [f'<h1>{e(t("index.title"))}</h1>',
            f"<table><caption>{e(t('index.facts'))}</caption>"
            + "".join(f'<tr><th scope="row">{e(t(k))}</th><td>{e(v)}</td></tr>' for k, v in facts) + "</table>",
            f'<section class="note" aria-labelledby="what"><h2 id="what">{e(t("index.what.title"))}</h2>',
            *(f"<p>{e(t(k))}</p>" for k in ("index.what.copy", "index.what.viewer", "index.what.dicom",
                                             "index.what.fhir", "index.what.safe")),
            "</section>",
            f'<section aria-labelledby="images"><h2 id="images">{e(t("index.images.title"))}</h2>']
    for study in studies:
        n = sum(len(se["instances"]) for se in study["series"])
        heading = t("index.study.heading", date=_date(study.get("StudyDate")),
                    description=study.get("StudyDescription") or t("index.study.default"))
        main.append(f"<h3>{e(heading)} <small>({e(t('index.study.counts', series=len(study['series']), images=n))})"
                    "</small></h3>")
        for se in study["series"]:
            count = len(se["instances"])
            caption = series_caption(t, se)
            thumb = thumbs.get(se["SeriesInstanceUID"])
            alt = t("viewer.alt", modality=se.get("Modality") or "?",
                    body_part=se.get("BodyPartExamined") or t("viewer.body_part_unknown"),
                    number=se.get("SeriesNumber") or "?", n=count // 2 + 1, total=count, window=t("window.default"))
            img = f'<img src="{base}{e(thumb)}" alt="{e(alt)}">' if thumb else f"<p>{e(t('index.no_preview'))}</p>"
            viewer = viewers.get(se["SeriesInstanceUID"])
            if viewer and viewer.images:
                links = "".join(f'<li><a href="{base}{viewer.first_page(w)}">{e(t(LABEL[w]))}</a></li>'
                                for w in viewer.windows)
                view = f"<p>{e(t('index.series.view'))}</p><ul>{links}</ul>"
            else:
                view = f"<p>{e(t('index.no_viewer'))}</p>"
            main.append(f"<figure>{img}<figcaption>{e(caption)}<br>{e(t('index.series.images', images=count))}"
                        f"{view}</figcaption></figure>")
    main.append("</section>")
    main += _notice_html(t, notice)
    skip = f'<p><a class="skip" href="#images">{e(t("index.skip"))}</a></p>'
    return page(t, t("index.title"), "\n".join(main), base=base, home=t.lang != primary,
                nav=skip + _lang_nav(t, translators, primary, base))


def _wrap(text: str, indent: str = "  ") -> str:
    """A list item (``indent="  "``) or, with ``indent=""``, a plain paragraph, wrapped at 78."""
    import textwrap

    bullet = "* " if indent else ""
    return textwrap.fill(text, width=78, initial_indent=indent + bullet, subsequent_indent=indent + " " * len(bullet))


def readme_txt(translators, patient: dict, studies: list[dict], notice: Art15, *, issued: str,
               viewer: bool) -> str:
    """README.TXT: every language of the copy, one after the other, plain UTF-8 text."""
    n = sum(len(se["instances"]) for s in studies for se in s["series"])
    out = []
    for t in translators:
        r = rows(t, notice)
        title = t("readme.title")
        out += [title, "=" * len(title), "",
                f"{t('index.patient_id')}: {patient.get('PatientID')}",
                f"{t('index.issued_by')}: {notice.site.controller}",
                f"{t('index.date')}: {issued}",
                t("readme.content", studies=len(studies), images=n), "",
                t("readme.how"), "-" * len(t("readme.how"))]
        files = ["readme.index", "readme.dicomdir", "readme.fhir", "readme.sums"] + (["readme.viewer"] if viewer else [])
        out += [_wrap(t(k)) for k in files] + ["", _wrap(t("index.what.safe"), ""), ""]
        out += [t("art15.title").upper(), "-" * len(t("art15.title")), _wrap(t("art15.intro"), ""),
                _wrap(t("art15.controller", issuer=notice.site.controller), ""), "",
                t("art15.purposes.title") + ":"]
        out += [_wrap(f"{p}: {b} ({w})") for p, b, w in r.purposes]
        out += ["", t("art15.recipients.title") + ":"]
        if r.recipients is None:
            out.append(_wrap(t("art15.recipients.unavailable")))
        elif not r.recipients:
            out.append(_wrap(t("art15.recipients.none")))
        else:
            out += [_wrap(" | ".join(row)) for row in r.recipients]
            if r.any_deidentified:
                out.append(_wrap(t("art15.deidentified.explain"), ""))
        out += ["", t("art15.retention.title") + ":", *(_wrap(x) for x in r.retention),
                "", t("art15.source.title") + ":", *(_wrap(x) for x in r.sources),
                "", t("art15.rights.title") + ":", *(_wrap(x) for x in r.rights), _wrap(r.how), _wrap(t("art15.rights.deadline")),
                "", t("art15.authority.title") + ":", *(_wrap(x) for x in r.authority),
                "", t("art15.automated.title") + ":", _wrap(t("art15.automated.text")), "", ""]
    return "\n".join(out)


FHIR_README = """FHIR manifest of this copy
==========================

R5.JSON   FHIR R5 collection Bundle (HL7 Europe Imaging Study Manifest shape)
R4B.JSON  the same content in FHIR R4B

Resources: Patient; one ImagingStudy per study (identifier system urn:dicom:uid, value
urn:oid:<StudyInstanceUID>; series with uid, modality, number of instances, body site where
known; instances with uid and sopClass); Endpoint; Organization (the issuer); Provenance.

The Endpoint of an offline copy: there is no DICOMweb server. Endpoint.address is the relative
URL "../DICOMDIR" (the DICOMDIR at the root of this copy), Endpoint.connectionType is
urn:ietf:rfc:3986 | urn:oid:1.2.840.10008.1.3.10 (the DICOM Media Storage Directory SOP Class),
and the payload is application/dicom. Resolve each instance by its SOP Instance UID through the
DICOMDIR, or import the whole File-set.
"""
