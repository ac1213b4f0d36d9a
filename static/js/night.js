// A movie night's page: copy the link, send a member's stars, announce the group's list when
// it changes (not on every poll) and keep focus where it was. Served from static/ (the CSP
// allows no inline script); without it the page still works, except giving stars.
(function () {
  "use strict";

  const $ = (selector, root) => (root || document).querySelector(selector);
  let lastAnnounced = "";
  let focused = null; // the id of the focused control inside the list, kept across a swap

  document.addEventListener("DOMContentLoaded", function () {
    const live = $("#night-live");
    if (live) lastAnnounced = live.dataset.announce || "";
    document.querySelectorAll("[data-copy]").forEach((button) => button.removeAttribute("hidden"));
    // A page that answers a form (an import, a join, a refusal) is the night's page: its
    // address says so, and a reload shows the night rather than posting the form again.
    const layout = $(".night-layout");
    const here = layout && layout.dataset.nightUrl;
    if (here && location.pathname !== here) history.replaceState(null, "", here);
    // What an import found is where the member looks next (autofocus may not have moved there).
    const imported = $("#night-imported");
    if (imported && document.activeElement !== imported) imported.focus();
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    const status = $("#copy-status");
    const told = (text) => status && (status.textContent = text);
    field.select();
    if (navigator.clipboard) {
      navigator.clipboard.writeText(field.value).then(
        () => told("Link copied."),
        () => told("Press Ctrl+C (or ⌘C) to copy the selected link.")
      );
    } else {
      told("Press Ctrl+C (or ⌘C) to copy the selected link.");
    }
  });

  // A star changed: save it as this member's rating (the answer is their ratings, in place).
  document.addEventListener("change", function (event) {
    const input = event.target;
    const mine = $("#night-mine");
    if (!mine || !window.htmx || !input.matches("#night-rate .stars input[type=radio]")) return;
    window.htmx.ajax("POST", mine.dataset.url, { source: mine, values: { set: input.value } });
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    if (target && target.id === "night-live") {
      const active = document.activeElement;
      focused = active && target.contains(active) && active.id ? active.id : null;
    }
    // A refusal comes with HX-Reswap: none; show its message in the page's alert instead.
    const xhr = event.detail.xhr;
    if (xhr && xhr.status >= 400 && xhr.getResponseHeader("HX-Reswap") === "none") {
      const alert = $("#night-alert");
      const box = document.createElement("div");
      box.innerHTML = event.detail.serverResponse;
      if (alert) alert.textContent = box.textContent.trim();
    }
  });

  // The list is swapped out whole (outerHTML) when the night changed: announce it once, and
  // put focus back on the same control, or on the list's heading if that film has gone.
  document.addEventListener("htmx:afterSettle", function () {
    const live = $("#night-live");
    const text = live && live.dataset.announce;
    if (text && text !== lastAnnounced) $("#night-status").textContent = text;
    lastAnnounced = text || lastAnnounced;
    if (focused) {
      // A picked film has no "Pick this" any more: its undo is where the choice now is.
      const undo = focused.startsWith("pick-") ? $("#undo-pick") : null;
      const again = document.getElementById(focused) || undo || $("#list-title");
      if (again) again.focus();
      focused = null;
    }
  });
})();
