// Movie Night: what htmx attributes alone cannot do. Served from static/ (the CSP allows no
// inline script). Without it the pages still work, except rating films (the page says so).
(function () {
  "use strict";

  const CLICK_DELAY = 150; // ms: a click saves almost at once
  const KEY_DELAY = 700; // ms: arrow presses in a row save once, when they stop
  const timers = new Map(); // film id -> pending save
  let lastArrow = 0;
  let busy = 0; // htmx requests under way for the visitor's list
  let focusPlan = null; // where focus goes after the next swap of #visitor

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function announce(regionId, text) {
    const region = document.getElementById(regionId);
    if (region && text) region.textContent = text;
  }

  // ---- Rating films (/rate) -------------------------------------------------------------

  function visitor() {
    return document.getElementById("visitor");
  }

  function markBusy() {
    const v = visitor();
    if (v) v.setAttribute("aria-busy", String(busy > 0 || timers.size > 0));
  }

  // Every change to the visitor's list goes through #visitor, which is never replaced: its
  // hx-sync="this:queue all" sends each request after the previous answer has swapped in,
  // and hx-include="#rate-state" then reads the ratings that answer brought. So a request
  // always carries every rating made so far, whatever the timing of clicks and answers.
  // A saved profile's page (data-method="post") sends the change alone: its ratings are
  // stored, and the server applies the change to them.
  function send(values) {
    const v = visitor();
    if (!v || !window.htmx) return;
    // A list too long for an address (an imported history) is posted instead.
    const state = $("#rate-state input[name=r]");
    const long = state && state.value.length > Number(v.dataset.postOver || Infinity);
    const post = long || v.dataset.method === "post";
    window.htmx.ajax(post ? "POST" : "GET", v.dataset.url, { source: v, values: values });
  }

  function saveRating(input) {
    const value = input.value;
    const film = value.split(":")[0];
    clearTimeout(timers.get(film));
    const delay = Date.now() - lastArrow < 100 ? KEY_DELAY : CLICK_DELAY;
    timers.set(
      film,
      setTimeout(function () {
        timers.delete(film);
        if (input.closest("#visitor")) focusPlan = { film: film };
        send({ set: value });
        markBusy();
      }, delay)
    );
    markBusy();
  }

  document.addEventListener("keydown", function (event) {
    if (event.target.matches && event.target.matches(".stars input") && event.key.startsWith("Arrow")) {
      lastArrow = Date.now();
    }
  });

  document.addEventListener("change", function (event) {
    const input = event.target;
    if (!visitor()) return;
    if (input.matches(".stars input[type=radio]")) {
      saveRating(input);
    } else if (input.closest("#rate-state")) {
      send({});
    }
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button[name=remove]");
    if (!button || !visitor()) return;
    const all = $$("#visitor button[name=remove]");
    focusPlan = { removedAt: all.indexOf(button) };
    send({ remove: button.value });
  });

  // The stars in the search results follow the ratings the server confirmed: those in the
  // address's r on /rate, or a saved profile's, which its list names in data-rated.
  function syncFoundStars() {
    const form = $("#rate-state");
    if (!form) return;
    const state = $("input[name=r]", form);
    const given = state ? state.value : form.dataset.rated || "";
    const rated = new Map(
      given
        .split(",")
        .filter(Boolean)
        .map((pair) => pair.split(":"))
    );
    $$("#found .stars input[type=radio]").forEach(function (radio) {
      const [film, value] = radio.value.split(":");
      radio.checked = rated.has(film) && Number(rated.get(film)) === Number(value);
    });
  }

  function placeFocusInVisitor() {
    const plan = focusPlan;
    focusPlan = null;
    const active = document.activeElement;
    if (!plan || (active && active !== document.body && document.contains(active))) return;
    let target = null;
    if (plan.film) {
      target = $(`#visitor .stars input[name=set][value^="${plan.film}:"]:checked`);
    } else if (plan.removedAt !== undefined) {
      const buttons = $$("#visitor button[name=remove]");
      target = buttons[Math.min(plan.removedAt, buttons.length - 1)] || null;
    }
    (target || $("#rated-title")).focus();
  }

  // ---- Both pages ------------------------------------------------------------------------

  // An error answered in place names its field: mark it as the full page would.
  function markInvalid(root) {
    $$("[data-marked-invalid]").forEach(function (field) {
      field.removeAttribute("aria-invalid");
      field.removeAttribute("data-marked-invalid");
    });
    const alert = $("[role=alert][data-field]", root);
    const field = alert && document.getElementById(alert.dataset.field);
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.setAttribute("data-marked-invalid", "");
      return field;
    }
    return null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    const target = event.detail.target;
    if (!target) return;
    target.setAttribute("aria-busy", "true");
    if (target.id === "visitor") {
      busy += 1;
      announce("visitor-status", "Finding films…");
    } else if (target.id === "results") {
      announce("results-status", "Finding films…");
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    // The target asked for: a failed import is answered elsewhere (HX-Retarget), and the
    // request it ends was counted against #visitor.
    const asked = event.detail.requestConfig && event.detail.requestConfig.target;
    const target = asked || event.detail.target;
    if (!target) return;
    if (target.id === "visitor") {
      busy = Math.max(0, busy - 1);
      markBusy();
    } else {
      target.setAttribute("aria-busy", "false");
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail.target;
    if (!target) return;
    const invalid = markInvalid(target);
    const summary = $("[data-announce]", target);
    if (target.id === "visitor") {
      syncFoundStars();
      announce("visitor-status", summary ? summary.dataset.announce : "Your list is up to date.");
      if (invalid && event.detail.requestConfig && event.detail.requestConfig.elt === invalid.form) {
        invalid.focus();
      } else {
        placeFocusInVisitor();
      }
    } else if (target.id === "found") {
      // Search results come with the stars of the ratings sent, if any: bring them up to date.
      syncFoundStars();
    } else if (target.id === "results") {
      if (summary) announce("results-status", summary.dataset.announce);
      else announce("results-status", " ");
      // The results come to the user: focus the heading (it scrolls into view on a phone),
      // or the field that needs fixing.
      const heading = $("#recs-title", target);
      if (invalid) invalid.focus();
      else if (heading) heading.focus();
    }
  });

  // Back and Forward: htmx brings back the results from its history cache, and the form
  // must say what made them, which is the address.
  document.addEventListener("htmx:historyRestore", function () {
    $$("[aria-busy=true]").forEach((element) => element.setAttribute("aria-busy", "false"));
    const form = document.getElementById("search");
    if (!form) return;
    const params = new URLSearchParams(location.search);
    $$("input[name], select[name]", form).forEach(function (field) {
      const given = params.get(field.name);
      if (field.tagName === "SELECT") {
        field.value = given || field.dataset.default || field.value;
      } else {
        field.value = given || "";
      }
      field.removeAttribute("aria-invalid");
    });
  });
})();
