"""The hand-written data set encoder (deid/encoder.py) writes exactly the bytes pydicom writes.

For every corpus file, as read and after de-identification under every shipped profile, the
output of :func:`files.encode` (fast encoder) equals the output of the pydicom-based encoder it
replaces (``write_file_meta_info`` + ``write_dataset``), byte for byte, and re-reads. Synthetic
cases cover what the corpus may lack: implicit VR, undefined lengths, new sequences, character
sets, values pydicom rewrites as UN, odd cases the fast encoder leaves to pydicom.
"""

from __future__ import annotations

import copy
import io
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from corpus import (corpus_files, deep_sequence_file, make_instance, quiet_pydicom_in_test,  # noqa: F401
                    report_files, to_bytes)
from orthanc_gdpr.deid import Deidentifier, InstanceDropped, Keyring, load_profile
from orthanc_gdpr.deid import encoder, files
from orthanc_gdpr.deid.engine import DeidentificationError
from orthanc_gdpr.deid.profile import available

KEY = b"encoder-test-key-0123456789abcdef"


def old_encode(ds: Dataset) -> bytes:
    """:func:`files.encode` as it was: pydicom's writer for every case."""
    original = files.encode_part10

    def refuse(*args, **kwargs):
        raise encoder.Unsupported("reference run")

    files.encode_part10 = refuse
    try:
        return files.encode(ds)
    finally:
        files.encode_part10 = original


class Outcome:
    """How :func:`compare` went: whether the fast encoder did the work or left it to pydicom."""

    def __init__(self):
        self.fast = self.fallback = 0


def _error(e: Exception) -> str:
    """An error as the caller sees it (pydicom appends a traceback to some messages: left out)."""
    return f"{type(e).__name__}: {str(e).split('Traceback')[0]}"


def _fast_or_error(ds: Dataset, outcome: Outcome) -> bytes | str:
    """files.encode, counting whether encode_part10 (the fast path) produced the bytes."""
    original = files.encode_part10
    used = []

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        used.append(True)
        return result

    files.encode_part10 = spy
    try:
        out = files.encode(ds)
    except Exception as e:  # noqa: BLE001 - compared with the reference's error below
        return _error(e)
    finally:
        files.encode_part10 = original
    if used:
        outcome.fast += 1
    else:
        outcome.fallback += 1
    return out


def _old_or_error(ds: Dataset) -> bytes | str:
    try:
        return old_encode(ds)
    except Exception as e:  # noqa: BLE001
        return _error(e)


def compare(ds: Dataset, outcome: Outcome, pixels: bytes | memoryview = b"") -> bytes | str:
    """Encode two deep copies of ``ds``, new and old way; the bytes (or errors) must match."""
    new = _fast_or_error(copy.deepcopy(ds), outcome)
    old = _old_or_error(copy.deepcopy(ds))
    assert new == old
    if isinstance(new, bytes):  # round trip: what we wrote reads back, pixel data included
        whole = new + bytes(pixels)
        again = pydicom.dcmread(io.BytesIO(whole), force=True)
        assert again.get("SOPInstanceUID") == ds.get("SOPInstanceUID")
        for elem in again.iterall():
            elem.value  # noqa: B018 - every element decodes
        if pixels:
            assert again.PixelData == bytes(pixels)[-len(again.PixelData):]
    return new


def _inputs() -> list[Path]:
    return list(corpus_files()) + list(report_files())


def test_corpus_as_read():
    outcome = Outcome()
    for path in _inputs():
        ds, pixels = files.read_split(path.read_bytes())
        compare(ds, outcome, pixels)
    assert outcome.fast >= 0.9 * len(_inputs()), vars(outcome)


@pytest.mark.parametrize("profile_name", available())
def test_corpus_deidentified_under_every_profile(profile_name):
    engine = Deidentifier(load_profile(profile_name), Keyring(KEY))
    outcome = Outcome()
    for path in corpus_files():
        ds, pixels = files._split(io.BytesIO(data := path.read_bytes()), data, split=engine.pixel_data_untouched)
        try:
            engine.deidentify(ds)
        except (InstanceDropped, DeidentificationError):
            continue
        compare(ds, outcome, pixels)
    assert outcome.fast >= 0.9 * len(corpus_files()), vars(outcome)
    assert outcome.fast + outcome.fallback >= 150


def _reread(ds: Dataset) -> Dataset:
    return files.read_split(to_bytes(ds))[0]


def _implicit(ds: Dataset) -> Dataset:
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return _reread(ds)


def _nested() -> Dataset:
    ds = make_instance()
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "A1", "99X", "odd length"
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.3"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"
    item.ConceptNameCodeSequence = Sequence([inner, Dataset()])
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    ds.ProcedureCodeSequence = Sequence()
    ds.add_new(0x00091010, "LO", "PRIVATE_CREATOR")
    ds.add_new(0x00091011, "SQ", Sequence([copy.deepcopy(inner)]))
    return ds


