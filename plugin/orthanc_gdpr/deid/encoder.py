"""A fast, byte-identical replacement for pydicom's ``write_file_meta_info`` + ``write_dataset``
in the common case: little endian output (Explicit or Implicit VR) of a data set read in the
same encoding.

pydicom writes every element through a chain of small objects (a buffer per element, a context
manager, ``Tag`` conversions, property look-ups), about half of our CPU time per CT instance.
Here:

* a raw element (read from the file, never decoded) is written from its raw bytes, with a header
  built in one ``struct.pack``;
* a decoded element gets its value bytes from pydicom's own writer for its VR (the same function
  ``write_data_element`` calls), except single text values in a plain single-byte character set,
  encoded here exactly as pydicom would (``str.encode``, padding to even length);
* sequences and items are written with the same defined or undefined lengths as pydicom;
* group lengths are dropped and the file meta group length is recomputed, as pydicom does.

Whatever this encoder does not cover (a VR pydicom would rewrite as UN, an ambiguous VR left for
explicit output, buffered values, odd character sets...) raises :class:`Unsupported`; any other
error is raised as well. :func:`files.encode` then encodes with pydicom instead, which produces
the very same bytes (or pydicom's own error). ``tests/test_deid_encoder.py`` proves the identity
on every corpus file under every shipped profile.
"""

from __future__ import annotations

import struct

from pydicom.charset import convert_encodings, custom_encoders, default_encoding, need_tail_escape_sequence_encodings
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, writers
from pydicom.multival import MultiValue
from pydicom.valuerep import CUSTOMIZABLE_CHARSET_VR, EXPLICIT_VR_LENGTH_32

__all__ = ["Unsupported", "encode_part10"]


class Unsupported(Exception):
    """A case this encoder leaves to pydicom."""


_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(str(v) for v in EXPLICIT_VR_LENGTH_32)
_CHARSET_VRS = frozenset(str(v) for v in CUSTOMIZABLE_CHARSET_VR)
_WRITERS = {str(vr): fn_param for vr, fn_param in writers.items()}
#: VRs pydicom writes with ``write_string`` (padding " ", default encoding) when the value is a
#: str; DA/DT/TM writers fall back to write_string for str values too.
_PLAIN_STRING_VRS = frozenset({"AE", "AS", "CS", "UR", "DA", "DT", "TM"})
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT"})
_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, _UNDEFINED)
_ITEM_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQUENCE_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_ENCAPSULATED_ITEM = b"\xfe\xff\x00\xe0"
_PIXEL_DATA = 0x7FE00010

_pack_implicit = struct.Struct("<HHI").pack
_pack_short = struct.Struct("<HH2sH").pack
_pack_long = struct.Struct("<HH2sHI").pack
_pack_undefined_short = struct.Struct("<HH2sI").pack
_pack_into_ul = struct.Struct("<I").pack_into


def _header(tag: int, vr: str | None, length: int, undefined: bool, implicit: bool) -> bytes:
    """The tag, VR and length fields exactly as ``write_data_element`` writes them."""
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return _pack_implicit(group, element, _UNDEFINED if undefined else length)
    if not vr or len(vr) != 2:
        raise Unsupported("no two-character VR for explicit VR output")
    code = vr.encode(default_encoding)
    if vr in _LONG_VRS:
        return _pack_long(group, element, code, 0, _UNDEFINED if undefined else length)
    if undefined:
        return _pack_undefined_short(group, element, code, _UNDEFINED)
    if length > 0xFFFF:
        raise Unsupported("pydicom rewrites this VR as UN")
    return _pack_short(group, element, code, length)


def _value(elem, vr: str, implicit: bool, encodings: list[str]) -> bytes:
    """The encoded value of a decoded, non-sequence element (what pydicom's writer produces)."""
    value = elem._value
    if isinstance(value, str):  # one value (pydicom splits backslash-separated strings into lists)
        if not value:
            return b""
        if vr == "UI":
            return (value + "\0" if len(value) % 2 else value).encode(default_encoding)
        if vr in _PLAIN_STRING_VRS:
            return (value + " " if len(value) % 2 else value).encode(default_encoding)
        if vr in _TEXT_VRS:
            codec = encodings[0]
            if codec not in custom_encoders and codec not in need_tail_escape_sequence_encodings:
                try:
                    data = value.encode(codec)
                except UnicodeError:
                    pass  # pydicom tries the other encodings, or replaces: its writer decides
                else:
                    return data + b" " if len(data) % 2 else data
    elif type(value) in (MultiValue, list) and value and all(isinstance(v, str) for v in value):
        if vr == "UI" or vr in _PLAIN_STRING_VRS:  # write_string / write_DA...: joined, padded
            text = "\\".join(value)
            return (text + ("\0" if vr == "UI" else " ") if len(text) % 2 else text).encode(default_encoding)
        if vr in _TEXT_VRS:  # write_text: each value encoded, then joined
            codec = encodings[0]
            if codec not in custom_encoders and codec not in need_tail_escape_sequence_encodings:
                try:
                    data = b"\\".join([v.encode(codec) for v in value])
                except UnicodeError:
                    pass
                else:
                    return data + b" " if len(data) % 2 else data
    if elem.is_buffered:
        raise Unsupported("buffered value")
    if elem.is_empty:
        return b""
    fn, param = _WRITERS[vr]
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, implicit
    if vr in _CHARSET_VRS:
        fn(out, elem, encodings=encodings)
    elif param is not None:
        fn(out, elem, param)
    else:
        fn(out, elem)
    return out.getvalue()


