"""Applies a profile to one DICOM instance, at every sequence depth.

Plain Python and pydicom: this module never imports ``orthanc``. The walk is iterative with a
depth bound, so hostile nesting is refused with an error instead of exhausting the stack.
"""

from __future__ import annotations

import base64
import copy
from functools import lru_cache
from pathlib import Path

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from .. import __version__, pixels, standard
from . import endian, options as opts
from .cleaning import IDENTIFYING_KEYWORDS, Identifiers, clean_text, tidy
from .dates import DateShifter, shifted_value
from .pixel_policy import is_head_volume, report_policy
from .keys import Keyring
from .profile import Profile
from .pseudonyms import Pseudonymizer
from .removed import Removal, RemovedValues
from .report import InstanceReport
from .table import Rule, SafePrivate
from .uids import UidMapper

MAX_SEQUENCE_DEPTH = 64
#: Text VRs the safety net reads in everything kept, coded values (CS), AE titles and URLs
#: included: the patient's own identifiers and the values the profile removed must not hide there.
SCANNED_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN", "CS", "AE", "UR"})
#: Removed values of these VRs are hunted in what is kept (names: as the patient's identifiers).
REMOVED_TEXT_VRS = SCANNED_VRS - {"PN"}
#: Character sets whose raw bytes read as Latin-1 are the text itself: the net matches them raw.
SINGLE_BYTE_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100"})
BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
PATIENT_ID, PATIENT_NAME = 0x00100020, 0x00100010
SOP_INSTANCE_UID = 0x00080018
PSEUDONYM_RULE = "keyed pseudonym"
#: ImplementationClassUID of files we write: 2.25 form of a fixed UUID for orthanc-gdpr.
IMPLEMENTATION_CLASS_UID = "2.25.183845117427318062880937419733587614123"
IMPLEMENTATION_VERSION_NAME = "ORTHANC_GDPR_" + __version__.replace(".", "")[:3]
#: File meta attributes that name the sending and receiving systems (AE titles, addresses).
FILE_META_IDENTIFYING = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028,
                         0x00020100, 0x00020102)


#: Tags whose values, wherever else they turn up, identify the patient (see cleaning.py).
IDENTIFYING_TAGS = frozenset(int(tag_for_keyword(k)) for k in IDENTIFYING_KEYWORDS)  # type: ignore[arg-type]
PATIENT_BIRTH_DATE = 0x00100030
#: Float Pixel Data, Double Float Pixel Data, Pixel Data: an instance with none is header-only.
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
HEADER_ONLY_NOTE = "header-only object: no Pixel Data, Float Pixel Data or Double Float Pixel Data"


class DeidentificationError(Exception):
    """An instance that cannot be de-identified. It is held back, never passed on half-cleaned."""


class InstanceDropped(DeidentificationError):
    """Left out by policy, not by failure: a report-bearing object the profile does not keep."""


@lru_cache(maxsize=4096)
def _label(tag: int) -> str:
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _vr(dataset: Dataset, tag: int) -> str:
    """The VR of an element, read without decoding its value when the file states it.

    Raw elements whose VR the file does not state (implicit VR) or states as UN are decoded,
    so the VR is the one pydicom resolves (dictionary, private dictionary, UN replacement).
    """
    elem = dataset.get_item(tag)
    vr = elem.VR
    if elem.is_raw and (vr is None or vr == "UN"):
        vr = dataset[tag].VR
    return vr


def _is_overlay_data(tag: int) -> bool:
    group = tag >> 16
    return 0x6000 <= group <= 0x601E and not group & 1 and tag & 0xFFFF == 0x3000


def _dummy(vr: str):
    value = standard.load("dummy_values.json").get(vr)
    if vr in BINARY_VRS and value is not None:
        return base64.b64decode(value)
    return value


def has_pixels(ds: Dataset) -> bool:
    return any(tag in ds for tag in PIXEL_TAGS)


def patient_identity(ds: Dataset) -> str:
    """Who the instance is about, as the key for pseudonyms and the date offset: the patient ID
    (with its issuer), else the name and birth date."""
    pid = str(ds.get("PatientID", "") or "")
    issuer = str(ds.get("IssuerOfPatientID", "") or "")
    name = str(ds.get("PatientName", "") or "")
    return f"id|{issuer}|{pid}" if pid else f"name|{name}|{ds.get('PatientBirthDate', '')}"


