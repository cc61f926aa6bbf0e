"""De-identification on raw element bytes: the engine's fast path for the common instance.

The engine (:mod:`.engine`) works on pydicom data sets and is the reference. For the common
case this module gives the very same output bytes and report without building them: an Explicit
or Implicit VR Little Endian Part 10 file in a single-byte character set, whose trailing native
Pixel Data is copied verbatim, under a profile without pixel options. It walks the element
stream with ``struct``, decides per tag from the profile's table exactly as the engine does
(same rules, same walk order, same report), copies the bytes of kept elements, and builds values
only for what the profile changes (UIDs, dates, pseudonyms, dummies) and what the engine reads
(the patient's identifiers, the values the safety net hunts). New and changed elements are
encoded by :mod:`.encoder`, values are decoded by pydicom itself, so both paths share every byte
rule. In implicit VR the VR is the one pydicom resolves (dictionary, private dictionary by its
creator, UN, a sequence for an unknown element of undefined length made of items), and every
element the engine decodes to learn its VR is treated as decoded here too.

Anything else raises :class:`NotCovered` before a byte is written, and the caller runs the
engine instead: other transfer syntaxes or character sets, UN or unusual elements (in implicit
VR: standard elements not in the dictionary, private sequences of defined length, values pydicom
cannot decode, actions other than keep or remove on an ambiguous VR such as US or SS), private
attributes the profile keeps, report-bearing objects, any safety-net hit or text that cleaning
changes, malformed or truncated data. ``tests/test_deid_raw.py`` proves byte and report
identity with the engine on every corpus file under every shipped profile, in both encodings.
"""

from __future__ import annotations

import io
import struct
import weakref
from collections.abc import Callable
from functools import lru_cache

from pydicom import config
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR, private_dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import _LUT_DESCRIPTOR_TAGS, BaseTag

from . import encoder
from .cleaning import clean_text
from .dates import shifted_value
from .engine import (BINARY_VRS, MAX_SEQUENCE_DEPTH, PATIENT_ID, PATIENT_NAME, PSEUDONYM_RULE, REMOVED_TEXT_VRS,
                     SCANNED_VRS, SINGLE_BYTE_CHARSETS, SOP_INSTANCE_UID, Deidentifier, _dummy, _label,
                     collect_identifier, is_identifier_source, mark, net_verdict, patient_identity,
                     rewrite_file_meta)
from .cleaning import Identifiers
from .removed import MIN_LENGTH, Removal, RemovedValues
from .report import InstanceReport
from ..pixels.reports import (ENCAPSULATED_DOCUMENT_PREFIX, KEY_OBJECT_SELECTION, PRESENTATION_STATE_PREFIX,
                              is_report_bearing)

__all__ = ["NotCovered", "RawResult", "covers", "deidentify", "trailing_pixel_length"]


class NotCovered(Exception):
    """An instance (or a profile) this fast path leaves to the engine."""


EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN = b"1.2.840.10008.1.2.1", b"1.2.840.10008.1.2"
#: The VRs read here, as they appear in the file: their name, and whether their length is 32-bit.
_VRS = {vr.encode(): (vr, True) for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UR", "UT", "SV", "UV")}
_VRS.update({vr.encode(): (vr, False) for vr in ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO",
                                                  "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US")})
_KNOWN_VRS = frozenset(vr for vr, _ in _VRS.values()) | {"US or SS", "US or OW", "US or SS or OW", "OB or OW"}
#: VRs whose pydicom value is the Latin-1 text with trailing spaces and NULs stripped (split at
#: backslashes), and which the encoder writes back joined and padded: an element whose raw bytes
#: already are that padding is written back as read. Value: the padding byte.
_PADDED = {"AE": b" ", "AS": b" ", "CS": b" ", "DA": b" ", "DT": b" ", "TM": b" ", "UI": b"\0",
           "ST": b" ", "LT": b" ", "UT": b" ", "SH": b" ", "LO": b" ", "UC": b" "}
#: VRs whose decoded value pydicom writes back as read when the value's length is a multiple
#: of this (numbers unpacked and packed again, bytes padded to even length). Floats are not
#: here: a signalling NaN does not come back as read.
_REPACKED = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "OB": 2, "OW": 2,
             "US or SS": 2, "US or OW": 2, "US or SS or OW": 2, "OB or OW": 2}
#: In implicit VR, the VRs whose decoding cannot fail: text in a single-byte character set
#: (see _DECODERS) and bytes; and the fixed-size numbers, when the length is a multiple of the size.
_BYTES_VRS = frozenset(("OB", "OW", "OD", "OF", "OL", "OV", "UN"))
_NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "SV": 8, "UV": 8}
#: The ambiguous dictionary VRs pydicom resolves from the data set (PixelRepresentation, ...).
_AMBIGUOUS = _KNOWN_VRS - {vr for vr, _ in _VRS.values()}
#: Of those, the VRs pydicom strips per value (so "A \\B" does not come back as read).
_PER_VALUE = frozenset(("SH", "LO", "UC"))
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
#: (7FE0,0010) Pixel Data and (FFFC,FFFC) Data Set Trailing Padding, read as one little endian UL
_PIXEL_DATA_TAG, _TRAILING_PADDING_TAG = 0x00107FE0, 0xFFFCFFFC
_SPECIFIC_CHARACTER_SET = 0x00080005
_SOP_CLASS_UID, _MODALITY, _CONTENT_SEQUENCE, _ENCAPSULATED_DOCUMENT = 0x00080016, 0x00080060, 0x0040A730, 0x00420011
_STUDY_UID, _SERIES_UID = 0x0020000D, 0x0020000E
_PIXEL_REPRESENTATION = 0x00280103
#: Elements the engine's mark() writes: present in the input, they would be updated in place.
_MARK_TAGS = (0x00120062, 0x00120063, 0x00120064, 0x00280303)

