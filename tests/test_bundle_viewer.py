"""The offline viewer of a patient's copy: every frame of a multi-frame image, a sampled strip of
a long cine, colour shown as it is, every slice reachable by links, alt text, 200 % zoom, and
``import-bundle`` leaving the viewer's files out. Built from a real Orthanc."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from axe import axe_violations
from bundle_pages import built_copy, parse, viewer_folders, walk_by_next_links
from portability.bundle import import_bundle
from portability.bundle.notice import SiteNotice
from portability.bundle.viewer import ViewerOptions
from portability.orthanc import OrthancClient

PID = "VIEW-1"
HOSTILE = '"><img src=x onerror=alert(1)>'


def _as_patient(ds, series_number: int, description: str) -> bytes:
    ds.PatientID, ds.PatientName = PID, "Viewer^Vera"
    ds.StudyID, ds.StudyDate, ds.StudyTime = "1", "20260101", "120000"
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = series_number, description, 1
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _study() -> list[bytes]:
    study = generate_uid()
    mf = pydicom.dcmread(get_testdata_file("emri_small.dcm"))  # MR, 10 frames
    cine = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    frames = np.tile(cine.pixel_array, (9, 1, 1))  # a 90-frame cine
    cine.NumberOfFrames, cine.PixelData = len(frames), frames.astype(cine.pixel_array.dtype).tobytes()
    colour = pydicom.dcmread(get_testdata_file("SC_rgb.dcm"))
    out = []
    for n, (ds, description) in enumerate(((mf, HOSTILE), (cine, "cine"), (colour, "colour")), start=1):
        ds.StudyInstanceUID = study
        out.append(_as_patient(ds, n, description))
    return out


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return built_copy(tmp_path_factory.mktemp("viewer"), _study(), PID,
                      site=SiteNotice(controller="St. Example", languages=("fr", "en")),
                      viewer=ViewerOptions(size=256, quality=80, max_frames=30))


def test_every_frame_a_sampled_strip_and_colour(copy):
    _, root = copy
    mf, cine, colour = viewer_folders(root)
    assert len(list(mf.glob("D*.JPG"))) == 10  # every frame of a 10-frame image
    assert len(list(cine.glob("D*.JPG"))) == 30  # 90 frames, max 30: every 3rd
    assert "Une trame sur 3 est montrée." in (cine / "D00001.HTM").read_text()
    assert "trame 4 sur 90" in (cine / "D00002.HTM").read_text()
    assert [p.name for p in colour.glob("*.JPG")] == ["D00001.JPG"]  # colour: one view, as it is
    with Image.open(colour / "D00001.JPG") as im:
        assert im.mode == "RGB" and im.size == (100, 100)
    with Image.open(mf / "D00001.JPG") as im:
        assert im.mode == "L" and np.asarray(im).std() > 10


def test_pages_link_every_slice_escape_dicom_values_and_name_each_image(copy):
    _, root = copy
    mf = viewer_folders(root)[0]
    index = parse(mf / "DINDEX.HTM")
    assert [a["href"] for a in index.links if a["href"].startswith("D0")] == [f"D{k:05d}.HTM" for k in range(1, 11)]
    page = parse(mf / "D00003.HTM")
    keys = {a.get("accesskey"): a["href"] for a in page.links if a.get("accesskey")}
    assert keys == {"h": "../../INDEX.HTM", "p": "D00002.HTM", "n": "D00004.HTM", "i": "DINDEX.HTM"}
    assert page.images == [{"src": "D00003.JPG", "width": "64", "height": "64",
                            "alt": "Image MR, HEAD, série 1, image 3 sur 10, vue standard"}]
    text = (mf / "D00003.HTM").read_text()
    assert HOSTILE not in text and "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert "Viewer" not in text.split("<title>")[1].split("</title>")[0]  # no patient name in titles


def test_import_bundle_uploads_the_dicom_only(copy, orthanc):
    result, _ = copy
    with zipfile.ZipFile(result.path) as zf:
        assert any(n.endswith(".JPG") for n in zf.namelist())
    summary = import_bundle(result.path, OrthancClient(orthanc.url, (orthanc.username, orthanc.password)))
    assert len(orthanc.get_json("/instances")) == 3, summary


def test_viewer_reads_in_order_works_at_200_percent_zoom_and_passes_axe(copy, browser):
    _, root = copy
    for folder in viewer_folders(root):
        total = len(list(folder.glob("D*.JPG")))
        assert len(walk_by_next_links(browser, folder / "D00001.HTM")) == total
    browser.driver.set_window_size(640, 1000)  # 1280 px wide at 200 % zoom
    for page in (root / "INDEX.HTM", viewer_folders(root)[0] / "D00002.HTM", viewer_folders(root)[1] / "DINDEX.HTM"):
        browser.driver.get(page.as_uri())
        browser.check(f"zoom-200-{page.parent.name}-{page.name}")
        assert browser.driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"), f"{page}: horizontal scrolling"
        assert axe_violations(browser.driver) == [], page
    # Reading order (DOM order, nothing positioned): heading, position, image, then the links.
    browser.driver.get((viewer_folders(root)[0] / "D00002.HTM").as_uri())
    order = browser.driver.execute_script(
        "return Array.from(document.querySelectorAll('main h1, main p.position, main img, main nav'))"
        ".map(e => e.tagName);")
    assert order == ["H1", "P", "IMG", "NAV"]  # (an MR: no other windows to offer)


@pytest.mark.parametrize("signed, photometric", [(False, "MONOCHROME2"), (True, "MONOCHROME2"), (False, "MONOCHROME1")])
def test_viewer_tables_give_exactly_what_render_gives(signed, photometric):
    """The viewer windows a frame by a table of ``render.to_8bit``: pixel for pixel the same."""
    import numpy as np
    from pydicom.dataset import Dataset

    from orthanc_gdpr.pixels.render import render
    from portability.bundle.viewer import CT_WINDOWS, _pictures

    ds = Dataset()
    ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "CT", photometric, 1
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 12, int(signed)
    ds.RescaleSlope, ds.RescaleIntercept = 1, (0 if signed else -1024)
    ds.WindowCenter, ds.WindowWidth = 100, 700  # its own window (an automatic one is estimated)
    rng = np.random.default_rng(5)
    frame = (rng.integers(-1024, 3000, (64, 64)) if signed else rng.integers(0, 4096, (64, 64)))
    frame = frame.astype(np.int16 if signed else np.uint16)
    pictures = _pictures(ds, frame, CT_WINDOWS)
    assert set(pictures) == set(CT_WINDOWS)  # its own window, then every preset
    for name, picture in pictures.items():
        assert np.array_equal(np.asarray(picture), np.asarray(render(ds, frame, name if name != "default" else None))), name