def is_identifier_source(tag: int, vr: str, rule: Rule | None) -> bool:
    """True for a top-level element whose value identifies the patient wherever else it turns
    up (names, IDs, the birth date) and that the profile does not keep."""
    if vr != "PN" and tag not in IDENTIFYING_TAGS and tag != PATIENT_BIRTH_DATE or vr == "SQ":
        return False
    return rule is None or rule.action != "K"


def collect_identifier(identifiers: Identifiers, tag: int, vr: str, value) -> None:
    """Add the decoded ``value`` of an identifier source to what the safety net hunts."""
    if not value:
        return
    if vr == "PN":
        identifiers.add_person_name(str(value))
    elif tag == PATIENT_BIRTH_DATE:
        identifiers.add_birth_date(str(value))
    elif isinstance(value, (str, MultiValue)):
        identifiers.add_identifier(str(value))


def mark(ds: Dataset, engine: "Deidentifier") -> None:
    """Say in ``ds`` that it was de-identified, how, and what became of its dates (PS3.15 E.1)."""
    ds.PatientIdentityRemoved = "YES"
    profile = engine.profile
    ds.DeidentificationMethod = [f"orthanc-gdpr {__version__}", "DICOM PS3.15 2026d Annex E",
                                 f"profile {profile.name}"[:64]]
    items = []
    for code, meaning in engine.method_codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    if engine.full_dates:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif engine.modified_dates:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def rewrite_file_meta(meta: Dataset, sop_instance_uid: str, sop_class_uid: str | None) -> None:
    """The file meta of a de-identified instance: no sending or receiving systems, the new SOP
    Instance UID, and orthanc-gdpr as the implementation that wrote it."""
    for tag in FILE_META_IDENTIFYING:
        if tag in meta:
            del meta[tag]
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    if sop_class_uid is not None:
        meta.MediaStorageSOPClassUID = sop_class_uid
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME


def net_verdict(identifiers: Identifiers, removed: RemovedValues, value, tag: int, here: str,
                report: InstanceReport) -> tuple[str | None, object]:
    """What the safety net does to a kept text element whose (decoded) ``value`` matched: the
    action of the removed element it equals ("X", "Z" or "D", and nothing new), or its new value
    with the patient's identifiers and removed values cut out (None: nothing to cut). The hit is
    counted in ``report``."""
    values = [str(v) for v in value] if isinstance(value, (list, MultiValue)) else [str(value)]
    same = removed.equal_to(values[0]) if len(values) == 1 else None
    if same is not None:  # the very value the profile removed: the same action here
        report.safety_net.append((here, 1))
        report.add(here, "X" if tag >> 16 & 1 else same.action,
                   f"safety net: the value removed from {same.attribute} ({same.rule})")
        return ("X" if tag >> 16 & 1 else same.action), None
    new, own, taken = [], 0, []
    for text in values:
        text, hits = identifiers.scrub(text)
        text, removals = removed.redact(text)
        own, taken = own + hits, taken + removals
        new.append(tidy(text) if removals else text)
    if not own and not taken:
        return None, None  # matched as raw bytes only (e.g. a character set detail): nothing to cut
    report.safety_net.append((here, own + len(taken)))
    if own:
        report.add(here, "C", "safety net: the patient's own identifier removed")
    for attribute, rule in sorted({(r.attribute, r.rule) for r in taken}):
        report.add(here, "C", f"safety net: a value removed from {attribute} ({rule}) cut out")
    return None, new if len(new) > 1 else new[0]


