/* The rights desk's small helpers (no inline script: the CSP forbids it).
   - [data-poll="URL"]: every second, GET URL ({status, done, total}); a <progress> shows done/total;
     when the job is no longer working, the page reloads to show the result.
   - [data-copy="ID"]: a button that copies the text of input ID to the clipboard. */
(function () {
  "use strict";
  var WORKING = ["queued", "running", "retrying", "applying", "erasing"];

  function poll(el) {
    var url = el.getAttribute("data-poll");
    var count = document.getElementById("job-count");
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) {
          if (!job) { return; }
          if (el.tagName === "PROGRESS" && job.total) {
            el.max = job.total;
            el.value = job.done;
            el.textContent = job.done + " of " + job.total;
            if (count) { count.textContent = job.done + " of " + job.total + " images"; }
          }
          if (WORKING.indexOf(job.status) < 0) { window.location.reload(); return; }
          window.setTimeout(tick, 1000);
        })
        .catch(function () { window.setTimeout(tick, 3000); });
    }
    window.setTimeout(tick, 500);
  }

  function copier(button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.getAttribute("data-copy"));
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  }

  document.querySelectorAll("[data-poll]").forEach(poll);
  document.querySelectorAll("[data-copy]").forEach(copier);
}());
