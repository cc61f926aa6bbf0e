"""Handwritten signatures captured on screen: vector strokes with timestamps.

The signature pad (``web/static/signature-pad.js``) sends one JSON document::

    {"width": 600, "height": 200, "started_at": "2026-12-01T09:12:03.120Z",
     "strokes": [{"pointer": "pen", "points": [[x, y, t_ms, pressure], ...]}, ...]}

``x``/``y`` are CSS pixels inside the pad, ``t_ms`` milliseconds since ``started_at`` and
``pressure`` 0..1 (0.5 for a mouse). :func:`parse` checks it; an empty or token scribble is refused.
:func:`svg` draws it for the printed consent and the FHIR attachment.
"""
from __future__ import annotations

import json
import math
from typing import Any

MAX_BYTES = 512 * 1024
MAX_STROKES = 200
MAX_POINTS = 20000
MAX_SIDE = 4000
#: Less ink than this (in pixels of path length) is not a signature but a stray touch.
MIN_INK = 40.0
POINTERS = ("mouse", "pen", "touch")


class SignatureError(ValueError):
    """The signature is empty or malformed; the message names the rule, never the content."""


def _number(v: Any, lo: float, hi: float, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise SignatureError(f"{what} must be a number from {lo:g} to {hi:g}")
    return float(v)


def parse(raw: str | bytes | dict) -> dict:
    """The signature as a checked, normalised dict (coordinates rounded to 0.1 px, times to 1 ms)."""
    if isinstance(raw, (str, bytes)):
        if not raw:
            raise SignatureError("the signature is empty: please sign in the box")
        if len(raw) > MAX_BYTES:
            raise SignatureError(f"the signature is larger than {MAX_BYTES // 1024} KiB")
        try:
            raw = json.loads(raw)
        except ValueError:
            raise SignatureError("the signature is not valid JSON") from None
    if not isinstance(raw, dict):
        raise SignatureError("the signature must be a JSON object")
    width = _number(raw.get("width"), 1, MAX_SIDE, "width")
    height = _number(raw.get("height"), 1, MAX_SIDE, "height")
    strokes = raw.get("strokes")
    if not isinstance(strokes, list) or not strokes:
        raise SignatureError("the signature is empty: please sign in the box")
    if len(strokes) > MAX_STROKES:
        raise SignatureError(f"a signature has at most {MAX_STROKES} strokes")
    started = raw.get("started_at")
    if not isinstance(started, str) or len(started) > 40:
        raise SignatureError("started_at must be an ISO 8601 time")
    out, total, ink = [], 0, 0.0
    for stroke in strokes:
        if not isinstance(stroke, dict) or not isinstance(stroke.get("points"), list) or not stroke["points"]:
            raise SignatureError("each stroke needs a list of points")
        pointer = stroke.get("pointer", "mouse")
        if pointer not in POINTERS:
            raise SignatureError(f"pointer must be one of {', '.join(POINTERS)}")
        total += len(stroke["points"])
        if total > MAX_POINTS:
            raise SignatureError(f"a signature has at most {MAX_POINTS} points")
        points, last_t = [], -1.0
        for p in stroke["points"]:
            if not isinstance(p, list) or len(p) not in (3, 4):
                raise SignatureError("each point is [x, y, t_ms] or [x, y, t_ms, pressure]")
            x = _number(p[0], -1, width + 1, "x")
            y = _number(p[1], -1, height + 1, "y")
            t = _number(p[2], 0, 86_400_000, "t_ms")
            pressure = _number(p[3], 0, 1, "pressure") if len(p) == 4 else 0.5
            if t < last_t:
                raise SignatureError("the times of a stroke's points must not go back")
            if points:
                ink += math.dist(points[-1][:2], (x, y))
            last_t = t
            points.append([round(x, 1), round(y, 1), int(t), round(pressure, 3)])
        out.append({"pointer": pointer, "points": points})
    if ink < MIN_INK:
        raise SignatureError("the signature is empty: please sign in the box")
    return {"width": width, "height": height, "started_at": started, "strokes": out}


def svg(signature: dict) -> str:
    """The strokes as a small standalone SVG (black ink on transparent)."""
    w, h = signature["width"], signature["height"]
    paths = []
    for stroke in signature["strokes"]:
        pts = stroke["points"]
        d = f"M{pts[0][0]:g} {pts[0][1]:g}" + "".join(f" L{x:g} {y:g}" for x, y, *_ in pts[1:])
        if len(pts) == 1:
            d += " l0.1 0"
        paths.append(f'<path d="{d}"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:g} {h:g}" width="{w:g}" height="{h:g}" '
            f'role="img"><title>Signature</title><g fill="none" stroke="#000" stroke-width="2" '
            f'stroke-linecap="round" stroke-linejoin="round">{"".join(paths)}</g></svg>')
