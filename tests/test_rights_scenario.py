"""Issue 10's scenario, on ``orthanc-gdpr serve`` (a real Orthanc with the plugin, the real service),
on SQLite and on PostgreSQL, with named people:

* front-desk ``alice`` (staff) files a rectification, reviewer ``rita`` approves it, and Orthanc
  answers with the new name at patient, study, series and instance level;
* clinician ``carl`` downloads a restricted patient's study for care (200), ``alice`` is refused (403);
* dpo ``dora`` erases a patient; afterwards a byte search of the whole data directory (Orthanc's
  storage and index excluded) finds none of that patient's identifiers: ID, name, birth date,
  accession number, the consent's free-text evidence (on PostgreSQL, every row of every table too);
* each step's audit record names the person.
"""
from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
import requests
import sqlalchemy as sa

from orthanc_server import make_ct_study, wait_for
from pg import throwaway_database
from test_rectification import assert_every_level_says
from test_serve import CLI, ServeProcess

pytestmark = pytest.mark.integration

OLD, NEW = "Smiht^Annabel", "Smith^Annabel"
ERASED = {"id": "SCN-ERASE-7731", "family": "Erasmus", "given": "Henrietta", "birth": "19610817",
          "accession": "ACC-ER-99871", "evidence": "paper form signed by Henrietta Erasmus at reception desk 3"}
PEOPLE = {"alice": "staff", "rita": "reviewer", "carl": "clinician", "dora": "dpo"}


PASSWORDS = {"alice": "Tulip-Harbour-Quartz-2031", "rita": "Violet-Anchor-Meadow-4417",
             "carl": "Copper-Lantern-Fjord-8862", "dora": "Saffron-Beacon-Glacier-5093"}


def password(name: str) -> str:
    return PASSWORDS[name]  # fixed, long, not the name, never starting with '-'


def study_of(patient_id: str, name: str, birth: str = "", accession: str = "", count: int = 2) -> list[bytes]:
    out = []
    for raw in make_ct_study(count, patient_id=patient_id, patient_name=name, series=1):
        ds = pydicom.dcmread(io.BytesIO(raw))
        ds.PatientBirthDate, ds.AccessionNumber = birth, accession
        buf = io.BytesIO()
        ds.save_as(buf)
        out.append(buf.getvalue())
    return out


class Scenario:
    def __init__(self, served: ServeProcess):
        self.served = served
        self.orthanc = requests.Session()
        self.orthanc.auth = served.dpo_auth  # the first dpo, seeded by serve
        self.orthanc.headers["Accept-Encoding"] = "identity"

    def upload(self, files: list[bytes]) -> str:
        ids = [self.orthanc.post(self.served.url + "/instances", data=f).json()["ID"] for f in files]
        return self.orthanc.get(f"{self.served.url}/instances/{ids[0]}/study").json()["ID"]

    def api(self, who: str, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.served.service_url + path, auth=(who, password(who)), timeout=60, **kw)

    def wait(self, who: str, path: str, states: tuple[str, ...]) -> dict:
        return wait_for(lambda: (x := self.api(who, "GET", path).json()).get("status") in states and x, 90,
                        message=f"{path} in {states}")

    def records(self, event: str) -> list[dict]:
        return self.api("dora", "GET", "/api/audit/records", params={"event": event}).json()


class OrthancView:
    """What ``assert_every_level_says`` needs: Orthanc's REST API as admin."""

    def __init__(self, s: Scenario):
        self.s = s

    def get(self, path, **kw):
        return self.s.orthanc.get(self.s.served.url + path, **kw)

    def get_json(self, path, **kw):
        return self.get(path, **kw).json()

    def post_json(self, path, body):
        return self.s.orthanc.post(self.s.served.url + path, json=body).json()


@pytest.fixture(params=["sqlite", "postgresql"])
def scenario(request, tmp_path):
    env = {}
    if request.param == "postgresql":
        env["ORTHANC_GDPR_SERVICE_DATABASE_URL"] = request.getfixturevalue("scenario_pg_url")
    served = ServeProcess(tmp_path / "data", env)
    try:
        served.start()
        served.wait_service()
        for name, role in PEOPLE.items():
            add = subprocess.run([*CLI, "users", "add", name, "--role", role, "--password-stdin",
                                  "--data-dir", str(served.data_dir)], input=password(name) + "\n", text=True,
                                 capture_output=True, env=served.env, timeout=60)
            assert add.returncode == 0, add.stderr
        yield Scenario(served)
    finally:
        served.stop()


