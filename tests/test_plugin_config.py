"""A bad "Gdpr" configuration stops Orthanc at start-up, and the log names the problem."""
from __future__ import annotations

import pytest

from orthanc_server import ServerError, write_rules


def _rules_ok(tmp_path, **override):
    r = {"name": "ct", "match": {"Modality": ["CT"]}, "destination": {"type": "modality", "name": "scp"},
         "profile": "research", "purpose": "research", "lawful_basis": "research", **override}
    return str(write_rules(tmp_path / "rules.json", r))


def _bad_json(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('{"rules": [ {"name": "ct",, } ]}')
    return str(path)


CASES = {
    "missing-key-file": (lambda t: {"gdpr": {"KeyFile": str(t / "no-such.key")}},
                         ['"Gdpr.KeyFile"', "no-such.key", "does not exist"]),
    "no-key-file-setting": (lambda t: {"extra": {"Gdpr": {"StateDirectory": str(t / "state")}}},
                            ['"Gdpr.KeyFile" is required']),
    "unknown-gdpr-key": (lambda t: {"gdpr": {"RoutingRule": "typo.json"}},
                         ["unknown \"Gdpr\" settings ['RoutingRule']"]),
    "rules-bad-json": (lambda t: {"gdpr": {"RoutingRules": _bad_json(t)}},
                       ["rules.json: invalid JSON", "line 1"]),
    "rules-unknown-profile": (lambda t: {"gdpr": {"RoutingRules": _rules_ok(t, profile="no-such-profile")}},
                              ["no-such-profile"]),
    "rules-unknown-lawful-basis": (lambda t: {"gdpr": {"RoutingRules": _rules_ok(t, lawful_basis="because")}},
                                   ["lawful_basis must be one of"]),
    "unknown-download-profile": (lambda t: {"gdpr": {"DownloadProfiles": ["basic", "nope"]}}, ["nope"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_gdpr_configuration_stops_orthanc_with_a_clear_log_message(orthanc_factory, tmp_path, case):
    make_kwargs, expected = CASES[case]
    server = orthanc_factory(start=False, start_timeout=20, **make_kwargs(tmp_path))
    with pytest.raises(ServerError) as raised:
        server.start()
    message = str(raised.value)
    assert "exited with code" in message and "code 0 " not in message, message  # exits, non-zero
    log = server.log_path.read_text()
    assert "orthanc-gdpr: refusing to start:" in log
    for fragment in expected:
        assert fragment in log, f"{fragment!r} not in the log:\n{log[-3000:]}"
    assert not server.running