DEFAULT_ENCODINGS = convert_encodings(["iso8859"])
_header = struct.Struct("<HH2sH").unpack_from  # tag, VR and (for a short VR) the length
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_u16_u32 = struct.Struct("<HHI").unpack_from
_pack_into_ul = struct.Struct("<I").pack_into

#: What becomes of an element: its bytes as read, re-encoded from its decoded value, nothing,
#: new bytes (``_El.new``), or a walked sequence.
KEEP, DECODED, DROP, NEW, WALKED = range(5)


class _El:
    """One element as read: where its header and value are, and what becomes of it."""

    __slots__ = ("tag", "vr", "head", "start", "end", "undefined", "items", "fate", "new", "elem")

    def __init__(self, tag: int, vr: str, head: int, start: int, end: int, undefined: bool, items):
        self.tag, self.vr, self.head, self.start, self.end = tag, vr, head, start, end
        self.undefined, self.items = undefined, items
        self.fate, self.new, self.elem = KEEP, None, None  # elem: as pydicom decodes it


class _Item:
    """One sequence item: its elements (by tag, in file order) and how its length was written."""

    __slots__ = ("elements", "undefined")

    def __init__(self, elements: dict[int, _El], undefined: bool):
        self.elements, self.undefined = elements, undefined


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    """The VR pydicom gives a standard element read in implicit VR (None: not in the dictionary)."""
    if not tag & 0xFFFF:
        return "UL"  # a group length
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if vr in _KNOWN_VRS else None


class _Reader:
    """Little endian element stream of one file, Explicit VR or (``implicit``) Implicit VR.

    In implicit VR the VR of a standard element is its dictionary VR, as pydicom gives it; a
    private creator's is LO; other private elements get theirs (``None`` here) when the engine
    would resolve them (:meth:`_Instance._resolve`)."""

    def __init__(self, data, implicit: bool = False):
        self.data, self.implicit = data, implicit

    def elements(self, pos: int, end: int | None, depth: int, stop: int = 0x100000000, groups: range = range(8, 0xFFFE)
                 ) -> tuple[dict[int, _El], int]:
        """Elements from ``pos`` up to ``end`` (the end of an item or of the data), or up to an
        item delimiter (``end`` None), or to the first tag >= ``stop``; returns them and the
        position after them (after the delimiter, if any). Groups outside ``groups`` (and a
        nested Specific Character Set) are not covered."""
        data, found, previous = self.data, {}, -1
        limit = len(data) if end is None else end
        if limit > len(data):
            raise NotCovered("item longer than the data")
        while pos < limit:
            if pos + 8 > limit:
                raise NotCovered("element header cut short")
            group, element, code, length = _header(data, pos)
            tag = group << 16 | element
            if tag == _ITEM_END and end is None:
                if _u32(data, pos + 4)[0] != 0:
                    raise NotCovered("item delimiter with a length")
                return found, pos + 8
            if tag >= stop:
                return found, pos
            if tag <= previous or group not in groups or (depth and tag == _SPECIFIC_CHARACTER_SET):
                raise NotCovered("element out of order or out of place")
            previous = tag
            if self.implicit:
                start, length = pos + 8, _u32(data, pos + 4)[0]
                vr = self._implicit_vr(tag, start, length)
            else:
                vr, long = _VRS.get(code, (None, False))
                if vr is None:
                    raise NotCovered("UN or unknown VR")
                if not long:
                    start = pos + 8
                elif pos + 12 > limit or length != 0:  # the reserved 2 bytes
                    raise NotCovered("long element header")
                else:
                    start, length = pos + 12, _u32(data, pos + 8)[0]
            if vr == "SQ":
                items, after = self.sequence(start, length, depth + 1)
                found[tag] = _El(tag, vr, pos, start, after, length == _UNDEFINED, items)
                pos = after
                continue
            if length == _UNDEFINED or start + length > limit:
                raise NotCovered("undefined length or truncated value")
            found[tag] = _El(tag, vr, pos, start, start + length, False, None)
            pos = start + length
        if end is None or pos != end:
            raise NotCovered("data ends inside an element or an item")
        return found, pos

    def _implicit_vr(self, tag: int, start: int, length: int) -> str | None:
        """The VR pydicom reads an implicit VR element with: see the class. Elements of
        undefined length are covered as sequences only (dictionary SQ, or made of items)."""
        if tag >> 16 & 1:
            vr = "LO" if 0x10 <= tag & 0xFFFF <= 0xFF else None
        else:
            vr = _dictionary_vr(tag)
            if vr is None:
                raise NotCovered("a standard element not in the dictionary, or of a VR not covered")
        if length != _UNDEFINED or vr == "SQ":
            return vr
        if vr is None and bytes(self.data[start:start + 4]) == encoder._ITEM[:4]:
            return "SQ"  # pydicom reads an unknown element of undefined length made of items as one
        raise NotCovered("undefined length that is not a sequence")

    def sequence(self, pos: int, length: int, depth: int) -> tuple[list[_Item], int]:
        if depth > MAX_SEQUENCE_DEPTH:
            raise NotCovered("deep nesting")
        data, items = self.data, []
        end = None if length == _UNDEFINED else pos + length
        if end is not None and end > len(data):
            raise NotCovered("truncated sequence")
        while end is None or pos < end:
            if pos + 8 > len(data):
                raise NotCovered("truncated sequence")
            group, element, item_length = _u16_u32(data, pos)
            tag = group << 16 | element
            if tag == _SEQUENCE_END and end is None:
                if item_length:
                    raise NotCovered("sequence delimiter with a length")
                return items, pos + 8
            if tag != _ITEM:
                raise NotCovered("not an item")
            if item_length == _UNDEFINED:
                elements, pos = self.elements(pos + 8, None, depth)
            else:
                elements, pos = self.elements(pos + 8, pos + 8 + item_length, depth)
            items.append(_Item(elements, item_length == _UNDEFINED))
        if pos != end:
            raise NotCovered("sequence length")
        return items, pos