@pytest.fixture(scope="module")
def scenario_pg_url():
    with throwaway_database("scenario") as url:
        yield url


def test_people_rectify_restrict_and_erase_and_the_erased_patient_leaves_no_trace(scenario, tmp_path):
    s = scenario
    # ---- 1. Rectification: alice files, rita approves; Orthanc answers with the new name at every level.
    s.upload(study_of("SCN-RECT-1", OLD))
    r = s.api("alice", "POST", "/api/rectifications", json={
        "patient_id": "SCN-RECT-1", "evidence": "passport seen at the desk",
        "changes": [{"attribute": "PatientName", "current": OLD, "proposed": NEW}]})
    assert r.status_code == 201, r.text
    rect = r.json()
    assert s.api("alice", "POST", f"/api/rectifications/{rect['id']}/decision",
                 json={"approve": True, "reason": "self-approval"}).status_code in (403, 409)
    assert s.api("rita", "POST", f"/api/rectifications/{rect['id']}/decision",
                 json={"approve": True, "reason": "identity and evidence checked"}).status_code == 200
    assert s.wait("rita", f"/api/rectifications/{rect['id']}", ("applied", "failed"))["status"] == "applied"
    view = OrthancView(s)
    assert_every_level_says(view, {"PatientName": NEW}, {"PatientName": OLD})

    # ---- 2. Restriction: care by the clinician passes, anyone else is refused.
    restricted = s.upload(study_of("SCN-RESTR-2", "Restricted^Rosa"))
    assert s.api("alice", "POST", "/api/flags", json={"patient_id": "SCN-RESTR-2", "kind": "restriction",
                                                      "reason": "accuracy contested"}).status_code == 201
    carl = requests.get(f"{s.served.url}/studies/{restricted}/archive", params={"purpose": "care"},
                        auth=("carl", password("carl")), timeout=60)
    assert carl.status_code == 200 and carl.content[:2] == b"PK", carl.text[:300]
    alice = requests.get(f"{s.served.url}/studies/{restricted}/archive", params={"purpose": "care"},
                         auth=("alice", password("alice")), timeout=60)
    assert alice.status_code == 403

    # ---- 3. Erasure by dora of a patient with a consent, a download and an access bundle.
    erase_study = s.upload(study_of(ERASED["id"], f"{ERASED['family']}^{ERASED['given']}", ERASED["birth"],
                                    ERASED["accession"], count=3))
    assert s.api("alice", "POST", "/api/consents", json={"patient_id": ERASED["id"], "purpose": "research",
                                                         "evidence": ERASED["evidence"]}).status_code == 201
    assert s.orthanc.get(f"{s.served.url}/gdpr/studies/{erase_study}/archive").status_code == 200
    assert requests.get(f"{s.served.url}/studies/{erase_study}/archive", params={"purpose": "care"},
                        auth=("carl", password("carl")), timeout=60).status_code == 200  # identified, for care
    req = s.api("alice", "POST", "/requests", json={"kind": "access", "patient_id": ERASED["id"]}).json()
    assert s.api("rita", "POST", f"/requests/{req['id']}/identity", json={"method": "id-card-in-person"}).status_code == 200
    job = s.api("alice", "POST", f"/requests/{req['id']}/bundle").json()
    assert s.wait("alice", f"/jobs/{job['id']}", ("done", "failed"))["status"] == "done"
    bundles = s.served.data_dir / "service" / "bundles"
    assert any(bundles.iterdir())

    e = s.api("alice", "POST", "/api/erasures", json={"patient_id": ERASED["id"],
                                                      "grounds": f"Art. 17(1)(b), asked by {ERASED['given']}"}).json()
    assert s.api("dora", "POST", f"/api/erasures/{e['id']}/decision",
                 json={"grant": True, "reason": "no retention duty left"}).status_code == 200
    done = s.wait("dora", f"/api/erasures/{e['id']}", ("erased", "failed"))
    assert done["status"] == "erased" and done["patient_id"] == "" and done["patient_pseudonym"], done
    assert ERASED["id"] not in [view.get_json(f"/patients/{p}")["MainDicomTags"]["PatientID"]
                                for p in view.get_json("/patients")]
    assert not list(bundles.glob("*.zip"))
    assert s.api("dora", "GET", "/api/audit/verify").json()["intact"] is True
    # Art. 19: the people who took the patient's data away (de-identified, and identified for care) get notices.
    told = {(n["recipient"], n["action"], n["state"])
            for n in s.api("alice", "GET", "/api/notices", params={"right": "erasure"}).json()}
    assert {("user:dpo", "notice", "to-send"), ("user:carl", "notice", "to-send")} <= told, told

    # ---- 4. Each step's audit record names the person (and the role).
    def actor(event: str) -> tuple[str, str]:
        rec = s.records(event)[-1]
        return rec["actor"], rec.get("actor_role")

    assert actor("rectification.requested") == ("alice", "staff")
    assert actor("rectification.approved") == ("rita", "reviewer")
    assert actor("restriction.recorded") == ("alice", "staff")
    assert actor("erasure.requested") == ("alice", "staff")
    assert actor("erasure.granted") == ("dora", "dpo")
    assert s.api("dora", "POST", "/api/audit/ingest").status_code == 200  # the plugin's records, in the one store
    plugin = s.api("dora", "GET", "/api/audit/records", params={"source": "plugin"}).json()
    assert any(r["event"] == "export" and (r["origin"]["user"], r["origin"]["role"], r["origin"]["purpose"])
               == ("carl", "clinician", "care") for r in plugin)
    assert any(r["event"] == "export.refused" and (r["origin"]["user"], r["origin"]["role"]) == ("alice", "staff")
               for r in plugin)
    # The erased patient's records are still there, by pseudonym, and closed for good; the rectified
    # patient's are found by patient and read in full.
    granted = s.records("erasure.granted")[-1]
    assert granted["patient_pseudonym"] == done["patient_pseudonym"] and granted.get("erased") is True
    mine = s.api("dora", "POST", "/api/audit/patient-records", json={"patient_id": "SCN-RECT-1"}).json()
    applied = [r for r in mine if r["event"] == "rectification.applied"]
    assert len(applied) == 1 and applied[0]["old_values"] == {"PatientName": OLD}
    gone = s.api("dora", "POST", "/api/audit/patient-records", json={"patient_id": ERASED["id"]}).json()
    assert {r["event"] for r in gone} >= {"erasure.granted", "erasure.done", "erasure.forgotten"}
    assert all(r.get("erased") for r in gone if "sealed" in r) and not any("patient_id" in r for r in gone)

    # ---- 5. The byte search: nothing of the erased patient in the data directory.
    time.sleep(1.0)  # let the service's and Orthanc's logs be flushed
    needles = [ERASED["id"], ERASED["family"], ERASED["given"], ERASED["birth"], ERASED["accession"],
               ERASED["evidence"], ERASED["family"].upper(), ERASED["given"].upper()]
    storage = s.served.data_dir / "storage"
    searched = 0
    for path in s.served.data_dir.rglob("*"):
        if not path.is_file() or storage in path.parents:
            continue
        data = path.read_bytes()
        searched += 1
        for needle in needles:
            assert needle.encode() not in data, f"{needle!r} still in {path.relative_to(s.served.data_dir)}"
    assert searched >= 8  # service DB (+ WAL), logs, plugin queue and audit log, configuration
    # Orthanc deleted the patient's files (its index, left out above, is docs/ERASURE.md's business).
    for path in storage.rglob("*"):
        if path.is_file() and not path.name.startswith("index"):
            assert ERASED["id"].encode() not in path.read_bytes(), path.name
    url = s.served.env.get("ORTHANC_GDPR_SERVICE_DATABASE_URL")
    if url:
        engine = sa.create_engine(url)
        with engine.connect() as c:
            tables = [t for (t,) in c.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
            for table in tables:
                text = "\n".join(r for (r,) in c.execute(sa.text(f'SELECT t::text FROM "{table}" t')))
                for needle in needles:
                    assert needle not in text, f"{needle!r} still in table {table}"
        engine.dispose()
