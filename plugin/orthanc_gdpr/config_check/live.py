"""Checks against a running Orthanc (``--url``): real HTTP requests, nothing is changed."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests

from .checks import CHECKS, DEFAULT_CREDENTIALS, Finding

TIMEOUT = 5.0


class LiveCheckError(RuntimeError):
    """The server could not be reached at all."""


def _is_loopback(host: str) -> bool:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in text.split(".")[:3])
    except ValueError:  # "mainline" and the like
        return None


def run_live(url: str, auth: tuple[str, str] | None = None, verify: bool | str = True) -> tuple[list[Finding], list[str]]:
    """Findings about the server at ``url`` and the list of checks that could not be made."""
    base = url.rstrip("/")
    findings: list[Finding] = []
    skipped: list[str] = []

    def add(check_id: str, detail: str) -> None:
        findings.append(Finding(CHECKS[check_id], detail, base))

    def get(path: str, creds: tuple[str, str] | None) -> requests.Response:
        return requests.get(base + path, auth=creds, timeout=TIMEOUT, verify=verify, allow_redirects=False)

    try:
        anonymous = get("/system", None)
    except requests.RequestException as e:
        raise LiveCheckError(f"{base}: not reachable: {type(e).__name__}: {e}") from None
    system, system_creds = None, None
    if anonymous.status_code == 200:
        add("live-anonymous-access", "GET /system without credentials -> 200")
        system = anonymous
    for user, password in sorted(DEFAULT_CREDENTIALS):
        try:
            r = get("/system", (user, password))
        except requests.RequestException:
            continue
        if r.status_code == 200 and anonymous.status_code != 200:
            add("live-default-credentials", f"GET /system as {user}/{password} -> 200")
            if system is None:
                system, system_creds = r, (user, password)
    host = urlsplit(base).hostname or ""
    if urlsplit(base).scheme == "http" and not _is_loopback(host):
        add("live-no-tls", f"{base} is plain HTTP to {host}")
    if auth is not None:
        r = get("/system", auth)
        if r.status_code == 200:
            system, system_creds = r, auth
        else:
            skipped.append(f"the given credentials were refused: GET /system -> {r.status_code}")
    if system is not None:
        info = system.json()
        version = _version(str(info.get("Version", "")))
        if version is not None and version <= (1, 10, 1):
            add("live-crash-prone-version", f"Orthanc {info.get('Version')}")
        r = get("/tools/log-level", system_creds)
        if r.status_code == 200:
            level = r.text.strip()
            if level in ("verbose", "trace"):
                add("live-verbose-logging", f"GET /tools/log-level -> {level}")
        else:
            skipped.append(f"live-verbose-logging: GET /tools/log-level -> {r.status_code}")
    else:
        skipped.append("live-verbose-logging, live-crash-prone-version: no credentials "
                       "(give --user and --password-file to check them)")
    return findings, skipped
