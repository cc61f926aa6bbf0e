"""Orthanc's configuration for one identity: Orthanc's own user list off, the plugin checking every
request against the portability service's staff accounts.

``orthanc-gdpr serve`` applies :func:`with_service_accounts` to the configuration it writes. The
Docker image runs ``python -m orthanc_gdpr.accounts_config FILE... > orthanc.json`` at start: the
production template and the site file merged (a key in two files is an error, as in Orthanc),
then the same change, so the security settings still come from the one template.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .config_check.jsonc import loads


def with_service_accounts(config: dict, service_url: str, token_file: str, credential_file: str) -> dict:
    """``config`` changed so that the plugin authenticates every request with the service at
    ``service_url`` (its machine token in ``token_file``), and the service logs into Orthanc with
    the secret in ``credential_file``. Orthanc's own ``AuthenticationEnabled`` goes off: Orthanc
    would otherwise refuse every account before the plugin sees it."""
    out = {k: v for k, v in config.items() if k != "RegisteredUsers"}
    out["AuthenticationEnabled"] = False
    out["Gdpr"] = {**config.get("Gdpr", {}), "ConsentServiceUrl": service_url, "ConsentServiceTokenFile": token_file,
                   "AuthenticateWithService": True, "ServiceCredentialFile": credential_file}
    return out


def merged(paths: list[Path]) -> dict:
    """The configuration files merged as Orthanc merges a directory (no key twice)."""
    config: dict = {}
    for path in paths:
        part = loads(path.read_text())
        twice = sorted(set(part) & set(config))
        if twice:
            raise SystemExit(f"{path}: {', '.join(twice)} already set in an earlier file")
        config.update(part)
    return config


def main(argv: list[str] | None = None) -> int:
    """``python -m orthanc_gdpr.accounts_config FILE...``: the merged files in accounts mode, as
    JSON on stdout; the service's URL and the two secret files come from the files' "Gdpr"
    section (``ConsentServiceUrl``, ``ConsentServiceTokenFile``, ``ServiceCredentialFile``)."""
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m orthanc_gdpr.accounts_config FILE... > orthanc.json", file=sys.stderr)
        return 2
    config = merged(paths)
    gdpr = config.get("Gdpr", {})
    missing = [k for k in ("ConsentServiceUrl", "ConsentServiceTokenFile", "ServiceCredentialFile") if not gdpr.get(k)]
    if missing:
        print(f'error: the "Gdpr" section needs {", ".join(missing)}', file=sys.stderr)
        return 2
    json.dump(with_service_accounts(config, gdpr["ConsentServiceUrl"], gdpr["ConsentServiceTokenFile"],
                                    gdpr["ServiceCredentialFile"]), sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
