// Keyboard shortcuts for the console. The pages work without this file.
(function () {
  "use strict";
  var pendingG = false;
  function typing(el) { return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT" || el.isContentEditable); }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#queue tbody tr")); }
  function select(delta) {
    var all = rows(); if (!all.length) return;
    var at = all.findIndex(function (r) { return r.classList.contains("sel"); });
    var next = Math.max(0, Math.min(all.length - 1, at < 0 ? 0 : at + delta));
    all.forEach(function (r) { r.classList.remove("sel"); });
    all[next].classList.add("sel");
    var link = all[next].querySelector("a"); if (link) link.focus();
  }
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (pendingG) {
      pendingG = false;
      if (e.key === "q") { location.href = "/console/queue"; }
      else if (e.key === "a") { location.href = "/console/analytics"; }
      else if (e.key === "i") { location.href = "/console/incidents"; }
      return;
    }
    if (e.key === "g") { pendingG = true; return; }
    if (e.key === "/") { var s = document.querySelector("input[name=q]"); if (s) { e.preventDefault(); s.focus(); } }
    else if (e.key === "j") { select(1); }
    else if (e.key === "k") { select(-1); }
    else if (e.key === "l") { var f = document.querySelector("#label input[type=radio]"); if (f) { e.preventDefault(); f.focus(); } }
    else if (e.key === "?") { var d = document.getElementById("keys"); if (d && d.showModal) d.showModal(); }
  });
  document.addEventListener("click", function (e) {
    var row = e.target.closest && e.target.closest("#queue tbody tr");
    if (row && !e.target.closest("a")) { location.href = row.getAttribute("data-href"); }
  });
})();