def trailing_pixel_length(tail, implicit: bool) -> int:
    """The length of the native (defined-length, OB or OW) Pixel Data element that ``tail``
    starts with, when it is followed by nothing but, at most, one Data Set Trailing Padding
    element (which Table E.1-1 removes anyway); 0 otherwise."""
    head = bytes(tail[:12])
    if len(head) < 12 or _u32(head, 0)[0] != _PIXEL_DATA_TAG:
        return 0
    if implicit:
        header, length = 8, _u32(head, 4)[0]
    elif head[4:6] in (b"OB", b"OW"):
        header, length = 12, _u32(head, 8)[0]
    else:
        return 0
    end = header + length
    if length == _UNDEFINED or end > len(tail):
        return 0
    return end if end == len(tail) or _is_trailing_padding(tail[end:], implicit) else 0


def _is_trailing_padding(rest, implicit: bool) -> bool:
    head = bytes(rest[:12])
    if len(head) < 8 or _u32(head, 0)[0] != _TRAILING_PADDING_TAG:
        return False
    if implicit:
        return 8 + _u32(head, 4)[0] == len(rest)
    return len(head) == 12 and head[4:6] in (b"OB", b"UN") and 12 + _u32(head, 8)[0] == len(rest)


def covers(engine: Deidentifier) -> bool:
    """True when the engine's profile is one this path can apply (no pixel options)."""
    return (engine.pixel_data_untouched and not engine.deface and not engine.clean_pixels
            and engine.table.overlay_data.action != "C")


def _ui(raw: bytes):
    """convert_UI, for one single-byte value: trailing NULs and spaces go, backslashes split."""
    items = raw.decode("latin-1").rstrip("\0 ").split("\\")
    return items[0] if len(items) == 1 else MultiValue(str, items)


def _strings(raw: bytes):
    """convert_string (AE AS CS, and DA DT TM without datetime conversion)."""
    items = raw.decode("latin-1").rstrip(" \0").split("\\")
    return items[0] if len(items) == 1 else MultiValue(str, items)


def _texts(raw: bytes):
    """convert_text (SH LO UC) in a single-byte character set: each value's padding goes."""
    items = [v.rstrip("\0 ") for v in raw.decode("latin-1").split("\\")]
    return items[0] if len(items) == 1 else MultiValue(str, items)


def _single_text(raw: bytes) -> str:
    """convert_single_string (ST LT UT) in a single-byte character set."""
    return raw.decode("latin-1").rstrip("\0 ")


def _person_name(raw: bytes) -> str:
    """str() of convert_PN's PersonName, for one value in a single-byte character set."""
    return raw.rstrip(b"\0 ").decode("latin-1")


#: pydicom's value decoders, for a non-empty value in a single-byte character set without escape
#: sequences (str where pydicom has a UID or a PersonName: the engine reads those only as text,
#: and writes decoded values back through pydicom's own conversion). Other VRs, and names with
#: more than one value: pydicom itself.
_DECODERS: dict[str, Callable[[bytes], object]] = {
    "UI": _ui, "AE": _strings, "AS": _strings, "CS": _strings, "DA": _strings, "DT": _strings, "TM": _strings,
    "SH": _texts, "LO": _texts, "UC": _texts, "ST": _single_text, "LT": _single_text, "UT": _single_text,
    "PN": _person_name}

#: Encoded new elements by (tag, VR, value, encodings): dummies, empty values and remapped study
#: and series UIDs repeat from instance to instance.
_ENCODED: dict[tuple, bytes] = {}
#: New sequence values (stand-ins, made anew for each element): Z's empty sequence, D's one
#: empty item.
NO_ITEMS, ONE_EMPTY_ITEM = object(), object()


def _encoded(tag: int, vr: str, value, encodings: list[str], implicit: bool) -> bytes:
    """The element the engine writes after ``elem.value = value`` (or a new DataElement)."""
    cached = type(value) in (str, int, float, bytes, type(None)) or value is NO_ITEMS or value is ONE_EMPTY_ITEM
    key = (tag, vr, value, tuple(encodings), implicit) if cached else None
    data = _ENCODED.get(key) if key is not None else None
    if data is None:
        if value is NO_ITEMS or value is ONE_EMPTY_ITEM:
            value = Sequence() if value is NO_ITEMS else Sequence([Dataset()])
        out = bytearray()
        encoder._element(tag, DataElement(tag, vr, value), implicit, encodings, out)
        data = bytes(out)
        if key is not None:
            if len(_ENCODED) > 4096:
                _ENCODED.clear()
            _ENCODED[key] = data
    return data


