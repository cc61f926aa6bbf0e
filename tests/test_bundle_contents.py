"""What is inside a bundle: DICOMDIR (dcmftest, dciodvfy), FHIR R5 + R4B (fhir.resources and the
official JSON Schema plus required elements and code lists from the same npm packages),
INDEX.HTM (escaping; rendered in headless Chromium with thumbnails), SHA256SUMS."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bundle_pages import built_copy
from orthanc_server import make_ct_study
from portability.bundle.fhir import validate as fhir_validate

EVIL = "<script>alert(1)</script>^Eve"
FHIR_CACHE = Path.home() / ".cache" / "orthanc-gdpr" / "fhir-packages"
PACKAGES = {"R5": "hl7.fhir.r5.core@5.0.0", "R4B": "hl7.fhir.r4b.core@4.3.0"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """One bundle of a two-study patient whose name contains markup, extracted."""
    return built_copy(tmp_path_factory.mktemp("bundle"),
                      make_ct_study(6, patient_name=EVIL, patient_id="EVE-1", series=2)
                      + make_ct_study(3, patient_name=EVIL, patient_id="EVE-1", series=1, modality="MR"),
                      "EVE-1", issuer="St. Example")


def test_pdi_layout_and_dicomdir_pass_dcmftest_and_dciodvfy(bundle):
    result, root = bundle
    dicom = [n for n in result.files if n.startswith("PT")]
    assert len(dicom) == 9
    for name in dicom:
        assert all(len(c) <= 8 and c == c.upper() and "." not in c for c in name.split("/")), name
    ft = subprocess.run(["dcmftest", "DICOMDIR", *dicom], cwd=root, capture_output=True, text=True)
    assert ft.returncode == 0 and ft.stdout.count("yes:") == 10, ft.stdout + ft.stderr
    vf = subprocess.run(["dciodvfy", "DICOMDIR"], cwd=root, capture_output=True, text=True)
    report = vf.stdout + vf.stderr
    assert vf.returncode == 0 and "Error" not in report, report


def test_sha256sums_cover_every_file(bundle):
    _, root = bundle
    listed = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(listed) == files
    for name, digest in listed.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest


def _package(version: str) -> Path:
    """The official FHIR core npm package, packed once into a cache outside git."""
    spec = PACKAGES[version]
    dest = FHIR_CACHE / spec.replace("@", "-")
    if not (dest / "package" / "openapi" / "fhir.schema.json").exists():
        FHIR_CACHE.mkdir(parents=True, exist_ok=True)
        if not shutil.which("npm"):
            pytest.fail("npm is needed to fetch the FHIR core package for schema validation")
        out = subprocess.run(["npm", "pack", spec, "--silent"], cwd=FHIR_CACHE, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        tgz = FHIR_CACHE / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tgz) as tf:
            members = [m for m in tf.getmembers() if m.name == "package/openapi/fhir.schema.json"
                       or m.name.startswith(("package/StructureDefinition-", "package/ValueSet-",
                                             "package/CodeSystem-"))]
            tf.extractall(dest, members=members)  # fixed names under package/ only
        tgz.unlink()
    return dest / "package"


def _values(node, parts):
    """All values at a dotted path below ``node`` (lists flattened)."""
    nodes = [node]
    for p in parts:
        nxt = []
        for n in nodes:
            v = n.get(p) if isinstance(n, dict) else None
            if v is None:
                continue
            nxt.extend(v if isinstance(v, list) else [v])
        nodes = nxt
    return nodes


def _codes(pkg: Path, valueset_url: str) -> set[str] | None:
    vs_id = valueset_url.split("|")[0].rsplit("/", 1)[-1]
    vs = pkg / f"ValueSet-{vs_id}.json"
    if not vs.exists():
        return None
    codes = set()
    for inc in json.loads(vs.read_text()).get("compose", {}).get("include", []):
        if "concept" in inc:
            codes |= {c["code"] for c in inc["concept"]}
        elif "system" in inc and not inc.get("filter"):
            cs = pkg / f"CodeSystem-{inc['system'].rsplit('/', 1)[-1]}.json"
            if not cs.exists():
                return None

            def walk(cs_concepts):
                for c in cs_concepts:
                    codes.add(c["code"])
                    walk(c.get("concept", []))
            walk(json.loads(cs.read_text()).get("concept", []))
        else:
            return None
    return codes


def _profile_problems(pkg: Path, resource: dict) -> list[str]:
    """Required elements (min >= 1) and required-binding code lists, from the core StructureDefinition."""
    sd = json.loads((pkg / f"StructureDefinition-{resource['resourceType']}.json").read_text())
    problems = []
    for el in sd["snapshot"]["element"]:
        path = el["path"].split(".")[1:]
        if not path or "[x]" in el["path"] or path[-1] in ("id", "extension", "modifierExtension"):
            continue
        parents = _values(resource, path[:-1])
        if el.get("min", 0) >= 1:
            problems += [f"{el['path']} missing" for p in parents if isinstance(p, dict) and path[-1] not in p]
        binding = el.get("binding", {})
        if binding.get("strength") == "required" and binding.get("valueSet") and \
                [t["code"] for t in el.get("type", [])] == ["code"]:
            allowed = _codes(pkg, binding["valueSet"])
            for v in _values(resource, path):
                if allowed is not None and v not in allowed:
                    problems.append(f"{el['path']}: {v!r} not in {binding['valueSet']}")
    return problems


@pytest.mark.parametrize("version", ["R5", "R4B"])
def test_fhir_bundle_is_valid_by_fhir_resources_and_the_official_schema(bundle, version):
    import jsonschema

    result, root = bundle
    doc = json.loads((root / "FHIR" / f"{version}.JSON").read_text())
    fhir_validate(doc, version)  # fhir.resources

    pkg = _package(version)
    schema = json.loads((pkg / "openapi" / "fhir.schema.json").read_text())
    validator = jsonschema.Draft6Validator(schema)  # the schema's own dialect
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in validator.iter_errors(doc)]
    assert not errors, errors[:5]
    resources = [e["resource"] for e in doc["entry"]]
    problems = [p for r in resources for p in _profile_problems(pkg, r)]
    problems += _profile_problems(pkg, doc)
    assert not problems, problems

    types = [r["resourceType"] for r in resources]
    assert types.count("ImagingStudy") == 2 and {"Patient", "Endpoint", "Provenance"} <= set(types)
    studies = [r for r in resources if r["resourceType"] == "ImagingStudy"]
    for st in studies:
        assert st["identifier"][0]["system"] == "urn:dicom:uid"
        assert st["identifier"][0]["value"].startswith("urn:oid:1.")
        assert st["numberOfInstances"] == sum(len(s["instance"]) for s in st["series"])
        assert all(i["sopClass"]["code"] == "urn:oid:1.2.840.10008.5.1.4.1.1.2"
                   for s in st["series"] for i in s["instance"])
        assert st["started"].startswith("2004-")  # StudyDate of CT_small.dcm
    assert sum(st["numberOfInstances"] for st in studies) == result.instances


def test_every_page_escapes_dicom_values_and_has_no_scripts_or_inline_styles(bundle):
    _, root = bundle
    pages = sorted(root.rglob("*.HTM"))
    assert len(pages) > 10  # INDEX.HTM, DE.HTM, the viewer's pages
    for page in pages:
        text = page.read_text()
        assert "<script" not in text.lower() and "style=" not in text and "<style" not in text, page
        assert "Content-Security-Policy" in text and EVIL not in text, page
    text = (root / "INDEX.HTM").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "St. Example" in text
    assert 'hreflang="de"' in text
    de = (root / "IHE_PDI" / "DE.HTM").read_text()
    assert 'lang="de"' in de and "Ihre medizinischen Bilder" in de and "&lt;script&gt;" in de
    readme = (root / "README.TXT").read_text()
    assert "DICOMDIR" in readme and "IHRE MEDIZINISCHEN BILDER" in readme


def _screenshot(html: Path, png: Path, profile: Path) -> np.ndarray:
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed (scripts/setup.sh installs it)"
    profile.mkdir(parents=True, exist_ok=True)
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", "--hide-scrollbars", "--force-device-scale-factor=1",
                    f"--screenshot={png}", "--window-size=1200,1600", html.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert png.exists(), "chromium wrote no screenshot"
    return np.asarray(Image.open(png).convert("L"), dtype=np.int16)


def test_index_htm_renders_in_chromium_with_visible_thumbnails(bundle, tmp_path):
    _, root = bundle
    thumbs = sorted((root / "IHE_PDI").glob("*.PNG"))
    assert len(thumbs) == 3  # one per series
    shot = _screenshot(root / "INDEX.HTM", tmp_path / "with.png", tmp_path / "p1")
    assert shot.std() > 20, "screenshot is blank"
    # The same page without its thumbnail files: the difference is where the thumbnails were.
    bare = tmp_path / "bare"
    shutil.copytree(root, bare, ignore=shutil.ignore_patterns("*.PNG"))
    without = _screenshot(bare / "INDEX.HTM", tmp_path / "without.png", tmp_path / "p2")
    changed = np.abs(shot - without) > 30
    from PIL import Image

    w, h = Image.open(thumbs[0]).size
    assert changed.sum() > 0.5 * len(thumbs) * w * h, (changed.sum(), w, h)