class Deidentifier:
    """A profile bound to a key: de-identifies instances one by one, consistently."""

    def __init__(self, profile: Profile, keyring: Keyring):
        self.profile = profile
        self.table = profile.table
        self.safe_private = SafePrivate.load() if profile.has("retain-safe-private") else None
        self.uids = UidMapper(keyring)
        self.shifter = DateShifter(keyring, profile.date_shift_days)
        self.pseudonyms = Pseudonymizer(keyring, profile.id_format, profile.name_format)
        self.retain_uids = profile.has("retain-uids")
        self.full_dates = profile.has("retain-longitudinal-full-dates")
        self.modified_dates = profile.has("retain-longitudinal-modified-dates")
        self.method_codes = [opts.BASIC_PROFILE_CODE] + [(o.code, o.meaning) for o in profile.options]
        self.clean_pixels = profile.has("clean-pixel-data")
        self.clean_structured = profile.has("clean-structured-content")
        self.clean_graphics = profile.has("clean-graphics")
        self.deface = profile.has("clean-recognizable-visual-features")
        #: None: every image is checked for burned-in text; a profile may narrow it, with a purpose
        self.text_modalities = profile.text_modalities
        #: Where before/after PNGs of pixel-cleaned instances go (None: not written).
        self.previews_dir: Path | None = None
        #: Without Clean Pixel Data this engine never reads or changes Pixel Data, so readers may
        #: leave it undecoded and copy it verbatim (files.read_split).
        self.pixel_data_untouched = not self.clean_pixels

    def deidentify(self, ds: Dataset, defaced: bool = False, pixels_split: bool = False) -> InstanceReport:
        """De-identify ``ds`` in place, file meta included; raises DeidentificationError.

        ``defaced``: the instance comes from :func:`pixel_policy.deface_series` (needed for head
        CT/MR volumes under Clean Recognizable Visual Features; held back otherwise).
        ``pixels_split``: the reader kept its Pixel Data apart (:func:`files.read_split`), so
        ``ds`` has pixels although it holds none.
        """
        if SOP_INSTANCE_UID not in ds or not str(ds[SOP_INSTANCE_UID].value or "").strip():
            raise DeidentificationError("no SOP Instance UID (0008,0018)")
        dropped = report_policy(ds, self.clean_structured, self.clean_pixels, self.clean_graphics)
        if dropped:
            raise InstanceDropped(dropped)
        pixels = pixels_split or has_pixels(ds)
        if self.deface and not defaced and is_head_volume(ds) and pixels:
            raise DeidentificationError("head CT/MR instance: Clean Recognizable Visual Features needs its whole "
                                        "series (orthanc-gdpr deidentify on the series folder)")
        return _Instance(self, ds, pixels).run()


