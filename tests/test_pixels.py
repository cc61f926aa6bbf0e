"""Clean Pixel Data, Clean Graphics, report-bearing objects and defacing (orthanc_gdpr.pixels)."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels.utils import pack_bits
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pixel_corpus import GROUPS, LAYOUTS, head_phantom, masked_map, measure, package_files, rendered_cases, reread  # noqa: E402

from orthanc_gdpr.pixels import (  # noqa: E402
    MaskRules,
    PixelCleaningError,
    clean_graphics,
    clean_pixel_data,
    deface_volume,
    is_report_bearing,
)
from orthanc_gdpr.deid import DeidentificationError, Deidentifier, Keyring, deidentify_bytes, load_profile  # noqa: E402
from orthanc_gdpr.pixels import cores, graph_cache, model_graph, text_detection  # noqa: E402
from orthanc_gdpr.pixels.codecs import decode  # noqa: E402
from orthanc_gdpr.pixels.masks import _parse  # noqa: E402
from orthanc_gdpr.pixels.previews import TEXT_REGION_COLOUR, previews  # noqa: E402
from orthanc_gdpr.pixels.ultrasound import region_boxes  # noqa: E402

NO_RULES = MaskRules(())


def _fhws(ds: Dataset, arr: np.ndarray) -> np.ndarray:
    """Pixels as (frames, rows, columns, samples)."""
    return arr.reshape(int(ds.get("NumberOfFrames") or 1), int(ds.Rows), int(ds.Columns), int(ds.SamplesPerPixel))


def _pixel_module(ds: Dataset) -> None:
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    assert arr.shape[:3 if frames > 1 else 2] == ((frames,) if frames > 1 else ()) + (ds.Rows, ds.Columns)
    assert ds.HighBit == ds.BitsStored - 1
    assert (arr.shape[-1] == 3) == (ds.SamplesPerPixel == 3)


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory) -> list[tuple]:
    """Every rendered case cleaned once: (case, score, report, re-read output)."""
    out = tmp_path_factory.mktemp("corpus")
    results = []
    for case in rendered_cases():
        before = np.array(decode(case.ds))
        report = clean_pixel_data(case.ds, masks=NO_RULES)
        after_ds = reread(case.ds, out / f"{case.name}.dcm")
        after = decode(after_ds)
        masked = masked_map(before.shape[1:3], report.boxes)
        results.append((case, measure(case, before, after, masked), report, after_ds))
    return results


@pytest.mark.parametrize("group", GROUPS)
def test_rendered_text_is_masked_and_the_anatomy_kept(group: str, corpus_results) -> None:
    """Per modality group: >= 98 % of text lines masked; <= 0.5 % of the pixels outside the
    text boxes changed on average, and no image above 2 %."""
    results = [(c, s) for c, s, _, _ in corpus_results if c.group == group and c.lines]
    lines = sum(s.lines for _, s in results)
    masked = sum(s.lines_masked for _, s in results)
    outside = [s.outside_changed for _, s in results]
    print(f"\n{group}: {len(results)} images, {masked}/{lines} text lines masked, pixels changed outside "
          f"the text boxes: mean {np.mean(outside):.4%}, max {max(outside):.4%}")
    assert lines >= 10
    assert masked >= 0.98 * lines
    assert np.mean(outside) <= 0.005
    assert max(outside) <= 0.02


def test_images_without_text_are_unchanged_byte_for_byte(corpus_results) -> None:
    clean = [(c, s, r) for c, s, r, _ in corpus_results if not c.lines]
    assert {c.group for c, _, _ in clean} == set(GROUPS)
    for case, score, report in clean:
        assert score.pixels_changed == 0 and report.text_regions == [], case.name
        assert report.text_detection["model"].startswith("PP-OCRv4")


def test_cleaned_output_is_valid_and_says_how_text_was_found(corpus_results) -> None:
    for case, _, report, after in corpus_results:
        _pixel_module(after)
        assert after.BurnedInAnnotation == "NO"
        assert any(i.CodeValue == "113101" for i in after.DeidentificationMethodCodeSequence)
        assert "text-detector" in report.methods and report.text_region_count == len(report.text_regions)
        assert report.text_detection["images_read"] >= 1
        frames = decode(after)
        masked = masked_map(frames.shape[1:3], report.boxes)
        if masked.any():
            assert all(np.all(fr[masked] == fr[masked].min()) for fr in frames), case.name


def test_ultrasound_is_blanked_outside_its_regions() -> None:
    ds = Dataset()
    ds.Modality, ds.Rows, ds.Columns = "US", 100, 120
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 10, 20
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 109, 89
    ds.SequenceOfUltrasoundRegions = [region]
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.6.1", generate_uid()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.set_pixel_data(np.full((100, 120), 200, np.uint8), "MONOCHROME2", 8)
    report = clean_pixel_data(ds, ocr=False, masks=NO_RULES)
    arr = ds.pixel_array
    assert region_boxes(ds) == [(10, 20, 110, 90)]
    assert "us-regions" in report.methods
    assert (arr[20:90, 10:110] == 200).all() and arr[:20].max() == 0 and arr[:, :10].max() == 0


def test_package_ultrasound_files_get_their_banner_masked() -> None:
    files = [f for f in package_files() if f.name in ("GREYSCALE_IMAGE.dcm", "US1_J2KR.dcm", "RGB_IMAGE.dcm")]
    if not files:
        pytest.skip("pydicom-data / deid-data not installed")
    for path in files:
        ds = pydicom.dcmread(path)
        report = clean_pixel_data(ds, masks=NO_RULES)
        assert report.boxes or "us-regions" in report.methods, path.name
        assert report.masked_pixels > 0


def _synthetic(syntax: str, frames: int = 1, rgb: bool = False) -> Dataset:
    rng = np.random.default_rng(3)
    ds = Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.Manufacturer = "OT", "ACME"
    shape = ((frames,) if frames > 1 else ()) + (64, 80) + ((3,) if rgb else ())
    arr = rng.integers(30, 220, shape, dtype=np.uint8)
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.set_pixel_data(arr, "RGB" if rgb else "MONOCHROME2", 8)
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax, encoding_plugin="pylibjpeg" if syntax == RLELossless else "", generate_instance_uid=False)
    return ds


RULE = MaskRules((_parse({"name": "ACME banner", "match": {"Manufacturer": {"equals": "acme"}},
                          "boxes": [{"x": 0, "y": 0, "width": 4000, "height": 10}], "origin": "test"}),))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless])
@pytest.mark.parametrize("reencode", ["lossless", "uncompressed"])
def test_each_transfer_syntax_round_trips_with_unmasked_pixels_unchanged(syntax, reencode, tmp_path: Path) -> None:
    ds = _synthetic(syntax, frames=3, rgb=syntax == JPEG2000Lossless)
    before = ds.pixel_array.copy()
    report = clean_pixel_data(ds, ocr=False, masks=RULE, reencode=reencode)
    after = reread(ds, tmp_path / "x.dcm")
    _pixel_module(after)
    arr = _fhws(after, after.pixel_array)
    before = _fhws(after, before)
    assert report.methods == ["mask-rule:ACME banner"]
    assert (arr[:, :10] == 0).all()
    assert np.array_equal(arr[:, 10:], before[:, 10:])
    expected = ExplicitVRLittleEndian if reencode == "uncompressed" else syntax
    assert after.file_meta.TransferSyntaxUID == expected
    assert after.PhotometricInterpretation in ("RGB", "MONOCHROME2", "YBR_RCT")


@pytest.mark.parametrize("name", ["emri_small_jpeg_ls_lossless.dcm", "JPEG-LL.dcm", "emri_small_RLE.dcm",
                                  "OBXXXX1A_rle_2frame.dcm", "SC_rgb_dcmtk_ebcys2_dcmd.dcm",
                                  "color3d_jpeg_baseline.dcm", "US1_J2KR.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"])
def test_package_transfer_syntaxes_decode_mask_and_reencode(name: str, tmp_path: Path) -> None:
    try:
        import data_store
    except ImportError:
        pytest.skip("pydicom-data not installed")
    ds = pydicom.dcmread(Path(data_store.__file__).parent / "data" / name)
    ds.Manufacturer, ds.Modality = "ACME", "OT"  # OT: no ultrasound-region blanking here
    before = _fhws(ds, ds.pixel_array.copy())
    clean_pixel_data(ds, ocr=False, masks=RULE)
    after = reread(ds, tmp_path / "x.dcm")
    _pixel_module(after)
    arr = _fhws(after, after.pixel_array)
    assert (arr[:, :10] == arr[:, :10].min()).all()
    assert np.array_equal(arr[:, 10:], before[:, 10:])


def test_cine_text_found_on_static_layer_is_masked_on_every_frame(corpus_results) -> None:
    cines = [(c, s, r, a) for c, s, r, a in corpus_results if c.frames > 1 and c.lines]
    assert cines
    for case, score, report, after in cines:
        assert report.frames == case.frames and report.text_detection["images_read"] >= 2
        assert score.lines_masked == score.lines
        masked = masked_map((int(after.Rows), int(after.Columns)), report.boxes)
        assert (after.pixel_array[:, masked] == 0).all()


def test_undecodable_pixels_raise_a_clear_error() -> None:
    ds = _synthetic(ExplicitVRLittleEndian)
    ds.PixelData = b"\x00" * 10
    with pytest.raises(PixelCleaningError):
        clean_pixel_data(ds, ocr=False, masks=NO_RULES)


def test_every_modality_is_checked_unless_narrowed_and_burned_in_annotation_is_not_trusted() -> None:
    case = rendered_cases(1, 0, layouts=LAYOUTS[:1])[0]
    case.ds.BurnedInAnnotation = "NO"
    report = clean_pixel_data(copy.deepcopy(case.ds), masks=NO_RULES)
    assert report.text_region_count >= len(case.lines) > 0
    narrowed = clean_pixel_data(copy.deepcopy(case.ds), masks=NO_RULES, modalities=frozenset({"US"}))
    assert narrowed.text_detection is None and narrowed.masked_pixels == 0
    case.ds.BurnedInAnnotation = "YES"
    forced = clean_pixel_data(case.ds, masks=NO_RULES, modalities=frozenset({"US"}))
    assert forced.text_region_count == report.text_region_count


def test_a_pool_worker_runs_the_models_on_its_share_of_the_cores(monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    try:
        cores.share_cores(2)  # one of two workers on two cores: one intra-op thread per session
        models = text_detection.load_models()
        assert models.threads == 1
        assert {s.get_session_options().intra_op_num_threads for s in (models.detector, models.recognizer)} == {1}
        cores.share_cores(1)  # a single caller: the models are loaded again, on both cores
        again = text_detection.load_models()
        assert {s.get_session_options().intra_op_num_threads for s in (again.detector, again.recognizer)} == {2}
    finally:
        cores.share_cores(1)
        text_detection.unload_models()


def test_a_model_that_cannot_load_holds_the_instance_back(tmp_path: Path, monkeypatch) -> None:
    for name in (text_detection.DETECTION_MODEL, text_detection.RECOGNITION_MODEL):
        (tmp_path / name).write_bytes(b"not an onnx model")
    monkeypatch.setenv(text_detection.MODELS_ENV, str(tmp_path))
    text_detection.unload_models()
    case = rendered_cases(1, 0, layouts=LAYOUTS[:1])[0]
    case.ds.PatientID = "CORPUS1"
    data = _file_bytes(case.ds)
    before = case.ds.PixelData
    engine = Deidentifier(load_profile("basic").with_options(["clean-pixel-data"]), Keyring(b"k" * 32))
    try:
        with pytest.raises(PixelCleaningError, match="text detection model cannot be loaded"):
            clean_pixel_data(case.ds, masks=NO_RULES)
        with pytest.raises(DeidentificationError, match="text detection model cannot be loaded"):
            deidentify_bytes(engine, data)
    finally:
        text_detection.unload_models()
    assert case.ds.PixelData == before and "BurnedInAnnotation" not in case.ds


@pytest.mark.parametrize("name, shape", [(text_detection.DETECTION_MODEL, (1, 3, 96, 128)),
                                         (text_detection.RECOGNITION_MODEL, (2, 3, 48, 96))])
def test_the_fused_graphs_compute_what_the_shipped_ones_do(name: str, shape: tuple) -> None:
    import onnx
    import onnxruntime as ort
    shipped = (text_detection._model_dir()[0] / name).read_bytes()
    fused = model_graph.fused(shipped)
    assert len(onnx.load_from_string(fused).graph.node) < len(onnx.load_from_string(shipped).graph.node)
    x = np.random.default_rng(7).uniform(-1, 1, shape).astype(np.float32)
    outputs = [ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
               for model in (shipped, fused)]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-4)
    assert text_detection.model_version().endswith(f"{model_graph.DESCRIPTION})")


def _shipped_detector() -> tuple[bytes, str]:
    shipped = (text_detection._model_dir()[0] / text_detection.DETECTION_MODEL).read_bytes()
    return shipped, hashlib.sha256(shipped).hexdigest()


def _cached_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".onnx")


def test_a_cached_graph_is_the_fused_one_and_spares_the_rewrite(tmp_path: Path, monkeypatch) -> None:
    import onnxruntime as ort
    monkeypatch.setenv(graph_cache.CACHE_ENV, str(tmp_path / "cache"))
    shipped, sha = _shipped_detector()
    fresh = graph_cache.fused_model(shipped, sha)  # a miss: fused, then stored
    monkeypatch.setattr(model_graph, "fused", lambda model: pytest.fail("a cached graph was fused again"))
    cached = graph_cache.fused_model(shipped, sha)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 96)).astype(np.float32)
    outputs = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
               for m in (fresh, cached)]
    assert cached == fresh and np.array_equal(outputs[0], outputs[1])
    folder = tmp_path / "cache"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()] == [0o600]  # no temporary file left
    assert _cached_files(folder)[0].name.startswith(sha)


@pytest.mark.parametrize("damage", [lambda data: data[:len(data) // 2],  # cut short
                                    lambda data: data[:40] + bytes([data[40] ^ 1]) + data[41:]])  # one bit
def test_a_damaged_cached_graph_is_replaced_not_trusted(tmp_path: Path, monkeypatch, damage) -> None:
    monkeypatch.setenv(graph_cache.CACHE_ENV, str(tmp_path))
    shipped, sha = _shipped_detector()
    fresh = graph_cache.fused_model(shipped, sha)
    entry = _cached_files(tmp_path)[0]
    entry.write_bytes(damage(entry.read_bytes()))
    fused_again = []
    monkeypatch.setattr(model_graph, "fused",
                        lambda model, fuse=model_graph.fused: fused_again.append(1) or fuse(model))
    assert graph_cache.fused_model(shipped, sha) == fresh and fused_again == [1]
    assert graph_cache.fused_model(shipped, sha) == fresh and fused_again == [1]  # the replacement is used


def test_an_unusable_cache_directory_falls_back_to_fusing_in_memory(tmp_path: Path, monkeypatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    monkeypatch.setenv(graph_cache.CACHE_ENV, str(blocked / "models"))
    shipped, sha = _shipped_detector()
    assert graph_cache.fused_model(shipped, sha) == model_graph.fused(shipped)


def test_a_process_with_the_graphs_cached_loads_them_without_onnx(tmp_path: Path) -> None:
    env = {**os.environ, graph_cache.CACHE_ENV: str(tmp_path)}
    script = ("import sys; from orthanc_gdpr.pixels import text_detection as t; "
              "print(t.model_version()); print('onnx' in sys.modules, 'scipy' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            .stdout.splitlines() for _ in range(2)]
    assert runs[0][0] == runs[1][0] == text_detection.model_version()
    assert runs[0][1] == "True False" and runs[1][1] == "False False"  # fused once, then read from the cache


def _file_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("image", [np.zeros((4, 300), np.uint8), np.zeros((64, 64, 2), np.uint8),
                                   np.full((64, 64), np.nan, np.float32)])
def test_an_image_the_detector_cannot_take_is_refused(image: np.ndarray) -> None:
    with pytest.raises(text_detection.UnsupportedImage):
        text_detection.find_text_regions(image)


def test_shipped_mask_rules_load_with_an_origin_each() -> None:
    rules = MaskRules.load()
    assert len(rules.rules) >= 20 and all(r.origin for r in rules.rules)


def _item(**kw) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def test_report_bearing_objects_are_recognised() -> None:
    assert is_report_bearing(_item(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.33", Modality="SR"))
    assert is_report_bearing(_item(SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1", Modality="DOC"))
    ko_text = _item(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.59", ContentSequence=[_item(ValueType="TEXT")])
    assert is_report_bearing(ko_text)
    assert is_report_bearing(_item(SOPClassUID="1.2.840.10008.5.1.4.1.1.88.59", ContentSequence=[])) is None
    pr = _item(SOPClassUID="1.2.840.10008.5.1.4.1.1.11.1",
               GraphicAnnotationSequence=[_item(TextObjectSequence=[_item(UnformattedTextValue="DOE")])])
    assert is_report_bearing(pr)
    assert is_report_bearing(_item(SOPClassUID="1.2.840.10008.5.1.4.1.1.7", ConversionType="SD"))
    assert is_report_bearing(_item(SOPClassUID="1.2.840.10008.5.1.4.1.1.2", SeriesDescription="Dose Report"))
    assert is_report_bearing(_item(SOPClassUID="1.2.840.10008.5.1.4.1.1.2", Modality="CT")) is None


def _with_text_overlay(ds: Dataset, group: int = 0x6000) -> tuple[np.ndarray, np.ndarray]:
    """Add an overlay plane with a name and ID line and a circle outline; returns the bits of
    each (text, circle)."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    text = Image.new("1", (cols, rows), 0)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 16)
    ImageDraw.Draw(text).text((10, 8), "DOE^JANE 1234567", font=font, fill=1)
    shape = Image.new("1", (cols, rows), 0)
    ImageDraw.Draw(shape).ellipse((cols // 3, rows // 3, 2 * cols // 3, 2 * rows // 3), outline=1, width=2)
    text_bits, shape_bits = np.asarray(text, np.uint8), np.asarray(shape, np.uint8)
    ds.add_new((group, 0x0010), "US", rows)
    ds.add_new((group, 0x0011), "US", cols)
    ds.add_new((group, 0x0022), "LO", "annotations")
    ds.add_new((group, 0x0040), "CS", "G")
    ds.add_new((group, 0x0050), "SS", [1, 1])
    ds.add_new((group, 0x0100), "US", 1)
    ds.add_new((group, 0x0102), "US", 0)
    ds.add_new((group, 0x3000), "OW", pack_bits(text_bits | shape_bits))
    return text_bits, shape_bits


def test_overlay_text_is_erased_and_the_rest_of_the_overlay_kept() -> None:
    case = rendered_cases(0, 1, layouts=LAYOUTS[:1])[0]
    text_bits, shape_bits = _with_text_overlay(case.ds)
    case.ds.GraphicAnnotationSequence = [_item(TextObjectSequence=[_item(UnformattedTextValue="DOE")]),
                                         _item(TextObjectSequence=[_item(UnformattedTextValue="X")],
                                               GraphicObjectSequence=[_item(GraphicType="POLYLINE")])]
    report = clean_graphics(case.ds)
    (outcome,) = report.overlays
    assert outcome.group == "6000" and outcome.action == "text masked" and outcome.text_regions
    after = case.ds.overlay_array(0x6000)
    assert not (after & text_bits).any()
    assert (after & shape_bits).sum() >= 0.9 * shape_bits.sum()
    assert report.text_objects_removed == 2
    assert len(case.ds.GraphicAnnotationSequence) == 1 and "TextObjectSequence" not in case.ds.GraphicAnnotationSequence[0]


def test_overlay_that_cannot_be_read_is_removed_and_the_report_says_why() -> None:
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm"))
    ds[0x6000, 0x0015].value = 3  # three frames in the overlay, one bitmap: not readable as text
    report = clean_graphics(ds)
    assert [(o.action, "multi-frame" in o.reason) for o in report.overlays] == [("removed", True)]
    assert not any(e.tag.group == 0x6000 for e in ds)


def test_clean_graphics_profile_keeps_a_cleaned_overlay_and_reports_it() -> None:
    case = rendered_cases(0, 1, layouts=LAYOUTS[:1])[0]
    case.ds.PatientID = "CORPUS1"
    text_bits, shape_bits = _with_text_overlay(case.ds)
    engine = Deidentifier(load_profile("basic").with_options(["clean-graphics"]), Keyring(b"k" * 32))
    _, out, report = deidentify_bytes(engine, _file_bytes(case.ds))
    after = pydicom.dcmread(io.BytesIO(out))
    bits = after.overlay_array(0x6000)
    assert not (bits & text_bits).any() and (bits & shape_bits).any()
    assert report.overlays[0]["action"] == "text masked" and report.to_dict()["overlays"][0]["text_regions"]
    basic = Deidentifier(load_profile("basic"), Keyring(b"k" * 32))
    removed = pydicom.dcmread(io.BytesIO(deidentify_bytes(basic, _file_bytes(case.ds))[1]))
    assert not any(e.tag.group == 0x6000 for e in removed)


def test_defacing_removes_the_face_and_keeps_the_brain() -> None:
    slices, regions = head_phantom()
    shuffled = slices[::2] + slices[1::2]
    before = np.stack([s.pixel_array.astype(np.int32) - 1024 for s in slices])
    report = deface_volume(shuffled)
    after = np.stack([s.pixel_array.astype(np.int32) - 1024 for s in slices])
    face, brain = regions["face"], regions["brain"]
    face_before, face_after = (before[face] > -500).sum(), (after[face] > -500).sum()
    print(f"\ndefacing: face voxels {face_before} -> {face_after}, brain voxels {brain.sum()}, removed {report.voxels_removed}")
    assert face_after < 0.05 * face_before
    assert np.array_equal(after[brain], before[brain])


def test_previews_are_written_with_the_detected_text_regions(tmp_path: Path) -> None:
    case = rendered_cases(1, 0, layouts=LAYOUTS[:1])[0]
    before = copy.deepcopy(case.ds)
    report = clean_pixel_data(case.ds, masks=NO_RULES)
    paths = previews(before, case.ds, report.boxes, tmp_path, report.text_regions)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert json.loads(paths[2].read_text())["text_regions"] == [list(b) for b in report.text_regions] != []
    drawn = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert (drawn == TEXT_REGION_COLOUR).all(axis=-1).any()
