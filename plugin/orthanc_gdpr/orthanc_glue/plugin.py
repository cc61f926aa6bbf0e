"""Registration of orthanc-gdpr's callbacks in Orthanc (Python plugin 4.0 API).

The only module that touches ``orthanc`` (passed in, never imported). Each callback parses the
request, calls plain code in :mod:`orthanc_gdpr` and writes the answer. Newer plugin functions
(e.g. streamed answers, plugin >= 4.3 / Orthanc >= 1.12.6) are used when ``hasattr`` finds them.
"""

from __future__ import annotations

import base64
import json
import mmap
import sys
import tempfile
from pathlib import Path
from typing import Any

import pydicom

import orthanc_gdpr

from ..anonymous.decision import PSEUDONYMISED
from ..deid import DeidentificationError, deidentify_bytes
from ..deid.files import output_path
from ..deid.keys import KeyFileError
from ..deid.parallel import Source
from ..deid.profile import ProfileError
from ..downloads import instance_ids, stream_archive, write_archive
from ..orthanc_api import OrthancApiError, patient_identity
from ..routing.consent import CARE, MissingPatientId, decide
from ..routing.rules import RuleError
from ..egress import BODY_ROUTES, PURPOSE, Egress, classify, purpose_of, purpose_of_post, resources_of_body
from ..identity import AccountsUnavailable, Identity
from ..runtime import Runtime
from ..settings import ConfigError, parse_settings
from .api import PluginApi

PLUGIN_NAME = "orthanc-gdpr"
HEALTH_URI = "/gdpr/health"


def health_payload() -> dict[str, Any]:
    """Body of ``GET /gdpr/health``."""
    return {"status": "ok", "plugin": PLUGIN_NAME, "version": orthanc_gdpr.__version__, "python": sys.version}


def _answer_json(output: Any, body: Any) -> None:
    output.AnswerBuffer(json.dumps(body), "application/json")


def _error(output: Any, status: int, message: str) -> None:
    # Plugin 4.0 parses (status, str body, size) ("Hsk"); later releases take (status, buffer).
    body = json.dumps({"error": message})
    output.SetHttpHeader("Content-Type", "application/json")
    try:
        output.SendHttpStatus(status, body, len(body.encode()))
    except TypeError:
        output.SendHttpStatus(status, body.encode())


#: A download's purpose when ``?purpose=`` names none (:data:`~orthanc_gdpr.egress.PURPOSE` is the
#: rule for purposes); any purpose but care honours restrictions and objections.
DEFAULT_PURPOSE = "download"
#: What :func:`~orthanc_gdpr.routing.consent.decide` is told about downloads: de-identified data,
#: never consent-based, so only a restriction (Art. 18) or an objection (Art. 21) stops them.
DOWNLOAD_LAWFUL_BASIS = "de-identified download"


def _authorization(request: dict) -> str:
    headers = request.get("headers") or {}
    return next((v for k, v in headers.items() if k.lower() == "authorization"), "")


def _user(request: dict) -> str:
    """The HTTP Basic user of a request, for audit records ("anonymous" without auth)."""
    header = _authorization(request)
    if header.lower().startswith("basic "):
        try:
            return base64.b64decode(header[6:]).decode("utf-8", "replace").split(":", 1)[0]
        except ValueError:
            pass
    return "anonymous"


def worker_source(orthanc: Any, config: dict) -> Source | None:
    """Where the de-identification processes may read stored files themselves: Orthanc's own
    HTTP server on loopback, with a REST token of this plugin
    (``GenerateRestApiAuthorizationToken``, in plugin 4.0). None (files are read inside Orthanc and handed to
    the processes) without the token API, with HTTPS or without the HTTP server."""
    if not hasattr(orthanc, "GenerateRestApiAuthorizationToken"):
        return None
    if config.get("SslEnabled", False) or not config.get("HttpServerEnabled", True):
        return None
    try:
        port = int(config.get("HttpPort", 8042))
    except (TypeError, ValueError):
        return None
    token = orthanc.GenerateRestApiAuthorizationToken()
    if not isinstance(token, str) or not token:
        return None
    return Source(f"http://127.0.0.1:{port}", token)


