"""Sending one de-identified instance to a destination, without storing it in Orthanc."""

from __future__ import annotations

import uuid
from pathlib import Path

import requests

from ..orthanc_api import OrthancApi, OrthancApiError
from .rules import Destination


class DeliveryError(Exception):
    """The destination did not take the instance (down, refused): retry later."""


def _stow(dest: Destination, dicom: bytes, timeout: float = 60) -> None:
    """STOW-RS (PS3.18 10.5): one instance in a multipart/related body."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + dicom + \
        f"\r\n--{boundary}--\r\n".encode()
    auth = None
    if dest.username:
        password = Path(dest.password_file).read_text().strip() if dest.password_file else ""
        auth = (dest.username, password)
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
               "Accept": "application/dicom+json"}
    try:
        r = requests.post(dest.url.rstrip("/") + "/studies", data=body, headers=headers, auth=auth, timeout=timeout)
    except requests.RequestException as e:
        raise DeliveryError(f"DICOMweb {dest.url}: {type(e).__name__}") from None
    if r.status_code not in (200, 202):
        raise DeliveryError(f"DICOMweb {dest.url}: HTTP {r.status_code}")


def send(api: OrthancApi, dest: Destination, dicom: bytes) -> None:
    """Deliver ``dicom`` (a Part 10 file) to ``dest``; raises DeliveryError."""
    if dest.type == "dicomweb":
        _stow(dest, dicom)
        return
    uri = f"/{'modalities' if dest.type == 'modality' else 'peers'}/{dest.name}/store-straight"
    try:
        api.post(uri, dicom)
    except OrthancApiError as e:
        raise DeliveryError(f"{dest.type} {dest.name}: {e}") from None