#: DS and IS values by (VR, bytes as read, pydicom's number settings): whether pydicom writes
#: back as read what it decodes from them (it keeps each value's string, not always its spaces).
_NUMBER_STRINGS: dict[tuple, bool] = {}


#: File meta groups as written, by (the input's group minus its SOP Instance UID, SOP Class UID,
#: length of the new SOP Instance UID): the bytes before and after the new UID's value.
_FILE_META: dict[tuple, tuple[bytes, bytes]] = {}


def _file_meta(data, meta: dict[int, _El], meta_end: int, sop_instance_uid: str, sop_class_uid) -> bytes:
    """Preamble, prefix and file meta as files.encode() writes them after the engine's
    rewrite_file_meta(): pydicom reads the group and the encoder writes it; the result is kept
    as a template around the new SOP Instance UID, the only value that changes per instance."""
    old = meta.get(0x00020003)
    group = bytes(data[132:meta_end]) if old is None else bytes(data[132:old.head]) + bytes(data[old.end:meta_end])
    key = (group, None if sop_class_uid is None else str(sop_class_uid), len(sop_instance_uid))
    template = _FILE_META.get(key)
    if template is not None:
        return template[0] + sop_instance_uid.encode("latin-1") + template[1]
    placeholder = "9" * len(sop_instance_uid)
    written = [_written_file_meta(data, meta_end, uid, sop_class_uid) for uid in (sop_instance_uid, placeholder)]
    parts = written[1].split(placeholder.encode())
    if len(parts) == 2 and parts[0] + sop_instance_uid.encode("latin-1") + parts[1] == written[0]:
        if len(_FILE_META) > 256:
            _FILE_META.clear()
        _FILE_META[key] = (parts[0], parts[1])
    return written[0]


def _written_file_meta(data, meta_end: int, sop_instance_uid: str, sop_class_uid) -> bytes:
    file_meta = _read_file_meta_info(io.BytesIO(bytes(data[132:meta_end])))
    file_meta.get("TransferSyntaxUID")  # dcmread reads it
    rewrite_file_meta(file_meta, sop_instance_uid, sop_class_uid)
    out = bytearray(128)
    out += b"DICM"
    encoder._file_meta(file_meta, out)
    return bytes(out)


class _TopLevel:
    """The top level of the instance as the engine's functions that read a data set see it
    (``get``, ``in``, attributes by keyword): as it is at that point of the walk (removed and
    changed values included), decoding what they read as the engine's data set does."""

    def __init__(self, instance: "_Instance"):
        self._instance = instance

    def _element(self, keyword: str) -> "_El | None":
        tag = tag_for_keyword(keyword)
        el = None if tag is None else self._instance.elements.get(tag)
        return None if el is None or el.fate == DROP else el

    def get(self, keyword: str, default=None):
        el = self._element(keyword)
        return default if el is None else self._instance._current(el)

    def __contains__(self, keyword: str) -> bool:
        return self._element(keyword) is not None

    def __getattr__(self, keyword: str):
        el = self._element(keyword)
        if el is None:
            raise AttributeError(keyword)
        return self._instance._current(el)


class RawResult:
    """A de-identified instance: its bytes (head, then the pixel element as read), its report,
    and the (new) UIDs that name its output file."""

    __slots__ = ("head", "pixels", "report", "study_uid", "series_uid")

    def __init__(self, head: bytes, pixels, report: InstanceReport, study_uid, series_uid):
        self.head, self.pixels, self.report = head, pixels, report
        self.study_uid, self.series_uid = study_uid, series_uid


class _Compiled:
    """What is the same for every instance of one engine: the encoded elements engine.mark()
    adds (by implicit VR or not), and which top-level elements are identifier sources."""

    def __init__(self, engine: Deidentifier):
        ds = Dataset()
        mark(ds, engine)
        self.marks: dict[bool, list[tuple[int, bytes]]] = {False: [], True: []}
        for implicit, marks in self.marks.items():
            for tag in sorted(ds.keys()):
                out = bytearray()
                encoder._element(tag, ds[tag], implicit, DEFAULT_ENCODINGS, out)
                marks.append((int(tag), bytes(out)))
        self._lookup = engine.table.lookup
        self._sources: dict[tuple[int, str], bool] = {}

    def is_identifier_source(self, tag: int, vr: str) -> bool:
        key = (tag, vr)
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = is_identifier_source(tag, vr, self._lookup(tag))
        return source


_compiled: weakref.WeakKeyDictionary[Deidentifier, _Compiled] = weakref.WeakKeyDictionary()