def _dataset(ds: Dataset, implicit: bool, parent_encoding, out: bytearray) -> None:
    """Append ``ds`` to ``out`` as ``write_dataset`` would write it."""
    convert = (implicit, True) != ds.original_encoding or ds.original_character_set != ds._character_set
    if convert:  # a data set not read in this encoding (e.g. new): what write_dataset does, in place
        ds = correct_ambiguous_vr(ds, True)
    charset = ds.get("SpecificCharacterSet", parent_encoding)
    encodings: list[str] | None = None
    elements = ds._dict
    for tag in sorted(elements, key=int):  # the same order, without BaseTag.__lt__ in Python
        if not tag & 0xFFFF and tag >> 16 > 6:
            continue  # retired group lengths are not written
        elem = elements[tag]
        if elem.is_raw and (convert or elem.value is None):
            # write_dataset reads elements with __getitem__ here (decoded), or with get_item,
            # which decodes a raw element without a value (empty, implicit VR) all the same
            elem = ds[tag]
        if elem.is_raw:
            value = elem.value
            if value is None or elem.is_buffered:
                raise Unsupported("deferred raw value")
            undefined = elem.length == _UNDEFINED
            if undefined and tag == _PIXEL_DATA and not value[:4].startswith(_ENCAPSULATED_ITEM):
                raise Unsupported("undefined length pixel data that is not encapsulated")
            out += _header(tag, elem.VR, len(value), undefined, implicit)
            out += value
            if undefined:
                out += _SEQUENCE_DELIMITER
            continue
        if encodings is None:
            encodings = convert_encodings(charset or [default_encoding])
        _element(tag, elem, implicit, encodings, out)


def _element(tag: int, elem, implicit: bool, encodings: list[str], out: bytearray) -> None:
    """Append a decoded element, as ``write_data_element`` writes it."""
    vr = elem.VR
    if vr not in _WRITERS:
        raise Unsupported(f"unknown VR {vr!r}")
    undefined = elem.is_undefined_length
    if vr == "SQ":
        out += _header(tag, vr, 0, undefined, implicit)
        body = len(out)
        for item in elem._value or ():
            _item(item, implicit, encodings, out)
        if undefined:
            out += _SEQUENCE_DELIMITER
        else:
            _pack_into_ul(out, body - 4, len(out) - body)
        return
    if undefined and tag == _PIXEL_DATA and not (isinstance(elem._value, bytes)
                                                 and elem._value[:4].startswith(_ENCAPSULATED_ITEM)):
        raise Unsupported("undefined length pixel data that is not encapsulated")
    data = _value(elem, vr, implicit, encodings)
    out += _header(tag, vr, len(data), undefined, implicit)
    out += data
    if undefined:
        out += _SEQUENCE_DELIMITER


def _item(item: Dataset, implicit: bool, encodings: list[str], out: bytearray) -> None:
    """One sequence item, as ``write_sequence_item`` writes it."""
    out += _ITEM
    start = len(out)
    _dataset(item, implicit, encodings, out)
    if getattr(item, "is_undefined_length_sequence_item", False):
        out += _ITEM_DELIMITER
    else:
        _pack_into_ul(out, start - 4, len(out) - start)


def _file_meta(meta: FileMetaDataset, out: bytearray) -> None:
    """``write_file_meta_info(fp, meta, enforce_standard=True)``."""
    validate_file_meta(meta, True)
    if "FileMetaInformationGroupLength" not in meta:
        meta.FileMetaInformationGroupLength = 0
    group = bytearray()
    _dataset(meta, False, default_encoding, group)
    if "FileMetaInformationGroupLength" in meta:
        meta.FileMetaInformationGroupLength = len(group) - 12
        first = bytearray()
        _element(0x00020000, meta[0x00020000], False, convert_encodings([default_encoding]), first)
        group[:len(first)] = first  # overwritten in place: pydicom seeks back and rewrites it
    out += group


def encode_part10(ds: Dataset, meta: FileMetaDataset, implicit: bool) -> bytes:
    """Preamble (zeros), prefix, file meta, then ``ds`` in little endian ``implicit``/explicit VR."""
    out = bytearray(128)
    out += b"DICM"
    _file_meta(meta, out)
    _dataset(ds, implicit, default_encoding, out)
    return bytes(out)
