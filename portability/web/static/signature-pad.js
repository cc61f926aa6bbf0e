/* The signature pad of the consent form (no inline script: the CSP forbids it).
   Pointer events (pen, touch, mouse) are drawn on the canvas #signature and kept as vector
   strokes: [x, y, milliseconds since the first touch, pressure]. On submit, the strokes go into
   the hidden field #signature-data as JSON; the server refuses an empty or token signature. */
(function () {
  "use strict";
  var canvas = document.getElementById("signature");
  var field = document.getElementById("signature-data");
  if (!canvas || !field) { return; }
  var ctx = canvas.getContext("2d");
  var strokes = [];
  var current = null;
  var t0 = null;
  var startedAt = null;

  function fit() {
    var rect = canvas.getBoundingClientRect();
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(rect.width * ratio);
    canvas.height = Math.round(rect.height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.lineWidth = 2;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000";
    redraw();
  }

  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    strokes.forEach(function (s) {
      ctx.beginPath();
      s.points.forEach(function (p, i) { if (i === 0) { ctx.moveTo(p[0], p[1]); } else { ctx.lineTo(p[0], p[1]); } });
      ctx.stroke();
    });
  }

  function point(e) {
    var rect = canvas.getBoundingClientRect();
    var now = performance.now();
    if (t0 === null) { t0 = now; startedAt = new Date().toISOString(); }
    var pressure = e.pressure || (e.pointerType === "mouse" ? 0.5 : 0);
    var x = Math.min(Math.max(e.clientX - rect.left, 0), rect.width);
    var y = Math.min(Math.max(e.clientY - rect.top, 0), rect.height);
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10,
            Math.max(0, Math.round(now - t0)), Math.min(1, Math.round(pressure * 1000) / 1000)];
  }

  canvas.addEventListener("pointerdown", function (e) {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    var kind = ["mouse", "pen", "touch"].indexOf(e.pointerType) >= 0 ? e.pointerType : "mouse";
    current = {pointer: kind, points: [point(e)]};
    strokes.push(current);
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!current) { return; }
    e.preventDefault();
    var events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    if (!events.length) { events = [e]; }
    events.forEach(function (ev) {
      var last = current.points[current.points.length - 1];
      var p = point(ev);
      if (p[2] < last[2]) { p[2] = last[2]; }
      current.points.push(p);
      ctx.beginPath();
      ctx.moveTo(last[0], last[1]);
      ctx.lineTo(p[0], p[1]);
      ctx.stroke();
    });
  });
  function end() { current = null; }
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  document.getElementById("signature-clear").addEventListener("click", function () {
    strokes = [];
    t0 = null;
    startedAt = null;
    redraw();
  });
  document.getElementById("sign-form").addEventListener("submit", function () {
    var rect = canvas.getBoundingClientRect();
    field.value = strokes.length ? JSON.stringify({
      width: Math.round(rect.width * 10) / 10, height: Math.round(rect.height * 10) / 10,
      started_at: startedAt, strokes: strokes}) : "";
  });
  window.addEventListener("resize", fit);
  fit();
}());
