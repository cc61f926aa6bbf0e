"""The review of one study under one profile: the data behind the page and its JSON twin.

The first view de-identifies only what it shows: the chosen instance (tag table) and one
instance per series on the current series page (pictures, residual risk). The release check
(:mod:`portability.releases`) later de-identifies every instance to build the manifest.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

from orthanc_gdpr.deid import Profile
from orthanc_gdpr.pixels import TEXT_CHECKED_MODALITIES

from ..auth import Staff, has_role
from ..errors import NotFound, ServiceError
from ..orthanc import OrthancClient
from .engines import Engines
from .images import WINDOWS
from .inspection import InspectionCache, Inspected
from .search import SeriesInfo, StudyInfo, load_study
from .tags import SHOW, TagRow, filter_rows, tag_rows

ROWS_PER_PAGE = 200
SERIES_PER_PAGE = 8


class BadReviewRequest(ServiceError):
    status, code = 422, "bad-request"


def may_see_identified(staff: Staff) -> bool:
    return has_role(staff, "reviewer")


@dataclass
class ReviewParams:
    profile: str
    instance: str | None = None  #: the instance of the tag table (default: first series' slice)
    show: str = "all"
    page: int = 1  #: tag table page
    series_page: int = 1
    focus: str | None = None  #: the series whose slice/window the person chose
    slice: int | None = None  #: 1-based position in the focus series
    window: str = "default"

    def check(self) -> None:
        problems = []
        if self.show not in SHOW:
            problems.append(f"show: choose one of {', '.join(SHOW)}")
        if self.window not in WINDOWS:
            problems.append(f"window: choose one of {', '.join(WINDOWS)}")
        if self.page < 1 or self.series_page < 1 or (self.slice is not None and self.slice < 1):
            problems.append("page, series_page and slice count from 1")
        if problems:
            raise BadReviewRequest("; ".join(problems))


@dataclass
class SeriesView:
    info: SeriesInfo
    positions: int  #: instances, or frames of a single multi-frame instance
    position: int  #: 1-based
    instance: str
    frame: int  #: 0-based
    window: str
    inspected: Inspected
    before_url: str = ""
    after_url: str = ""
    has_pixels: bool = True

    @property
    def masked_boxes(self) -> list:
        report = self.inspected.report
        return list((report.pixels or {}).get("boxes", [])) if report is not None else []


@dataclass
class Review:
    study: StudyInfo
    profile: Profile
    params: ReviewParams
    key_fingerprint: str
    identified: bool  #: the viewer may see identified data
    instance: Inspected
    rows: list[TagRow]  #: this page of the filtered rows
    row_total: int
    row_counts: dict[str, int]
    series: list[SeriesView]
    series_pages: int
    residual: dict[str, list[str]] = field(default_factory=dict)

    @property
    def first_row(self) -> int:
        """1-based number of this page's first tag row (0 when the table is empty)."""
        return (self.params.page - 1) * ROWS_PER_PAGE + 1 if self.row_total else 0

    @property
    def row_pages(self) -> int:
        return max(1, -(-self.row_total // ROWS_PER_PAGE))

    def link(self, base: str, **changes) -> str:
        """This review's URL with some parameters changed (no identifiers in it)."""
        p = self.params
        values = {"profile": p.profile, "instance": p.instance, "show": p.show, "page": p.page,
                  "series_page": p.series_page, "focus": p.focus, "slice": p.slice, "window": p.window}
        values.update(changes)
        defaults = {"show": "all", "page": 1, "series_page": 1, "window": "default"}
        query = {k: v for k, v in values.items() if v is not None and defaults.get(k) != v}
        return f"{base}?{urlencode(query)}"

    def to_json(self) -> dict:
        s = self.study
        return {
            "study": {"id": s.id, "instances": s.instance_count, "series": len(s.series),
                      **({"patient_name": s.patient_name, "patient_id": s.patient_id, "accession": s.accession,
                          "study_date": s.study_date, "description": s.description} if self.identified else {})},
            "profile": {"name": self.profile.name, "description": self.profile.description,
                        "options": [{"option": o.cli, "purpose": self.profile.purposes.get(o.cli, "")}
                                    for o in self.profile.options]},
            "key_fingerprint": self.key_fingerprint,
            "identified_data_shown": self.identified,
            "instance": {"id": self.instance.instance, "outcome": self.instance.outcome, "reason": self.instance.reason},
            "tags": {"show": self.params.show, "page": self.params.page, "pages": self.row_pages,
                     "total": self.row_total, "counts": self.row_counts,
                     "rows": [r.to_dict() for r in self.rows]},
            "residual_risk": self.residual,
            "series": [{"id": v.info.id, "number": v.info.number, "modality": v.info.modality,
                        "description": v.info.description if self.identified else None,
                        "instances": len(v.info.instances), "positions": v.positions, "position": v.position,
                        "instance": v.instance, "frame": v.frame, "outcome": v.inspected.outcome,
                        "masked_boxes": v.masked_boxes,
                        "images": {"before": v.before_url if self.identified else None, "after": v.after_url}}
                       for v in self.series],
            "series_page": self.params.series_page, "series_pages": self.series_pages,
        }


def _positions(info: SeriesInfo) -> list[tuple[str, int]]:
    if len(info.instances) == 1:
        only = info.instances[0]
        return [(only, f) for f in range(info.frames.get(only, 1))]
    return [(i, 0) for i in info.instances]


def _residual(profile: Profile, inspected: list[Inspected]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for item in inspected:
        if item.report is None:
            out.setdefault("held back or dropped (not sent)", set()).add(item.reason)
            continue
        for category, attributes in item.report.residual.items():
            out.setdefault(category, set()).update(attributes)
        pixels = item.report.pixels
        modality = str(item.original.get("Modality", "")).upper()
        if pixels is not None:
            found = f"{len(pixels.get('boxes', []))} region(s) masked by {', '.join(pixels.get('methods', [])) or 'no method'}"
            out.setdefault("burned-in text (Clean Pixel Data)", set()).add(f"{modality}: {found}")
        elif modality in TEXT_CHECKED_MODALITIES or str(item.original.get("BurnedInAnnotation", "")).upper() == "YES":
            out.setdefault("burned-in text (not cleaned by this profile)", set()).add(
                f"{modality}: pixels are sent as stored; check the pictures for text")
    return {k: sorted(v) for k, v in sorted(out.items())}


def build_review(client: OrthancClient, engines: Engines, cache: InspectionCache, study_id: str,
                 params: ReviewParams, staff: Staff, image_base: str) -> Review:
    params.check()
    profile = engines.profile(params.profile)
    engine = engines.engine(params.profile)
    study = load_study(client, study_id)
    if not study.series or not study.instance_count:
        raise NotFound("the study has no instances to review")
    pages = max(1, -(-len(study.series) // SERIES_PER_PAGE))
    if params.series_page > pages:
        raise BadReviewRequest(f"series_page: this study has {pages} page(s) of series")
    shown = study.series[(params.series_page - 1) * SERIES_PER_PAGE:params.series_page * SERIES_PER_PAGE]
    chosen_positions = []
    for info in shown:
        positions = _positions(info)
        position = len(positions) // 2 + 1
        window = "default"
        if info.id == params.focus:
            position = min(params.slice or position, len(positions))
            window = params.window
        chosen_positions.append((info, positions, position, window))
    # Fetch and de-identify one image per series side by side (Orthanc answers while we parse).
    with ThreadPoolExecutor(min(4, len(chosen_positions))) as pool:
        inspections = list(pool.map(lambda c: cache.get(client, engine, c[1][c[2] - 1][0]), chosen_positions))
    views = []
    for (info, positions, position, window), inspected in zip(chosen_positions, inspections):
        instance, frame = positions[position - 1]
        view = SeriesView(info=info, positions=len(positions), position=position, instance=instance, frame=frame,
                          window=window, inspected=inspected, has_pixels="PixelData" in inspected.original)
        query = urlencode({"profile": profile.name, "frame": frame, "window": window})
        view.before_url = f"{image_base}/{instance}?side=before&{query}"
        view.after_url = f"{image_base}/{instance}?side=after&{query}"
        views.append(view)
    if params.instance is None:
        params.instance = views[0].instance
    elif params.instance not in set(study.all_instances()):
        raise NotFound("instance: not an instance of this study")
    chosen = next((v.inspected for v in views if v.instance == params.instance), None) \
        or cache.get(client, engine, params.instance)
    identified = may_see_identified(staff)
    rows = tag_rows(chosen, profile)
    counts = {show: len(filter_rows(rows, show)) for show in SHOW}
    filtered = filter_rows(rows, params.show)
    if params.page > max(1, -(-len(filtered) // ROWS_PER_PAGE)):
        raise BadReviewRequest("page: past the last page of the tag table")
    page_rows = filtered[(params.page - 1) * ROWS_PER_PAGE:params.page * ROWS_PER_PAGE]
    if not identified:
        for row in page_rows:
            row.original = None
    return Review(study=study, profile=profile, params=params, key_fingerprint=engines.key_fingerprint,
                  identified=identified, instance=chosen, rows=page_rows, row_total=len(filtered),
                  row_counts=counts, series=views, series_pages=pages,
                  residual=_residual(profile, [chosen] + [v.inspected for v in views]))