def register(orthanc: Any) -> None:
    """Register every orthanc-gdpr callback with the given ``orthanc`` module."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        config = json.loads(orthanc.GetConfiguration())
        runtime = Runtime.build(parse_settings(config), PluginApi(orthanc))
    except (ConfigError, ProfileError, RuleError, KeyFileError, OSError) as e:
        orthanc.LogError(f"{PLUGIN_NAME}: refusing to start: {e}")
        raise SystemExit(f"{PLUGIN_NAME}: refusing to start: {e}") from None
    _register_routes(orthanc, runtime, config)
    if config.get("HttpCompressionEnabled", True) and not hasattr(getattr(orthanc, "RestOutput", None), "StartStreamAnswer"):
        # Without streamed answers (plugin < 4.3), Orthanc gzips each de-identified ZIP in memory
        # for clients that accept gzip: ~5x slower downloads and a second copy of the archive.
        orthanc.LogWarning(f"{PLUGIN_NAME}: HttpCompressionEnabled is on: de-identified archives will be "
                           "gzip-compressed in memory by Orthanc; set it to false for large downloads")
    orthanc.LogWarning(f"{PLUGIN_NAME} {orthanc_gdpr.__version__} ready: {len(runtime.router.rules)} routing rule(s), "
                       f"download profiles {', '.join(runtime.settings.download_profiles)}")


def _register_routes(orthanc: Any, rt: Runtime, config: dict | None = None) -> None:
    def get_only(handler):
        def wrapped(output: Any, uri: str, **request: Any) -> None:
            if request.get("method") != "GET":
                output.SendMethodNotAllowed("GET")
                return
            handler(output, uri, **request)
        return wrapped

    def post_only(handler):
        def wrapped(output: Any, uri: str, **request: Any) -> None:
            if request.get("method") != "POST":
                output.SendMethodNotAllowed("POST")
                return
            handler(output, uri, **request)
        return wrapped

    def on_health(output: Any, uri: str, **request: Any) -> None:
        _answer_json(output, health_payload())

    def on_jobs(output: Any, uri: str, **request: Any) -> None:
        status = (request.get("get") or {}).get("status")
        _answer_json(output, [j.to_dict() for j in rt.queue.list(status)])

    def on_job(output: Any, uri: str, **request: Any) -> None:
        job = rt.queue.get(int(request["groups"][0]))
        if job is None:
            _error(output, 404, "no such job")
            return
        _answer_json(output, job.to_dict())

    def job_action(action: str):
        def handler(output: Any, uri: str, **request: Any) -> None:
            job_id = int(request["groups"][0])
            done = rt.queue.retry(job_id) if action == "retry" else rt.queue.cancel(job_id)
            who = identity(request)
            rt.audit.append(f"route.{action}", user=who.name, role=who.role, job=job_id,
                            result="ok" if done else "not-applicable")
            if not done:
                _error(output, 409, f"job {job_id} cannot be {action}ed in its current state")
                return
            rt.worker.wake()
            _answer_json(output, rt.queue.get(job_id).to_dict())
        return handler

    def on_route(output: Any, uri: str, **request: Any) -> None:
        try:
            body = json.loads(request.get("body") or b"{}")
            level = {"study": "studies", "series": "series"}[body.get("level", "study")]
            job = rt.router.route_by_hand(level, str(body["id"]), str(body["rule"]), _user(request))
        except (ValueError, KeyError, TypeError):
            _error(output, 400, 'body: {"level": "study"|"series", "id": ORTHANC_ID, "rule": RULE_NAME} '
                   f"with a configured rule ({', '.join(sorted(rt.router.rules)) or 'none configured'})")
            return
        except OrthancApiError:
            _error(output, 404, "no such study or series")
            return
        except MissingPatientId as e:
            _error(output, 422, f"routing refused: {e}")
            return
        rt.worker.wake()
        _answer_json(output, job.to_dict())

    def download_profile(request: dict):
        name = (request.get("get") or {}).get("profile") or rt.settings.default_download_profile
        return rt.engines.get(name) if name in rt.settings.download_profiles else None

    def download_purpose(request: dict) -> str | None:
        purpose = (request.get("get") or {}).get("purpose") or DEFAULT_PURPOSE
        return purpose if PURPOSE.match(purpose) else None

    def identity(request: dict) -> Identity:
        """The person behind a request that the filter let through (a cache hit with accounts)."""
        try:
            who = rt.identify(_authorization(request), request.get("ip") or "", _user(request))
        except AccountsUnavailable:
            who = None
        return who or Identity(_user(request), "staff")

    def consent_refusal(output: Any, level: str, resource: str, who: Identity, purpose: str, profile: str) -> bool:
        """Apply the consent registry to a download; answer and audit a refusal (True) or let it
        through (False). For a restricted or objecting patient, care is open to a clinician or the
        dpo only. Raises OrthancApiError for a missing resource."""
        if rt.router.consent is None:
            return False
        patient_id, issuer = patient_identity(rt.router.api, level, resource)
        decision = decide(rt.router.consent, patient_id, issuer, purpose, DOWNLOAD_LAWFUL_BASIS, who.may_act_for_care)
        if decision.verdict == "allow":
            return False
        rt.audit.append("download.refused", user=who.name, role=who.role, level=level, resource=resource,
                        profile=profile, purpose=purpose, reason=decision.reason)
        if decision.verdict == "wait":  # an unreachable registry never means "send anyway"
            _error(output, 503, f"download refused for now: {decision.reason}; try again later")
        elif decision.verdict == "reject":
            _error(output, 422, f"download refused: {decision.reason}")
        else:
            _error(output, 403, f"download refused for purpose {purpose!r}: {decision.reason}"
                   + ("" if purpose == CARE else "; only purpose 'care' is exempt"))
        return True

    def archive(level: str):
        def handler(output: Any, uri: str, **request: Any) -> None:
            resource, who = request["groups"][0], identity(request)
            engine, purpose = download_profile(request), download_purpose(request)
            if engine is None or purpose is None:
                reason = "profile not offered for downloads" if engine is None else "malformed purpose"
                rt.audit.append("download.refused", user=who.name, role=who.role, level=level, resource=resource,
                                reason=reason)
                _error(output, 400, f"profile must be one of {', '.join(rt.settings.download_profiles)}"
                       if engine is None else "purpose must be a lower-case word such as 'download', "
                       "'research' or 'care'")
                return
            try:
                if consent_refusal(output, level, resource, who, purpose, engine.profile.name):
                    return
                instances = instance_ids(rt.router.api, level, resource)
            except OrthancApiError:
                _error(output, 404, f"no such {level[:-1] if level == 'studies' else level}")
                return

            def audited(run) -> None:
                summary = run.summary()
                rt.audit.append("download", user=who.name, role=who.role, level=level, resource=resource,
                                profile=engine.profile.name,
                                purpose=purpose, result="sent", instances=summary["instances_written"],
                                held_back=summary["instances_held_back"], classification=PSEUDONYMISED)

            outcomes = rt.instance_outcomes(engine.profile.name, instances)
            output.SetHttpHeader("Content-Disposition", f'attachment; filename="{resource}-{engine.profile.name}.zip"')
            _send_archive(output, outcomes, engine.profile, rt.settings.compression, audited)
        return handler

    def on_instance_file(output: Any, uri: str, **request: Any) -> None:
        instance, who = request["groups"][0], identity(request)
        engine, purpose = download_profile(request), download_purpose(request)
        if engine is None:
            _error(output, 400, f"profile must be one of {', '.join(rt.settings.download_profiles)}")
            return
        if purpose is None:
            _error(output, 400, "purpose must be a lower-case word such as 'download', 'research' or 'care'")
            return
        try:
            if consent_refusal(output, "instances", instance, who, purpose, engine.profile.name):
                return
            ds, dicom, report = deidentify_bytes(engine, rt.router.api.get(f"/instances/{instance}/file"))
        except OrthancApiError:
            _error(output, 404, "no such instance")
            return
        except DeidentificationError as e:
            rt.audit.append("download.held-back", user=who.name, role=who.role, level="instances", resource=instance,
                            profile=engine.profile.name, error=str(e))
            _error(output, 422, f"instance held back: {e}")
            return
        rt.audit.append("download", user=who.name, role=who.role, level="instances", resource=instance,
                        profile=engine.profile.name,
                        purpose=purpose, result="sent", instances=1, held_back=0, classification=PSEUDONYMISED)
        output.SetHttpHeader("Content-Disposition", f'attachment; filename="{output_path(ds, report).name}"')
        output.AnswerBuffer(dicom, "application/dicom")

    def on_profiles(output: Any, uri: str, **request: Any) -> None:
        _answer_json(output, {"download": list(rt.settings.download_profiles),
                              "default": rt.settings.default_download_profile,
                              "routing_rules": sorted(rt.router.rules),
                              "rules": [{"name": r.name, "profile": r.profile, "purpose": r.purpose,
                                         "review": "required" if r.review_required else "none"}
                                        for r in sorted(rt.router.rules.values(), key=lambda r: r.name)],
                              "workspace": rt.settings.workspace_url})

    routes = {
        HEALTH_URI: get_only(on_health),
        "/gdpr/profiles": get_only(on_profiles),
        "/gdpr/jobs": get_only(on_jobs),
        "/gdpr/jobs/([0-9]+)": get_only(on_job),
        "/gdpr/jobs/([0-9]+)/retry": post_only(job_action("retry")),
        "/gdpr/jobs/([0-9]+)/cancel": post_only(job_action("cancel")),
        "/gdpr/route": post_only(on_route),
        "/gdpr/studies/([^/]+)/archive": get_only(archive("studies")),
        "/gdpr/series/([^/]+)/archive": get_only(archive("series")),
        "/gdpr/instances/([^/]+)/file": get_only(on_instance_file),
    }
    for uri, handler in routes.items():
        orthanc.RegisterRestCallback(uri, handler)

    def on_change(change_type: int, level: int, resource: str) -> None:
        if change_type == orthanc.ChangeType.ORTHANC_STARTED:
            source = worker_source(orthanc, config or {}) if rt.settings.workers else None
            rt.start(source)
            if rt.settings.workers:
                orthanc.LogWarning(f"{PLUGIN_NAME}: {rt.settings.workers} de-identification process(es) "
                                   + ("read stored files over loopback HTTP" if source else
                                      "get stored files from the plugin (no REST token API, HTTPS or no HTTP server)"))
        elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
            rt.stop()
        elif change_type == orthanc.ChangeType.STABLE_STUDY:
            try:
                if rt.router.on_stable_study(resource):
                    rt.worker.wake()
            except OrthancApiError as e:
                orthanc.LogError(f"{PLUGIN_NAME}: cannot evaluate routing rules for study {resource}: {e}")

    orthanc.RegisterOnChangeCallback(on_change)
    if hasattr(orthanc, "ExtendOrthancExplorer"):
        orthanc.ExtendOrthancExplorer(explorer_script(rt))
    rt.worker.on_error = lambda e: orthanc.LogError(f"{PLUGIN_NAME}: routing worker: {type(e).__name__}: {e}")

    for pattern in BODY_ROUTES:
        orthanc.RegisterRestCallback(pattern, post_only(body_egress(orthanc, rt, pattern)))
    if rt.accounts is not None:
        orthanc.RegisterRestCallback(LOGIN_URI, get_only(login_page(orthanc, rt)))
    orthanc.RegisterIncomingHttpRequestFilter(request_filter(orthanc, rt))


#: Where a browser logs into Orthanc (Explorer) with a staff account: answers 401 with a Basic
#: challenge until the browser sends a valid login, then redirects to Orthanc Explorer. The
#: browser then sends that login with every request to this server (its path is at the root).
LOGIN_URI = "/gdpr-login"
REALM = "orthanc-gdpr"


def login_page(orthanc: Any, rt: Runtime):
    def handler(output: Any, uri: str, **request: Any) -> None:
        try:
            who = rt.identify(_authorization(request), request.get("ip") or "", "")
        except AccountsUnavailable as e:
            orthanc.LogError(f"{PLUGIN_NAME}: login page: account service unavailable: {e}")
            _error(output, 503, "the account service does not answer; try again later")
            return
        if who is None:
            output.SendUnauthorized(REALM)
            return
        # 303, not Orthanc's Redirect (301): a browser keeps a 301 for good and would skip this
        # page, and with it the login dialog, on every later visit (another person, a new session)
        output.SetHttpHeader("Location", "/app/explorer.html")
        output.SetHttpHeader("Cache-Control", "no-store")
        output.SendHttpStatusCode(303)
    return handler


def request_filter(orthanc: Any, rt: Runtime):
    """Orthanc's incoming-request filter: who is asking (with ``AuthenticateWithService``, every
    request needs a valid account), the legacy ``RestrictIdentifiedExport`` list, and the gate on
    identified egress (:mod:`orthanc_gdpr.egress`). Plugin 4.0 calls it as
    ``filter(uri, method=, ip=, headers=, get=)``, without a user name: it is read from the
    Basic credentials. Anything unexpected refuses (fail closed)."""

    def on_request(uri: str, **request: Any) -> bool:
        try:
            if uri == LOGIN_URI and rt.accounts is not None:
                return True
            authorization, username = _authorization(request), request.get("username") or _user(request)
            who = rt.identify(authorization, request.get("ip") or "", "" if username == "anonymous" else username)
            if who is None:
                return False
            if not rt.may_export_identified(uri, who.name, authorization):
                rt.audit.append("export.refused", user=who.name, role=who.role, uri=uri,
                                reason="identified export not permitted for this user")
                return False
            egress = classify(uri, _method(request), request.get("get") or {})
            return egress is None or rt.egress.check(who, egress, purpose_of(request.get("get") or {})).allowed
        except AccountsUnavailable as e:
            orthanc.LogError(f"{PLUGIN_NAME}: request refused: the account service does not answer ({e})")
            return False
        except Exception as e:  # noqa: BLE001 - fail closed: an error in the filter never opens Orthanc
            orthanc.LogError(f"{PLUGIN_NAME}: request filter: {type(e).__name__}: {e}")
            return False
    return on_request


#: OrthancPluginHttpMethod: the filter of plugin 4.0 passes the method as this number.
HTTP_METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE"}


def _method(request: dict) -> str:
    method = request.get("method")
    return method if isinstance(method, str) else HTTP_METHODS.get(int(method or 0), "")


def body_egress(orthanc: Any, rt: Runtime, pattern: str):
    """Orthanc's store/archive routes that name their resources in the body: gated and audited
    here, then handed to Orthanc's own implementation (``RestApiPost`` reaches the built-in route).
    The purpose is the body's "Purpose" or the ``X-Purpose`` header (Orthanc gives plugins no
    query string for a POST)."""
    route = pattern.replace("([^/]+)", "*").strip("/")

    def handler(output: Any, uri: str, **request: Any) -> None:
        purpose, body = purpose_of_post(request.get("headers") or {}, request.get("body") or b"")
        try:
            resources = resources_of_body(body)
        except ValueError as e:
            _error(output, 400, f"body: {e}; give one Orthanc ID, a list of IDs or {{\"Resources\": [...]}}")
            return
        try:
            who = rt.identify(_authorization(request), request.get("ip") or "", _user(request))
        except AccountsUnavailable:
            who = None
        who = who or Identity(_user(request), "staff")
        groups = request.get("groups") or ()
        egress = Egress(route, tuple(("", r) for r in resources), destination=groups[0] if groups else None)
        verdict = rt.egress.check(who, egress, purpose)
        if not verdict.allowed:
            _error(output, verdict.status, verdict.reason)
            return
        try:
            answer = orthanc.RestApiPost(uri, body)
        except orthanc.OrthancException as e:
            _error(output, 404 if verdict.status == 404 else 400, f"Orthanc refused the request: {e}")
            return
        output.AnswerBuffer(answer, "application/zip" if answer[:2] == b"PK" else "application/json")
    return handler


def explorer_script(rt: Runtime) -> str:
    """The legacy Orthanc Explorer's buttons (explorer.js), with this plugin's profiles, rules
    and workspace URL. Names and URLs only: no patient value."""
    settings = {"downloadProfiles": list(rt.settings.download_profiles),
                "defaultProfile": rt.settings.default_download_profile,
                "rules": [{"name": r.name, "profile": r.profile, "review": "required" if r.review_required else "none"}
                          for r in sorted(rt.router.rules.values(), key=lambda r: r.name)],
                "workspace": rt.settings.workspace_url}
    code = (Path(__file__).resolve().parent / "explorer.js").read_text(encoding="utf-8")
    # "</" never closes a script element, whatever a profile or rule is named.
    return "window.ORTHANC_GDPR = " + json.dumps(settings).replace("</", "<\\/") + ";\n" + code


def _send_archive(output: Any, outcomes, profile, compression: str, on_done) -> None:
    """Answer a ZIP of ``outcomes``: streamed where the plugin SDK can (Orthanc >= 1.12.6);
    otherwise written straight into a temporary file answered from a memory map."""
    if hasattr(output, "StartStreamAnswer"):
        _send_stream(output, stream_archive(outcomes, profile, compression, on_done), "application/zip")
        return
    with tempfile.TemporaryFile(prefix="orthanc-gdpr-") as spool:
        write_archive(spool, outcomes, profile, compression, on_done)
        spool.flush()
        size = spool.seek(0, 2)
        with mmap.mmap(spool.fileno(), size, access=mmap.ACCESS_READ) as view:
            output.AnswerBuffer(view, "application/zip")


def _send_stream(output: Any, chunks, content_type: str) -> None:
    """Stream chunks where the plugin SDK can (Orthanc >= 1.12.6); otherwise spool the answer to
    a temporary file and answer from a memory map of it, so Python memory stays flat."""
    if hasattr(output, "StartStreamAnswer"):
        output.StartStreamAnswer(content_type)
        for chunk in chunks:
            output.SendStreamChunk(chunk)
        return
    with tempfile.TemporaryFile(prefix="orthanc-gdpr-") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.flush()
        size = spool.tell()
        if size == 0:
            output.AnswerBuffer(b"", content_type)
            return
        with mmap.mmap(spool.fileno(), size, access=mmap.ACCESS_READ) as view:
            output.AnswerBuffer(view, content_type)
