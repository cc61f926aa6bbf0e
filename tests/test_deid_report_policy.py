"""Report-bearing objects: dropped by default, kept (and cleaned) only under the option that
cleans them."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from corpus import make_instance, to_bytes
from orthanc_gdpr.deid import Deidentifier, InstanceDropped, Keyring, deidentify_bytes, load_profile

KEY = b"report-policy-key-0123456789abcd"
SR = "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR
PR = "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State
PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def instance(sop_class: str, modality: str) -> Dataset:
    ds = make_instance()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.Modality = modality
    if modality == "PR":
        text = Dataset()
        text.UnformattedTextValue = "Doe John follow-up"
        annotation = Dataset()
        annotation.TextObjectSequence = Sequence([text])
        ds.GraphicAnnotationSequence = Sequence([annotation])
    if modality == "SR":
        item = Dataset()
        item.ValueType, item.TextValue = "TEXT", "Findings for John Doe"
        ds.ContentSequence = Sequence([item])
    return ds


def run(ds: Dataset, *options: str):
    engine = Deidentifier(load_profile("basic").with_options(list(options)), Keyring(KEY))
    return deidentify_bytes(engine, to_bytes(ds))


@pytest.mark.parametrize("sop_class, modality, keeps_with", [
    (SR, "SR", "clean-structured-content"),
    (PR, "PR", "clean-graphics"),
])
def test_reports_are_dropped_unless_their_cleaning_option_is_on(sop_class, modality, keeps_with):
    with pytest.raises(InstanceDropped, match="report-bearing"):
        run(instance(sop_class, modality))
    ds, data, _ = run(instance(sop_class, modality), keeps_with)
    assert b"Doe" not in data and b"John" not in data


def test_encapsulated_documents_are_always_dropped():
    for options in ((), ("clean-structured-content", "clean-graphics")):
        with pytest.raises(InstanceDropped, match="encapsulated document"):
            run(instance(PDF, "DOC"), *options)