def deidentify(engine: Deidentifier, data) -> RawResult:
    """De-identify one Part 10 file given as bytes (or a memory map) like the engine would;
    raises :class:`NotCovered` when it cannot promise the engine's result."""
    if not covers(engine):
        raise NotCovered("profile with pixel options")
    settings = config.settings
    if (config.RAISE in (settings.reading_validation_mode, settings.writing_validation_mode)
            or config.datetime_conversion or config.use_none_as_empty_text_VR_value):
        raise NotCovered("pydicom set to raise on odd values or to convert values")
    if len(data) < 140 or data[128:132] != b"DICM":
        raise NotCovered("no Part 10 preamble")
    meta, pos = _Reader(data).elements(132, len(data), 0, stop=0x00030000, groups=range(2, 3))
    syntax = meta.get(0x00020010)
    syntax = None if syntax is None else bytes(data[syntax.start:syntax.end]).rstrip(b"\0 ")
    if syntax not in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN):
        raise NotCovered("neither Explicit nor Implicit VR Little Endian")
    implicit = syntax == IMPLICIT_VR_LITTLE_ENDIAN
    if implicit and pos + 6 <= len(data) and all(0x40 < b < 0x5B for b in data[pos + 4:pos + 6]):
        raise NotCovered("a data set pydicom reads as explicit VR")  # filereader._is_implicit_vr
    elements, pixel_start = _Reader(data, implicit).elements(pos, len(data), 0, stop=0x7FE00000)
    tail = memoryview(data)[pixel_start:]
    pixels = trailing_pixel_length(tail, implicit)
    if not pixels:
        raise NotCovered("no trailing native Pixel Data")
    compiled = _compiled.get(engine)
    if compiled is None:
        compiled = _compiled[engine] = _Compiled(engine)
    instance = _Instance(engine, data, elements, implicit)
    head = instance.run(meta, pos, compiled)
    return RawResult(head, tail[:pixels], instance.report, instance.final(_STUDY_UID, "study"),
                     instance.final(_SERIES_UID, "series"))


