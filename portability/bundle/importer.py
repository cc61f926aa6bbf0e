"""The receiving side: verify a bundle's SHA256SUMS, then upload its DICOM File-set into Orthanc."""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field

import pydicom

from ..orthanc import OrthancClient

CHUNK = 1 << 20


class ImportError_(RuntimeError):
    """The bundle is damaged, incomplete or could not be imported."""


@dataclass
class ImportResult:
    uploaded: int = 0
    already_stored: int = 0
    instance_ids: list[str] = field(default_factory=list)


def _open(path: str | os.PathLike, password: str | None) -> zipfile.ZipFile:
    try:
        import pyzipper

        zf = pyzipper.AESZipFile(path)
        if password:
            zf.setpassword(password.encode())
        return zf
    except zipfile.BadZipFile as e:
        raise ImportError_(f"{path}: not a ZIP file ({e})") from e


def verify_bundle(zf: zipfile.ZipFile) -> dict[str, str]:
    """Check every file against SHA256SUMS (and that nothing is unlisted); returns name -> hash."""
    try:
        listing = zf.read("SHA256SUMS").decode()
    except KeyError:
        raise ImportError_("no SHA256SUMS in the bundle") from None
    except RuntimeError as e:  # encrypted, no/wrong password
        raise ImportError_(f"cannot read the bundle: {e}") from e
    sums = {}
    for line in listing.splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise ImportError_(f"malformed SHA256SUMS line: {line[:80]!r}")
        sums[name] = digest
    names = {i.filename for i in zf.infolist() if not i.is_dir()} - {"SHA256SUMS"}
    if names - set(sums):
        raise ImportError_(f"files not covered by SHA256SUMS: {', '.join(sorted(names - set(sums))[:5])}")
    if set(sums) - names:
        raise ImportError_(f"files missing from the bundle: {', '.join(sorted(set(sums) - names)[:5])}")
    for name, digest in sums.items():
        h = hashlib.sha256()
        try:
            with zf.open(name) as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except (RuntimeError, zipfile.BadZipFile) as e:
            raise ImportError_(f"cannot read {name}: {e}") from e
        if h.hexdigest() != digest:
            raise ImportError_(f"checksum mismatch for {name}: the bundle was altered or damaged")
    return sums


def import_bundle(path: str | os.PathLike, client: OrthancClient, password: str | None = None,
                  progress=None) -> ImportResult:
    with _open(path, password) as zf:
        verify_bundle(zf)
        dicomdir = pydicom.dcmread(io.BytesIO(zf.read("DICOMDIR")))
        files = []
        for rec in dicomdir.DirectoryRecordSequence:
            fid = rec.get("ReferencedFileID")
            if fid:
                files.append("/".join([fid] if isinstance(fid, str) else list(fid)))
        result = ImportResult()
        for n, name in enumerate(files):
            answer = client.upload(zf.read(name))
            if answer.get("Status") == "AlreadyStored":
                result.already_stored += 1
            elif answer.get("Status") == "Success":
                result.uploaded += 1
            else:
                raise ImportError_(f"Orthanc refused {name}: {answer}")
            result.instance_ids.append(answer["ID"])
            if progress:
                progress("uploading", n + 1, len(files))
        return result