def _undefined_lengths(ds: Dataset) -> Dataset:
    for elem in ds.iterall():
        if elem.VR == "SQ":
            elem.is_undefined_length = True
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
    return ds


def _values() -> Dataset:
    ds = make_instance(charset="ISO_IR 100")
    ds.StudyDescription = "Tête et cou"  # latin-1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelSpacing = [0.5, 0.25]
    ds.ImagePositionPatient = ["-1.5", "2", "3.25"]
    ds.WindowCenter = "40"
    ds.add_new(0x00181030, "LO", "odd")
    ds.add_new(0x00204000, "LT", "line one\\line two")
    ds.add_new(0x00280106, "US", 0)
    ds.add_new(0x00281050, "DS", "")
    ds.add_new(0x00189327, "FD", 12.5)
    ds.add_new(0x00181063, "DS", None)
    ds.add_new(0x00091001, "UN", b"\x01\x02\x03")
    ds.add_new(0x00540081, "US", [1, 2, 3])
    ds.add_new(0x0020000D, "UI", "1.2.3.44")
    ds.add_new(0x00080008, "CS", ["A", "BB"])
    ds.add_new(0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2")
    return ds


def _charsets() -> Dataset:
    ds = make_instance(charset=["", "ISO 2022 IR 87"])
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.StudyDescription = "山田"
    return ds


def _utf8() -> Dataset:
    ds = make_instance(charset="ISO_IR 192")
    ds.PatientName = "Müller^Jörg"
    ds.StudyDescription = "Ωμέγα"
    return ds


def _long_text() -> Dataset:
    ds = make_instance()
    ds.add_new(0x00081030, "LO", "x" * 70000)  # pydicom writes it as UN (explicit VR)
    return ds


SYNTHETIC = {
    "explicit": lambda: _reread(make_instance()),
    "implicit": lambda: _implicit(make_instance()),
    "nested, new": _nested,
    "nested, read": lambda: _reread(_nested()),
    "nested, implicit": lambda: _implicit(_nested()),
    "undefined lengths, new": lambda: _undefined_lengths(_nested()),
    "undefined lengths, read": lambda: _reread(_undefined_lengths(_nested())),
    "undefined lengths, implicit": lambda: _implicit(_undefined_lengths(_nested())),
    "values, new": _values,
    "values, read": lambda: _reread(_values()),
    "values, implicit": lambda: _implicit(_values()),
    "ISO 2022": _charsets,
    "ISO 2022, read": lambda: _reread(_charsets()),
    "UTF-8": _utf8,
    "UTF-8, read": lambda: _reread(_utf8()),
    "value too long for its VR": _long_text,
}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_as_is_and_deidentified(name):
    outcome = Outcome()
    compare(SYNTHETIC[name](), outcome)
    for profile_name in available():
        ds = SYNTHETIC[name]()
        Deidentifier(load_profile(profile_name), Keyring(KEY)).deidentify(ds)
        compare(ds, outcome)


def test_deep_nesting_same_outcome():
    ds = files.read_split(deep_sequence_file(60))[0]
    compare(ds, Outcome())
    Deidentifier(load_profile("basic").with_options(["clean-structured-content"]), Keyring(KEY)).deidentify(ds)
    compare(ds, Outcome())


def test_bare_data_set_without_file_meta():
    ds = make_instance()
    del ds.file_meta
    raw = io.BytesIO()
    pydicom.dcmwrite(raw, ds, implicit_vr=True, little_endian=True)
    compare(files.read(raw.getvalue()), Outcome())


def test_group_lengths_and_odd_file_meta():
    data = bytearray(to_bytes(make_instance()))
    ds = files.read_split(bytes(data))[0]
    ds.add_new(0x00080000, "UL", 1234)  # retired group length: dropped by both
    ds.file_meta.add_new(0x00020100, "UI", "1.2.3")
    del ds.file_meta[0x00020000]
    compare(ds, Outcome())


def test_fast_encoder_declines_rather_than_guesses():
    ds = _long_text()
    with pytest.raises(encoder.Unsupported):
        encoder.encode_part10(ds, ds.file_meta, False)
    assert files.encode(copy.deepcopy(ds)) == old_encode(copy.deepcopy(ds))


def test_header_layout():
    assert encoder._header(0x00100010, "PN", 8, False, False) == struct.pack("<HH2sH", 0x10, 0x10, b"PN", 8)
    assert encoder._header(0x00100010, "PN", 8, False, True) == struct.pack("<HHI", 0x10, 0x10, 8)
    assert encoder._header(0x7FE00010, "OB", 0, True, False) == struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OB", 0,
                                                                            0xFFFFFFFF)


def test_generated_uid_roundtrip():
    ds = make_instance()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    compare(_reread(ds), Outcome())