class _Instance:
    """The state of one instance while it is de-identified."""

    def __init__(self, engine: Deidentifier, ds: Dataset, pixels: bool):
        self.engine, self.ds, self.pixels = engine, ds, pixels
        self.report = InstanceReport()
        self.identifiers = Identifiers()
        self.removed = RemovedValues()
        self.kept_text: list[tuple[Dataset, int, str]] = []
        charset = ds.get("SpecificCharacterSet", "")
        self.raw_text = isinstance(charset, str) and charset.strip() in SINGLE_BYTE_CHARSETS
        self.identity = patient_identity(ds)
        self.days = engine.shifter.offset_days(self.identity)

    def run(self) -> InstanceReport:
        ds = self.ds
        if endian.is_big_endian(ds):
            endian.to_little_endian(ds)
            self.report.notes.append(endian.CONVERSION_NOTE)
        self._collect_identifiers(ds)
        if self.engine.table.overlay_data.action == "C":  # Clean Graphics: erase overlay text
            self.report.overlays = [o.to_dict() for o in pixels.clean_overlays(ds)]
        stack: list[tuple[Dataset, str, int, bool]] = [(ds, "", 0, False)]
        while stack:
            self._dataset(*stack.pop(), stack)
        self._safety_net()
        self._pixel_options(ds)
        mark(ds, self.engine)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            rewrite_file_meta(meta, ds.SOPInstanceUID, ds.SOPClassUID if "SOPClassUID" in ds else None)
        self.report.sop_class_uid = str(ds.get("SOPClassUID", ""))
        self.report.sop_instance_uid = str(ds.SOPInstanceUID)
        self.report.patient_pseudonym = self.engine.pseudonyms.patient_id(self.identity)
        return self.report

    # -- collecting what identifies the patient, before anything changes ------------------------

    def _collect_identifiers(self, ds: Dataset) -> None:
        """Names, IDs and the birth date of the patient, from attributes that will not be kept.

        Only candidate elements are decoded: the others stay raw (and are written back as read).
        """
        table = self.engine.table
        for tag, elem in ds._dict.items():  # pydicom's own BaseTag keys: no Tag() per access
            vr = elem.VR  # as the file states it: the common case decides without a look-up
            if vr is None or vr == "UN":
                vr = _vr(ds, tag)
            if is_identifier_source(tag, vr, table.lookup(tag)):
                collect_identifier(self.identifiers, tag, vr, ds[tag].value)

    # -- the walk -------------------------------------------------------------------------------

    def _dataset(self, dataset: Dataset, path: str, depth: int, clean: bool, stack: list) -> None:
        creators: dict[tuple[int, int], int] = {}
        kept_blocks: set[tuple[int, int]] = set()
        for tag in list(dataset.keys()):  # BaseTag keys, as above
            group, element = tag >> 16, tag & 0xFFFF
            if element == 0:  # group length: recomputed (or dropped) on write
                del dataset[tag]
            elif group & 1:
                if 0x10 <= element <= 0xFF:
                    creators[(group, element)] = tag
                else:
                    self._private(dataset, tag, path, depth, clean, stack, kept_blocks)
            else:
                self._standard(dataset, tag, path, depth, clean, stack)
        for block, tag in creators.items():
            if block not in kept_blocks:
                del dataset[tag]

    def _recurse(self, elem, path: str, depth: int, clean: bool, stack: list) -> None:
        if depth + 1 > MAX_SEQUENCE_DEPTH:
            raise DeidentificationError(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")
        for i, item in enumerate(elem.value):
            stack.append((item, f"{path}[{i}]/", depth + 1, clean))

    def _private(self, dataset: Dataset, tag: int, path: str, depth: int, clean: bool, stack: list,
                 kept_blocks: set) -> None:
        group, block = tag >> 16, (tag >> 8) & 0xFF
        here = f"{path}({group:04X},{tag & 0xFFFF:04X})"
        creator_elem = dataset.get((group << 16) | block) if block >= 0x10 else None
        creator = str(creator_elem.value or "") if creator_elem is not None else ""
        safe = self.engine.safe_private
        if safe is None or not creator or not safe.is_safe(creator, tag):
            del dataset[tag]
            self.report.add(here, "X", self.engine.table.private.describe())
            return
        elem = dataset[tag]
        if elem.VR == "SQ":
            self._recurse(elem, here, depth, clean, stack)
        elif elem.VR in SCANNED_VRS or isinstance(elem.value, bytes):
            self.kept_text.append((dataset, tag, here))
        kept_blocks.add((group, block))
        self.report.add(here, "K", f"E.3.10-1 safe private attribute of {creator.strip()!r}")
        self.report.residual["private attributes (safe, E.3.10-1)"].add(f"{creator.strip()}:{tag >> 16:04X},xx{tag & 0xFF:02X}")

    def _standard(self, dataset: Dataset, tag: int, path: str, depth: int, clean: bool, stack: list) -> None:
        rule = self.engine.table.lookup(tag)
        vr = _vr(dataset, tag)
        here = path + _label(tag)
        if rule is None:
            self._unlisted(dataset, tag, vr, here, depth, clean, stack)
            return
        action = rule.action
        if action == "K":
            self._keep(dataset, tag, vr, here, depth, clean, stack, rule)
            return
        if tag in (PATIENT_ID, PATIENT_NAME):
            self._pseudonym(dataset[tag], tag)
            self.report.add(here, "D", PSEUDONYM_RULE)
            return
        if vr == "PN":
            self._note_name(dataset[tag])
        elif action in ("X", "Z", "D") or (action == "U" and vr not in ("SQ", "UI")):
            self._note_removed(dataset, tag, vr, Removal(here, action, rule.describe()))
        if action == "X":
            del dataset[tag]
            self.report.add(here, action, rule.describe())
            return
        if action == "Z":  # replaced by an empty element: the old value is never decoded
            dataset[tag] = DataElement(tag, vr, Sequence() if vr == "SQ" else None)
        elif action == "D" or (action == "U" and vr not in ("SQ", "UI")):
            self._dummy(dataset, tag, vr)
        elif action == "U":
            if vr == "SQ":
                self._recurse(dataset[tag], here, depth, clean, stack)
            else:
                self._remap(dataset[tag])
        else:  # C
            action = self._clean(dataset, dataset[tag], vr, here, depth, stack)
        self.report.add(here, action, rule.describe())

    def _text(self, dataset: Dataset, tag: int) -> str:
        """The text of an element, backslashes between values: its raw bytes read as Latin-1
        when the character set allows (nothing decoded), else its decoded value."""
        elem = dataset.get_item(tag)
        if elem.is_raw and self.raw_text:
            return elem.value.decode("latin-1") if elem.value else ""
        value = dataset[tag].value
        if value is None:
            return ""
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return "\\".join(str(v) for v in value) if isinstance(value, (list, MultiValue)) else str(value)

    def _note_removed(self, dataset: Dataset, tag: int, vr: str, removal: Removal) -> None:
        """Record the text values an action takes away (a sequence's, at any depth), for the
        safety net to hunt in what is kept (see removed.py)."""
        if vr in REMOVED_TEXT_VRS:
            self.removed.add(self._text(dataset, tag), removal)
        elif vr == "SQ":
            items = list(dataset[tag].value or ())
            while items:
                item = items.pop()
                for inner in item.keys():
                    inner_vr = _vr(item, inner)
                    if inner_vr == "SQ":
                        items.extend(item[inner].value or ())
                    elif inner_vr in REMOVED_TEXT_VRS and not inner >> 16 & 1:
                        self.removed.add(self._text(item, inner), removal)

    def _note_name(self, elem) -> None:
        """A person name that is going away: the safety net looks for it in what stays."""
        if elem.value:
            self.identifiers.add_person_name(str(elem.value))

    def _keep(self, dataset: Dataset, tag: int, vr: str, here: str, depth: int, clean: bool, stack: list,
              rule: Rule) -> None:
        if vr == "SQ":
            self._recurse(dataset[tag], here, depth, clean, stack)
        elif vr in SCANNED_VRS:
            self.kept_text.append((dataset, tag, here))
        if rule.source.startswith("profile override"):
            self.report.residual["retained by profile override"].add(here)
        elif rule.source != "E.1-1 basic":  # kept because an option says so
            self.report.residual[f"retained by {rule.source}"].add(here)
        if vr in ("DA", "DT"):
            self.report.residual["dates (full)"].add(here)
        self.report.add(here, "K", rule.describe())

    def _unlisted(self, dataset: Dataset, tag: int, vr: str, here: str, depth: int, clean: bool,
                  stack: list) -> None:
        """Attributes Table E.1-1 does not list: kept, but never blindly."""
        if vr == "SQ":
            self._recurse(dataset[tag], here, depth, clean, stack)
            return
        if not dataset.get_item(tag).value:
            return  # empty (raw or decoded): nothing to change, nothing to scan
        if vr in SCANNED_VRS and not clean:
            self.kept_text.append((dataset, tag, here))
            if vr in ("ST", "LT", "UT", "UC"):
                self.report.residual["free text (scanned by the safety net)"].add(here)
            return
        if vr not in ("UI", "DA", "DT") and not (clean and vr in SCANNED_VRS):
            return  # numbers, codes, binary values: kept as read, never decoded
        elem = dataset[tag]
        if vr == "UI":
            if not self.engine.retain_uids and self._remap(elem):
                self.report.add(here, "U", "unlisted instance UID remapped to keep references consistent")
        elif vr in ("DA", "DT"):
            if not self.engine.full_dates:
                self._shift(dataset, elem, vr)
                self.report.add(here, "C", "unlisted date shifted by the patient's offset")
                self.report.residual["dates (shifted)"].add(here)
        else:
            self._clean_text(elem, here)
            self.kept_text.append((dataset, tag, here))

    # -- actions --------------------------------------------------------------------------------

    def _pseudonym(self, elem, tag: int) -> None:
        if tag == PATIENT_ID:
            elem.value = self.engine.pseudonyms.patient_id(self.identity)
        else:
            elem.value = self.engine.pseudonyms.patient_name(self.identity)

    def _dummy(self, dataset: Dataset, tag: int, vr: str) -> None:
        """Action D: UIDs are remapped; other values are replaced without being decoded."""
        if vr == "UI":
            self._remap(dataset[tag])
            return
        value = Sequence([Dataset()]) if vr == "SQ" else _dummy(vr)
        if value is None:
            del dataset[tag]
        else:
            dataset[tag] = DataElement(tag, vr, value)

    def _remap(self, elem) -> bool:
        """Remap the UI value(s) of ``elem``; True when anything changed."""
        new = self.engine.uids.remap_value(elem.value)
        if new is not None:
            elem.value = new
        return new is not None

    def _shift(self, dataset: Dataset, elem, vr: str) -> None:
        elem.value = shifted_value(elem.value, vr, self.days)

    def _clean(self, dataset: Dataset, elem, vr: str, here: str, depth: int, stack: list) -> str:
        """Action C by VR; returns the action actually taken (for the report)."""
        if vr == "SQ":
            self._recurse(elem, here, depth, True, stack)
        elif vr in ("DA", "DT"):
            if not self.engine.modified_dates:
                elem.value = None
                return "Z"
            self._shift(dataset, elem, vr)
            self.report.residual["dates (shifted)"].add(here)
        elif vr == "PN":
            elem.value = _dummy("PN")
            return "D"
        elif vr in SCANNED_VRS:
            self._clean_text(elem, here)
            self.kept_text.append((dataset, elem.tag, here))
        elif vr == "UI":
            self._remap(elem)
        elif vr in BINARY_VRS:
            if dataset is self.ds and _is_overlay_data(elem.tag) and self.report.overlays is not None:
                return "C"  # its text erased by pixels.clean_overlays before the walk
            del dataset[elem.tag]  # no other cleaner for binary values: removed, never passed through
            return "X"
        return "C"

    def _clean_text(self, elem, here: str) -> None:
        """Clean each value; one left with nothing gets the VR's dummy (it may be Type 1)."""
        values = elem.value if isinstance(elem.value, (list, MultiValue)) else [elem.value]
        total, cleaned = 0, []
        for v in values:
            text, hits = clean_text(str(v), self.identifiers)
            total += hits
            cleaned.append(text if text or not str(v).strip() else _dummy(elem.VR))
        if total:
            elem.value = cleaned if len(cleaned) > 1 else cleaned[0]
            self.report.safety_net.append((here, total))

    # -- after the walk -------------------------------------------------------------------------

    def _safety_net(self) -> None:
        """Hunt, in every kept text value at every depth (and kept private values), the patient's
        own identifiers and every value the profile removed (see removed.py). Values are matched
        as read; only a value that matches is decoded and changed."""
        identifiers, removed = self.identifiers.regex, self.removed
        if identifiers is None and not removed:
            return
        for dataset, tag, here in self.kept_text:
            if tag not in dataset:
                continue
            text = self._text(dataset, tag)
            if text and ((identifiers is not None and identifiers.search(text)) or removed.found_in(text)):
                self._net_hit(dataset, tag, here)

    def _net_hit(self, dataset: Dataset, tag: int, here: str) -> None:
        elem = dataset[tag]
        if isinstance(elem.value, bytes):  # a private value that cannot be edited as text: removed
            del dataset[tag]
            self.report.safety_net.append((here, 1))
            self.report.add(here, "X", "safety net: kept private value holds an identifier or a removed value")
            return
        same, new = net_verdict(self.identifiers, self.removed, elem.value, tag, here, self.report)
        if same == "X":
            del dataset[tag]
        elif same == "Z":
            dataset[tag] = DataElement(tag, elem.VR, None)
        elif same is not None:
            self._dummy(dataset, tag, elem.VR)
        elif new is not None:
            elem.value = new

    def _pixel_options(self, ds: Dataset) -> None:
        """Pixel options on this instance's pixels; where there are none (or none they handle),
        the report says why the option did not apply, and the instance goes on header-only."""
        engine = self.engine
        if not self.pixels:
            self.report.notes.append(HEADER_ONLY_NOTE)
            for option, wanted in (("clean-pixel-data", engine.clean_pixels),
                                   ("clean-recognizable-visual-features", engine.deface)):
                if wanted:
                    self.report.notes.append(f"{option} not applied: the instance has no pixel data")
        elif engine.clean_pixels and "PixelData" in ds:
            self._clean_pixels(ds)
        elif engine.clean_pixels:
            self.report.notes.append("clean-pixel-data not applied: Float and Double Float Pixel Data carry "
                                     "measurements, not burned-in text, and are not masked")

    def _clean_pixels(self, ds: Dataset) -> None:
        """Clean Pixel Data (E.3.1): mask burned-in text; previews for sign-off when asked."""
        before = copy.deepcopy(ds) if self.engine.previews_dir else None
        try:
            result = pixels.clean_pixel_data(ds, modalities=self.engine.text_modalities)
        except pixels.PixelCleaningError as e:
            raise DeidentificationError(f"pixel data cannot be cleaned: {e}") from None
        self.report.pixels = result.to_dict()
        if before is not None and self.engine.previews_dir is not None:
            from ..pixels.previews import previews  # Pillow drawing: only for sign-off runs
            previews(before, ds, result.boxes, self.engine.previews_dir, result.text_regions)
