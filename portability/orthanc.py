"""A small Orthanc REST client (requests): credentials from arguments or the URL itself."""
from __future__ import annotations

import base64
import http.client
import threading
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import requests


class OrthancError(RuntimeError):
    """Orthanc could not be reached or refused a request."""


class PatientNotFound(LookupError):
    """No such patient (or none of the chosen studies) in Orthanc."""


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``http://user:pw@host:port/`` -> (``http://host:port``, (user, pw))."""
    parts = urlsplit(url)
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts).rstrip("/"), auth


class OrthancClient:
    def __init__(self, url: str, auth: tuple[str, str] | None = None, timeout: float = 60.0) -> None:
        base, url_auth = split_credentials(url)
        self.url = base
        self.timeout = timeout
        self.session = requests.Session()
        self.session.auth = auth or url_auth
        # Orthanc gzips answers for clients that accept it: ~10x slower for DICOM files.
        self.session.headers["Accept-Encoding"] = "identity"
        # Connection pool large enough for the parallel instance downloads.
        adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=8)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Instance downloads over plain HTTP use one http.client connection per thread: requests
        # costs ~2 ms of CPU (under the GIL) per request, as much as a 0.5 MB download itself.
        parts = urlsplit(self.url)
        self._plain = parts.scheme == "http" and parts.hostname is not None
        self._host, self._port, self._prefix = parts.hostname, parts.port or 80, parts.path.rstrip("/")
        self._headers = {"Accept-Encoding": "identity", "User-Agent": "orthanc-gdpr"}
        if self.session.auth:
            user, password = self.session.auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._local = threading.local()
        self._conns: set[http.client.HTTPConnection] = set()
        self._conns_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<OrthancClient {self.url}>"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            r = self.session.request(method, self.url + path, **kwargs)
        except requests.RequestException as e:
            raise OrthancError(f"Orthanc at {self.url} unreachable ({type(e).__name__}): {e}") from e
        if r.status_code == 401:
            raise OrthancError(f"Orthanc at {self.url} refused the credentials (401)")
        return r

    def get_json(self, path: str, **kwargs: Any) -> Any:
        r = self._request("GET", path, **kwargs)
        if r.status_code == 404:
            raise PatientNotFound("Orthanc has no such resource")
        if r.status_code >= 400:
            raise OrthancError(f"GET {path} -> {r.status_code}: {r.text[:300]}")
        return r.json()

    def post_json(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        r = self._request("POST", path, json=body, **kwargs)
        if r.status_code >= 400:
            raise OrthancError(f"POST {path} -> {r.status_code}: {r.text[:300]}")
        return r.json()

    def reconstruct(self, level: str, orthanc_id: str) -> None:
        """Have Orthanc re-read the stored files of a resource and rebuild what its index keeps
        about it and its children (main DICOM tags, JSON summaries): ``POST /{level}/{id}/reconstruct``.
        Needed after a study-level modify, which leaves the patient's index entry as it was."""
        r = self._request("POST", f"/{level}/{orthanc_id}/reconstruct", json={})
        if r.status_code >= 400:
            raise OrthancError(f"POST /{level}/.../reconstruct -> {r.status_code}: {r.text[:300]}")

    def system(self) -> dict:
        return self.get_json("/system")

    # ------------------------------------------------------------------ lookup
    def find_patients(self, patient_id: str) -> list[dict]:
        return self.post_json("/tools/find", {"Level": "Patient", "Query": {"PatientID": patient_id},
                                              "Expand": True, "CaseSensitive": True})

    def resolve_patient(self, patient_id: str | None = None, orthanc_id: str | None = None) -> dict:
        """The expanded Orthanc patient for a DICOM PatientID (exact match) or an Orthanc id."""
        if orthanc_id:
            return self.get_json(f"/patients/{orthanc_id}")
        found = [p for p in self.find_patients(patient_id or "")
                 if p.get("MainDicomTags", {}).get("PatientID") == patient_id]
        if not found:
            raise PatientNotFound("no patient with this PatientID in Orthanc")
        return found[0]

    def patient_studies(self, orthanc_patient: str) -> list[dict]:
        return self.get_json(f"/patients/{orthanc_patient}/studies")

    def study_series(self, study: str) -> list[dict]:
        return self.get_json(f"/studies/{study}/series")

    def series_instances(self, series: str) -> list[dict]:
        return self.get_json(f"/series/{series}/instances")

    def instance_tags(self, instance: str) -> dict:
        return self.get_json(f"/instances/{instance}/simplified-tags")

    def close(self) -> None:
        """Close the per-thread download connections (the requests session stays usable)."""
        with self._conns_lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            conn.close()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.add(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            conn.close()
            with self._conns_lock:
                self._conns.discard(conn)

    def stream_instance(self, instance: str, chunk: int = 1 << 20, reuse: bool = False) -> Iterator[bytes]:
        """The instance's DICOM file as it is stored, in chunks (never gzipped). With ``reuse``
        the chunks may be memoryviews of one buffer per thread, valid until the next chunk:
        no allocation per chunk."""
        if self._plain:
            yield from self._stream_plain(f"/instances/{instance}/file", chunk, reuse)
            return
        r = self._request("GET", f"/instances/{instance}/file", stream=True)
        with r:
            if r.status_code >= 400:
                raise OrthancError(f"GET /instances/{instance}/file -> {r.status_code}")
            try:
                yield from r.iter_content(chunk)
            except requests.RequestException as e:
                raise OrthancError(f"Orthanc at {self.url} stopped answering mid-transfer: {e}") from e

    def _stream_plain(self, path: str, chunk: int, reuse: bool = False) -> Iterator[bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request("GET", self._prefix + path, headers=self._headers)
                r = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self._drop_connection()  # a kept-alive connection the server closed: once more
                if reused and attempt == 1:
                    continue
                raise OrthancError(f"Orthanc at {self.url} unreachable ({type(e).__name__}): {e}") from e
            except (OSError, http.client.HTTPException) as e:
                self._drop_connection()
                raise OrthancError(f"Orthanc at {self.url} unreachable ({type(e).__name__}): {e}") from e
        complete = False
        try:
            if r.status == 401:
                raise OrthancError(f"Orthanc at {self.url} refused the credentials (401)")
            if r.status >= 400:
                raise OrthancError(f"GET {path} -> {r.status}")
            encoding = r.getheader("Content-Encoding", "identity").lower()
            if encoding != "identity":
                raise OrthancError(f"GET {path}: unexpected Content-Encoding {encoding}")
            expected, received = r.length, 0  # Content-Length (None when chunked)
            try:
                if reuse and not r.chunked:
                    buf = getattr(self._local, "buf", None)
                    if buf is None or len(buf) != chunk:
                        buf = self._local.buf = memoryview(bytearray(chunk))
                    while n := r.readinto(buf):
                        received += n
                        yield buf[:n]
                else:
                    while data := r.read(chunk):
                        received += len(data)
                        yield data
            except (OSError, http.client.HTTPException) as e:
                raise OrthancError(f"Orthanc at {self.url} stopped answering mid-transfer: {e}") from e
            if expected is not None and received != expected:  # http.client does not check
                raise OrthancError(f"Orthanc at {self.url} stopped answering mid-transfer: "
                                   f"{received} of {expected} bytes of {path}")
            complete = True
        finally:
            if not complete or r.will_close:
                self._drop_connection()  # unread data or a closing server: not reusable

    def preview_png(self, instance: str) -> bytes | None:
        r = self._request("GET", f"/instances/{instance}/preview", headers={"Accept": "image/png"})
        return r.content if r.status_code == 200 else None

    # ------------------------------------------------------------------ rights (rectification, erasure)
    def delete(self, path: str) -> None:
        r = self._request("DELETE", path)
        if r.status_code not in (200, 404):
            raise OrthancError(f"DELETE {path} -> {r.status_code}: {r.text[:300]}")

    def post_raw(self, path: str, data: bytes, content_type: str = "application/dicom") -> Any:
        r = self._request("POST", path, data=data, headers={"Content-Type": content_type})
        if r.status_code >= 400:
            raise OrthancError(f"POST {path} -> {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else None

    def find_studies(self, study_uid: str) -> list[str]:
        """Orthanc ids of the studies with this StudyInstanceUID."""
        return list(self.post_json("/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}))

    def instance_file(self, instance: str) -> bytes:
        r = self._request("GET", f"/instances/{instance}/file")
        if r.status_code >= 400:
            raise OrthancError(f"GET /instances/{instance}/file -> {r.status_code}")
        return r.content

    def upload(self, data: bytes) -> dict:
        r = self._request("POST", "/instances", data=data, headers={"Content-Type": "application/dicom"})
        if r.status_code >= 400:
            raise OrthancError(f"upload refused: {r.status_code} {r.text[:300]}")
        return r.json()