class _Instance:
    """The engine's _Instance, on raw elements (method for method; see engine.py)."""

    def __init__(self, engine: Deidentifier, data, elements: dict[int, _El], implicit: bool):
        self.engine, self.data, self.elements, self.implicit = engine, data, elements, implicit
        self.report = InstanceReport()
        self.identifiers = Identifiers()
        self.removed = RemovedValues()
        self.kept_text: list[tuple[_El, str]] = []  #: (element, path)
        self.exact = engine.table.exact  # the table's rows by tag (lookup() also answers wildcards)
        self.top = _TopLevel(self)
        charset = self.top.get("SpecificCharacterSet", "")
        if not isinstance(charset, str) or charset.strip() not in SINGLE_BYTE_CHARSETS:
            raise NotCovered("character set")
        self.encodings = convert_encodings(charset or ["iso8859"])

    # -- values ------------------------------------------------------------------------------

    def _raw(self, el: _El) -> bytes:
        return bytes(self.data[el.start:el.end])

    def _convert(self, el: _El) -> DataElement:
        """pydicom's decoding of a raw element (what ``Dataset.__getitem__`` does, with the VR
        the file states or, in implicit VR, the one :meth:`_resolve` found; never an ambiguous
        one). A value pydicom refuses is not covered."""
        if el.elem is None:
            if el.vr in _AMBIGUOUS:
                raise NotCovered("a value of ambiguous VR read")
            raw = RawDataElement(BaseTag(el.tag), el.vr, el.end - el.start, self._raw(el), el.start, self.implicit,
                                 True)
            encodings = self.encodings if el.tag != _SPECIFIC_CHARACTER_SET else DEFAULT_ENCODINGS
            try:
                el.elem = convert_raw_data_element(raw, encoding=encodings)
            except Exception:
                raise NotCovered("a value pydicom cannot decode") from None
        return el.elem

    def _resolve(self, el: _El, elements: dict[int, _El] | None = None) -> None:
        """engine._vr in implicit VR: pydicom decodes the element to learn its VR (written
        back from its decoded value from then on). The VR of a private element comes from the
        private dictionary, by its creator in ``elements``; an element pydicom would fail to
        decode is not covered."""
        if el.vr is None:
            el.vr = self._private_vr(el.tag, elements)
        vr = el.vr
        if vr == "SQ":
            if el.items is None:
                raise NotCovered("a private sequence of defined length")
            return
        if el.fate == KEEP:
            el.fate = DECODED
        if vr in _DECODERS or vr in _BYTES_VRS:
            return
        size = _NUMBER_SIZES.get(vr) or _REPACKED.get(vr)
        if size is not None:
            if (el.end - el.start) % size or el.tag in _LUT_DESCRIPTOR_TAGS:
                raise NotCovered("a number of odd length, or a LUT descriptor")
            return
        if vr in ("DS", "IS"):
            self._number_string(el)
            return
        self._convert(el)  # FL, FD...: pydicom may refuse the value

    def _number_string(self, el: _El) -> bool:
        """Whether pydicom decodes a DS or IS value (else: not covered) and writes what it
        decoded back as read; remembered by value, as many repeat from instance to instance."""
        key = (el.vr, self._raw(el), config.use_DS_decimal, config.use_DS_numpy, config.use_IS_numpy)
        same = _NUMBER_STRINGS.get(key)
        if same is None:
            elem = self._convert(el)
            try:
                same = encoder._value(elem, el.vr, self.implicit, self.encodings) == key[1]
            except Exception:
                raise NotCovered("a number string pydicom cannot write back") from None
            if len(_NUMBER_STRINGS) > 4096:
                _NUMBER_STRINGS.clear()
            _NUMBER_STRINGS[key] = same
        return same

    def _private_vr(self, tag: int, elements: dict[int, _El]) -> str:
        """hooks._private_vr_for_tag: the private dictionary's VR, or UN."""
        if tag & 0xFF00:
            creator = elements.get((tag >> 16) << 16 | (tag >> 8) & 0xFF)
            name = self._value(creator) if creator is not None else ""
            if name:
                if not isinstance(name, str):
                    raise NotCovered("a private creator with more than one value")
                try:
                    return private_dictionary_VR(tag, name)
                except KeyError:
                    pass
        return "UN"

    def _value(self, el: _El, reads: bool = True):
        """The element's value as pydicom decodes it (the engine's ``dataset[tag].value``).

        ``reads``: the engine reads it before it writes the data set, so it writes the decoded
        value back (the same bytes, unless pydicom's padding rules differ: see :meth:`_as_read`).
        """
        if reads and el.fate == KEEP:
            el.fate = DECODED
        if el.elem is not None:
            return el.elem.value
        decode = _DECODERS.get(el.vr)
        raw = self._raw(el)
        if decode is None or b"\x1b" in raw or (decode is _person_name and b"\\" in raw):
            return self._convert(el).value
        return decode(raw) if raw else ""

    def _current(self, el: _El, reads: bool = True):
        """The element's value now: its new value once the walk changed it, else as read."""
        if el.fate == NEW:
            return DataElement(el.tag, el.vr, el.new).value
        return self._value(el, reads)

    def _text(self, el: _El) -> str:
        """engine._text in a single-byte character set: the raw bytes as Latin-1 while the
        element is undecoded, its (decoded or new) value once the engine has read or set it."""
        if el.fate == KEEP:
            return self._raw(el).decode("latin-1")
        value = self._current(el, reads=False)
        if value is None:
            return ""
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return "\\".join(str(v) for v in value) if isinstance(value, (list, MultiValue)) else str(value)

    def _empty(self, el: _El) -> bool:
        """The engine's ``not dataset.get_item(tag).value``: of the raw bytes, or of the value
        once decoded (text that is only padding decodes to nothing)."""
        if el.fate == KEEP:
            return el.end == el.start
        raw = self._raw(el)
        if el.vr in _DECODERS and b"\x1b" not in raw:
            return not raw.rstrip(b" \0")
        return not self._value(el, reads=False)

    def _set(self, el: _El, value) -> None:
        """Replace the element's value (the engine's ``elem.value = ...``)."""
        el.fate, el.new = NEW, value

    # -- the walk ------------------------------------------------------------------------------

    def run(self, meta: dict[int, _El], meta_end: int, compiled: _Compiled) -> bytes:
        engine, elements = self.engine, self.elements
        sop = elements.get(SOP_INSTANCE_UID)
        if sop is None or not str(self._value(sop) or "").strip():
            raise NotCovered("no SOP Instance UID")
        self._report_policy()
        if any(tag in elements for tag in _MARK_TAGS):
            raise NotCovered("already marked as de-identified")
        identity = patient_identity(self.top)
        self.identity, self.days = identity, engine.shifter.offset_days(identity)
        self._collect_identifiers(compiled)
        stack: list[tuple[dict[int, _El], str, int, bool]] = [(elements, "", 0, False)]
        while stack:
            self._dataset(*stack.pop(), stack)
        self._safety_net()
        if _PIXEL_REPRESENTATION in elements:  # pydicom reads it when mark() adds a sequence
            self._value(elements[_PIXEL_REPRESENTATION])
        return self._encode(meta, meta_end, compiled.marks[self.implicit])

    def _report_policy(self) -> None:
        """engine.report_policy, for the instances it keeps without reading sequences."""
        elements = self.elements
        if _CONTENT_SEQUENCE in elements or _ENCAPSULATED_DOCUMENT in elements:
            raise NotCovered("report-bearing object")
        sop = str(self._value(elements[_SOP_CLASS_UID], reads=False)) if _SOP_CLASS_UID in elements else ""
        modality = str(self._value(elements[_MODALITY], reads=False)).upper() if _MODALITY in elements else ""
        if (sop == KEY_OBJECT_SELECTION or modality in ("KO", "PR")
                or sop.startswith((PRESENTATION_STATE_PREFIX, ENCAPSULATED_DOCUMENT_PREFIX))):
            raise NotCovered("report-bearing object")
        if is_report_bearing(self.top) is not None:  # reads (decodes) what it reads in the engine
            raise NotCovered("report-bearing object")

    def _collect_identifiers(self, compiled: _Compiled) -> None:
        for tag, el in self.elements.items():
            if self.implicit:
                self._resolve(el, self.elements)
            if compiled.is_identifier_source(tag, el.vr):
                collect_identifier(self.identifiers, tag, el.vr, self._value(el))

    def _dataset(self, elements: dict[int, _El], path: str, depth: int, clean: bool, stack: list) -> None:
        creators: dict[tuple[int, int], _El] = {}
        top = elements is self.elements
        for tag, el in elements.items():
            group, element = tag >> 16, tag & 0xFFFF
            if element == 0:
                el.fate = DROP
            elif group & 1:
                if 0x10 <= element <= 0xFF:
                    creators[(group, element)] = el
                else:
                    self._private(elements, el, path)
            else:
                self._standard(el, path, depth, clean, stack)
        for el in creators.values():
            el.fate = DROP  # no private block is kept here (see _private)
        pixel_representation = elements.get(_PIXEL_REPRESENTATION)
        if (not top and pixel_representation is not None and pixel_representation.fate == KEEP
                and any(el.vr == "SQ" and el.fate == NEW for el in elements.values())):
            pixel_representation.fate = DECODED  # pydicom reads it when a sequence is set in the item

    def _recurse(self, el: _El, path: str, depth: int, clean: bool, stack: list) -> None:
        if depth + 1 > MAX_SEQUENCE_DEPTH:
            raise NotCovered("deep nesting")
        el.fate = WALKED
        for i, item in enumerate(el.items):
            stack.append((item.elements, f"{path}[{i}]/", depth + 1, clean))

    def _private(self, elements: dict[int, _El], el: _El, path: str) -> None:
        tag = el.tag
        group, block = tag >> 16, (tag >> 8) & 0xFF
        creator = elements.get((group << 16) | block) if block >= 0x10 else None
        if creator is not None:
            name = str(self._value(creator) or "")
            if self.engine.safe_private is not None and name and self.engine.safe_private.is_safe(name, tag):
                raise NotCovered("a safe private attribute is kept")
        el.fate = DROP
        self.report.add(f"{path}({group:04X},{tag & 0xFFFF:04X})", "X", self.engine.table.private.describe())

    def _standard(self, el: _El, path: str, depth: int, clean: bool, stack: list) -> None:
        tag = el.tag
        if self.implicit:
            self._resolve(el)
        vr = el.vr
        rule = self.exact.get(tag) or self.engine.table.lookup(tag)
        here = path + _label(tag)
        if rule is None:
            self._unlisted(el, here, depth, clean, stack)
            return
        action = rule.action
        if vr in _AMBIGUOUS and action not in ("K", "X"):
            raise NotCovered("an action on a value of ambiguous VR")
        if action == "K":
            self._keep(el, here, depth, clean, stack, rule)
            return
        if tag in (PATIENT_ID, PATIENT_NAME):
            pseudonyms = self.engine.pseudonyms
            self._set(el, pseudonyms.patient_id(self.identity) if tag == PATIENT_ID
                      else pseudonyms.patient_name(self.identity))
            self.report.add(here, "D", PSEUDONYM_RULE)
            return
        if vr == "PN":
            value = self._value(el)
            if value:
                self.identifiers.add_person_name(str(value))
        elif action in ("X", "Z", "D") or (action == "U" and vr not in ("SQ", "UI")):
            self._note_removed(el, here, action, rule)
        if action == "X":
            el.fate = DROP
            self.report.add(here, action, rule.describe())
            return
        if action == "Z":
            self._set(el, NO_ITEMS if vr == "SQ" else None)
        elif action == "D" or (action == "U" and vr not in ("SQ", "UI")):
            self._dummy(el)
        elif action == "U":
            if vr == "SQ":
                self._recurse(el, here, depth, clean, stack)
            else:
                self._remap(el)
        else:
            action = self._clean(el, here, depth, stack)
        self.report.add(here, action, rule.describe())

    def _note_removed(self, el: _El, here: str, action: str, rule) -> None:
        """engine._note_removed; values too short to be hunted (removed.MIN_LENGTH) are passed by."""
        if el.vr in REMOVED_TEXT_VRS:
            if el.end - el.start >= MIN_LENGTH:
                self.removed.add(self._text(el), Removal(here, action, rule.describe()))
        elif el.vr == "SQ":
            removal = None
            items = list(el.items)
            while items:
                item = items.pop()
                for inner, inner_el in item.elements.items():
                    if self.implicit:
                        self._resolve(inner_el, item.elements)
                    if inner_el.vr == "SQ":
                        items.extend(inner_el.items)
                    elif inner_el.vr in REMOVED_TEXT_VRS and not inner >> 16 & 1:
                        removal = removal or Removal(here, action, rule.describe())
                        self.removed.add(self._text(inner_el), removal)

    def _keep(self, el: _El, here: str, depth: int, clean: bool, stack: list, rule) -> None:
        vr = el.vr
        if vr == "SQ":
            self._recurse(el, here, depth, clean, stack)
        elif vr in SCANNED_VRS:
            self.kept_text.append((el, here))
        residual = self.report.residual
        if rule.source.startswith("profile override"):
            residual["retained by profile override"].add(here)
        elif rule.source != "E.1-1 basic":
            residual[f"retained by {rule.source}"].add(here)
        if vr in ("DA", "DT"):
            residual["dates (full)"].add(here)
        self.report.add(here, "K", rule.describe())

    def _unlisted(self, el: _El, here: str, depth: int, clean: bool, stack: list) -> None:
        vr = el.vr
        if vr == "SQ":
            self._recurse(el, here, depth, clean, stack)
            return
        if vr not in SCANNED_VRS and vr not in ("UI", "DA", "DT"):
            return  # numbers, codes, binary values: kept as read
        if self._empty(el):
            return
        if vr in SCANNED_VRS and not clean:
            self.kept_text.append((el, here))
            if vr in ("ST", "LT", "UT", "UC"):
                self.report.residual["free text (scanned by the safety net)"].add(here)
            return
        if vr not in ("UI", "DA", "DT") and not (clean and vr in SCANNED_VRS):
            return
        if vr == "UI":
            if not self.engine.retain_uids and self._remap(el):
                self.report.add(here, "U", "unlisted instance UID remapped to keep references consistent")
            elif self.engine.retain_uids:
                self._value(el)
        elif vr in ("DA", "DT"):
            value = self._value(el)
            if not self.engine.full_dates:
                self._shift(el, value)
                self.report.add(here, "C", "unlisted date shifted by the patient's offset")
                self.report.residual["dates (shifted)"].add(here)
        else:
            self._clean_text(self._value(el))
            self.kept_text.append((el, here))

    # -- actions --------------------------------------------------------------------------------

    def _dummy(self, el: _El) -> None:
        if el.vr == "UI":
            self._remap(el)
            return
        value = ONE_EMPTY_ITEM if el.vr == "SQ" else _dummy(el.vr)
        if value is None:
            el.fate = DROP
        else:
            self._set(el, value)

    def _remap(self, el: _El) -> bool:
        new = self.engine.uids.remap_value(self._value(el))
        if new is not None:
            self._set(el, new)
        return new is not None

    def _shift(self, el: _El, value) -> None:
        self._set(el, shifted_value(value, el.vr, self.days))

    def _clean(self, el: _El, here: str, depth: int, stack: list) -> str:
        vr = el.vr
        if vr == "SQ":
            self._recurse(el, here, depth, True, stack)
            return "C"
        value = self._value(el)
        if vr in ("DA", "DT"):
            if not self.engine.modified_dates:
                self._set(el, None)
                return "Z"
            self._shift(el, value)
            self.report.residual["dates (shifted)"].add(here)
        elif vr == "PN":
            self._set(el, _dummy("PN"))
            return "D"
        elif vr in SCANNED_VRS:
            self._clean_text(value)
            self.kept_text.append((el, here))
        elif vr == "UI":
            self._remap(el)
        elif vr in BINARY_VRS:
            el.fate = DROP
            return "X"
        return "C"

    def _clean_text(self, value) -> None:
        """engine._clean_text when nothing is found; anything found goes to the engine."""
        values = value if isinstance(value, (list, MultiValue)) else [value]
        for v in values:
            if clean_text(str(v), self.identifiers)[1]:
                raise NotCovered("cleaning changes a value")

    # -- after the walk -------------------------------------------------------------------------

    def _safety_net(self) -> None:
        identifiers, removed = self.identifiers.regex, self.removed
        if identifiers is None and not removed:
            return
        for el, here in self.kept_text:
            text = self._text(el)
            if text and ((identifiers is not None and identifiers.search(text)) or removed.found_in(text)):
                self._net_hit(el, here)

    def _net_hit(self, el: _El, here: str) -> None:
        value = self._value(el)
        if isinstance(value, bytes):
            raise NotCovered("binary value hit by the safety net")
        same, new = net_verdict(self.identifiers, self.removed, value, el.tag, here, self.report)
        if same == "X":
            el.fate = DROP
        elif same == "Z":
            self._set(el, None)
        elif same is not None:
            self._dummy(el)
        elif new is not None:
            self._set(el, new)

    def _encode(self, meta: dict[int, _El], meta_end: int, marks: list[tuple[int, bytes]]) -> bytes:
        """The file the engine and files.encode() write: preamble, file meta, data set."""
        report, top = self.report, self.top
        sop = self.elements[SOP_INSTANCE_UID]
        new_sop = self._current(sop)
        if not isinstance(new_sop, str):
            raise NotCovered("more than one SOP Instance UID")
        sop_class = top.get("SOPClassUID")
        out = bytearray(_file_meta(self.data, meta, meta_end, new_sop, sop_class))
        try:
            self._write(self.elements, out, marks)
        except encoder.Unsupported:
            raise NotCovered("a value the encoder leaves to pydicom") from None
        report.sop_class_uid = str(sop_class) if sop_class is not None else ""
        report.sop_instance_uid = str(new_sop)
        report.patient_pseudonym = self.engine.pseudonyms.patient_id(self.identity)
        return bytes(out)

    def final(self, tag: int, default: str) -> str:
        """``str(ds.get(keyword, default))`` of the de-identified data set."""
        el = self.elements.get(tag)
        if el is None or el.fate == DROP:
            return default
        return str(self._current(el, reads=False))

    def _write(self, elements: dict[int, _El], out: bytearray, extra: list[tuple[int, bytes]] = ()) -> None:
        data, encodings, implicit = self.data, self.encodings, self.implicit
        pending = list(extra)
        for tag, el in elements.items():
            while pending and pending[0][0] < tag:
                out += pending.pop(0)[1]
            fate = el.fate
            if fate == KEEP or (fate == DECODED and self._as_read(el)):
                out += data[el.head:el.end]
            elif fate == WALKED:
                out += data[el.head:el.start]
                body = len(out)
                for item in el.items:
                    self._write_item(item, out)
                if el.undefined:
                    out += encoder._SEQUENCE_DELIMITER
                else:
                    _pack_into_ul(out, body - 4, len(out) - body)
            elif fate == NEW:
                out += _encoded(tag, el.vr, el.new, encodings, implicit)
            elif fate == DECODED:
                encoder._element(tag, self._convert(el), implicit, encodings, out)
        for _, chunk in pending:
            out += chunk

    def _write_item(self, item: _Item, out: bytearray) -> None:
        out += encoder._ITEM
        start = len(out)
        self._write(item.elements, out)
        if item.undefined:
            out += encoder._ITEM_DELIMITER
        else:
            _pack_into_ul(out, start - 4, len(out) - start)

    def _as_read(self, el: _El) -> bool:
        """True when pydicom's decoded value encodes back to the bytes as read."""
        pad = _PADDED.get(el.vr)
        if el.vr in ("DS", "IS"):
            return self._number_string(el)
        if pad is None:
            size = _REPACKED.get(el.vr)
            return size is not None and not (el.end - el.start) % size and el.tag not in _LUT_DESCRIPTOR_TAGS
        raw = self._raw(el)
        if b"\x1b" in raw:  # pydicom decodes escape sequences: the value is not the bytes as read
            return False
        stripped = raw.rstrip(b" \0")
        if len(stripped) % 2:
            stripped += pad
        if stripped != raw:
            return False
        if el.vr in _PER_VALUE and b"\\" in raw:
            return b" \\" not in raw and b"\0\\" not in raw
        return True

