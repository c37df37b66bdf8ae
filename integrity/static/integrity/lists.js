// The lists' "select all" checkbox (a header cell): it checks every row checkbox of its form.
// Without JavaScript it stays hidden and each row is checked by hand.
(function () {
  "use strict";
  function wire(root) {
    root.querySelectorAll("input.integrity-select-all").forEach(function (all) {
      all.hidden = false;
    });
  }
  document.addEventListener("change", function (event) {
    var all = event.target;
    if (!all.matches || !all.matches("input.integrity-select-all")) return;
    var form = all.getAttribute("form");
    document.querySelectorAll('input.action-select[form="' + form + '"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });
  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSwap", function (event) { wire(event.target); });
})();
