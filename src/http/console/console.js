// smtpgate console: plain JavaScript, no build step, nothing loaded from
// elsewhere. Each page takes its state from the URL (/?from=..., /message/REF,
// /readiness/DOMAIN) and reads the JSON API of the same listener. Every text
// from the API is set with textContent: the history holds what senders wrote.
"use strict";

(function () {
  const view = document.getElementById("view");
  const TOKEN_KEY = "smtpgate-token";
  const FILTERS = [
    ["from", "Sender", "text", "a@example.test, or @example.test"],
    ["rcpt", "Recipient", "text", "b@example.org"],
    ["login", "Login", "text", "SMTP AUTH user"],
    ["ip", "Client IP", "text", "192.0.2.7"],
    ["action", "Action", "text", "delivered, spam, blocked, refused, tempfail"],
    ["since", "Since", "text", "2h, 1d, 7d"],
    ["limit", "Limit", "number", "100"],
  ];
  const ACTION_COLOURS = {
    delivered: "#1a7f37",
    spam: "#a40e26",
    blocked: "#6e0d1a",
    refused: "#bc4c00",
    tempfail: "#7d5300",
    upstream_refused: "#8250df",
    upstream_lost: "#6639ba",
  };
  const SPARE_COLOURS = ["#0a5dc2", "#1b7c83", "#57606a", "#953800", "#4d2d8c", "#116329"];

  // --- small DOM helpers -----------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const SVG_NS = document.getElementById("svg-namespace").namespaceURI;
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) if (c) node.append(c);
    return node;
  }
  function show(title, ...content) {
    document.title = title + " – smtpgate console";
    view.replaceChildren(...content.flat(Infinity).filter(Boolean));
  }
  function fixed(n) {
    return typeof n === "number" ? n.toFixed(2) : "";
  }
  function when(unix) {
    if (typeof unix !== "number") return "";
    return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
  // `spam (alert merged)` counts as `spam`, `upstream refused` as
  // `upstream_refused` (the metrics' and the statistics' labels).
  function label_(action) {
    return (action || "").split(" (")[0].trim().replace(/ /g, "_");
  }
  function colour(action, index) {
    return ACTION_COLOURS[label_(action)] || SPARE_COLOURS[index % SPARE_COLOURS.length];
  }
  // Colours come from the style sheet (the content security policy allows
  // no inline styles); the chart's come from SVG attributes.
  function actionBadge(action) {
    const known = ACTION_COLOURS[label_(action)] ? " a-" + label_(action) : "";
    return el("span", { class: "action" + known, text: action });
  }
  function swatch(fill) {
    return svg("svg", { class: "swatch", viewBox: "0 0 10 10", "aria-hidden": "true" }, svg("rect", { width: 10, height: 10, rx: 2, fill }));
  }
  function domainOf(address) {
    const at = (address || "").lastIndexOf("@");
    return at >= 0 ? address.slice(at + 1) : "";
  }

  // --- the API ---------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { headers });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      throw new ApiError(response.status, "the answer is not JSON (" + response.status + ")");
    }
    if (!response.ok) throw new ApiError(response.status, body && body.error ? body.error : "HTTP " + response.status);
    return body;
  }
  function failure(e) {
    if (e instanceof ApiError && e.status === 401) return tokenForm(e.message);
    return el("p", { class: "error", role: "alert", text: "Error: " + e.message });
  }
  function tokenForm(message) {
    const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true });
    return el(
      "form",
      {
        class: "inline",
        onsubmit: (ev) => {
          ev.preventDefault();
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          route();
        },
      },
      el("p", { class: "error", role: "alert", text: message + " This listener asks for the API token ([http] token_file)." }),
      el("div", {}, el("label", { for: "token", text: "API token" }), input),
      el("button", { type: "submit", text: "Use the token" })
    );
  }

  // --- the messages page: search, results, activity ----------------------
  function filtersForm(params) {
    const fields = FILTERS.map(([name, label, type, hint]) => {
      const id = "f-" + name;
      const attrs = { id, name, type, value: params.get(name) || "", "aria-describedby": id + "-hint" };
      if (type === "number") attrs.min = "1";
      if (name === "from") attrs.autofocus = true;
      return el(
        "div",
        { class: name === "from" ? "wide" : null },
        el("label", { for: id, text: label }),
        el("input", attrs),
        el("p", { class: "hint", id: id + "-hint", text: hint })
      );
    });
    return el(
      "form",
      { class: "filters", method: "get", action: "/", role: "search", "aria-label": "Search the history" },
      fields,
      el("div", {}, el("button", { type: "submit", text: "Search" }))
    );
  }

  function resultsTable(records) {
    const head = el(
      "tr",
      {},
      ["Time", "Reference", "From", "To", "Subject", "Action", "Score"].map((h) =>
        el("th", { scope: "col", class: h === "Score" ? "num" : null, text: h })
      )
    );
    const rows = records.map((r) =>
      el(
        "tr",
        {},
        el("td", { class: "mono", text: when(r.time) }),
        el("td", {}, el("a", { href: "/message/" + encodeURIComponent(r.reference), class: "mono", text: r.reference })),
        el("td", { text: r.from || "<>" }),
        el("td", { text: (r.rcpts || []).join(", ") }),
        el("td", { text: r.subject || "" }),
        el("td", {}, actionBadge(r.action)),
        el("td", { class: "num", text: fixed(r.score) + " / " + fixed(r.threshold) })
      )
    );
    return el(
      "div",
      { class: "scroll" },
      el("table", { id: "results" }, el("caption", { text: "Newest first; open a reference for its breakdown." }), el("thead", {}, head), el("tbody", {}, rows))
    );
  }

  async function messagesPage(params) {
    const status = el("p", { class: "status", role: "status", "aria-live": "polite", text: "Searching…" });
    const results = el("div", {});
    const range = params.get("range") === "1d" ? "1d" : "1h";
    const activity = el("div", {}, el("p", { class: "status", text: "Loading the activity…" }));
    show(
      "Messages",
      el("h1", { text: "Messages" }),
      filtersForm(params),
      el("section", { "aria-labelledby": "results-heading" }, el("h2", { id: "results-heading", text: "Results" }), status, results),
      el("section", { "aria-labelledby": "activity-heading" }, el("h2", { id: "activity-heading", text: "Activity" }), rangeForm(params, range), activity)
    );
    const query = new URLSearchParams();
    for (const [name] of FILTERS) {
      const v = (params.get(name) || "").trim();
      if (v) query.set(name, v);
    }
    if (!query.has("limit")) query.set("limit", "100");
    const searching = api("/api/history?" + query.toString())
      .then((answer) => {
        const records = Array.isArray(answer) ? answer : [];
        status.textContent = records.length === 1 ? "1 message" : records.length + " messages";
        results.replaceChildren(records.length ? resultsTable(records) : el("p", { text: "Nothing in the history matches." }));
      })
      .catch((e) => {
        status.textContent = "";
        results.replaceChildren(failure(e));
      });
    const charting = api("/api/stats?since=" + range)
      .then((stats) => activity.replaceChildren(...activityView(stats, range)))
      .catch((e) => activity.replaceChildren(failure(e)));
    await Promise.all([searching, charting]);
  }

  function rangeForm(params, range) {
    const select = el(
      "select",
      { id: "range", name: "range" },
      el("option", { value: "1h", selected: range === "1h", text: "the last hour" }),
      el("option", { value: "1d", selected: range === "1d", text: "the last day" })
    );
    const hidden = FILTERS.map(([name]) => params.get(name) && el("input", { type: "hidden", name, value: params.get(name) }));
    return el(
      "form",
      { class: "inline", method: "get", action: "/", "aria-label": "Activity period" },
      hidden,
      el("div", {}, el("label", { for: "range", text: "Period" }), select),
      el("button", { type: "submit", class: "plain", text: "Show" })
    );
  }

  function activityView(stats, range) {
    const minutes = new Map();
    for (const m of stats.per_minute || []) minutes.set(m.minute, m.by_action || {});
    const actions = Object.keys(stats.by_action || {}).sort();
    const span = range === "1d" ? 1440 : 60;
    const lastSeen = Math.max(0, ...minutes.keys());
    const end = Math.max(Math.floor(Date.now() / 60000) * 60, lastSeen);
    const start = end - (span - 1) * 60;
    let busiest = 1;
    for (let t = start; t <= end; t += 60) {
      const counts = minutes.get(t) || {};
      busiest = Math.max(busiest, Object.values(counts).reduce((a, b) => a + b, 0));
    }
    // Four whole-number steps up to the busiest minute or just above it.
    const step = Math.ceil(busiest / 4);
    const peak = step * 4;
    const W = 960, H = 260, left = 44, bottom = 28, top = 10;
    const plotW = W - left - 8, plotH = H - bottom - top;
    const barW = plotW / span;
    const total = Object.values(stats.by_action || {}).reduce((a, b) => a + b, 0);
    const chart = svg(
      "svg",
      { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-labelledby": "chart-title chart-desc", id: "chart" },
      svg("title", { id: "chart-title", text: "Messages per minute by action, " + (range === "1d" ? "last day" : "last hour") }),
      svg("desc", { id: "chart-desc", text: total + " messages in the period; the table below gives the counts by action." })
    );
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      chart.append(svg("line", { x1: left, x2: W - 8, y1: y, y2: y, stroke: "#d0d7de", "stroke-width": 1 }));
      chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#57606a", text: String(step * i) }));
    }
    let i = 0;
    for (let t = start; t <= end; t += 60, i++) {
      const counts = minutes.get(t) || {};
      let y = top + plotH;
      actions.forEach((action, n) => {
        const c = counts[action] || 0;
        if (!c) return;
        const h = (plotH * c) / peak;
        y -= h;
        const rect = svg("rect", { x: left + i * barW, y, width: Math.max(barW - (span > 120 ? 0 : 1), 0.6), height: h, fill: colour(action, n) });
        rect.append(svg("title", { text: when(t) + ": " + c + " " + action }));
        chart.append(rect);
      });
    }
    const ticks = 6;
    for (let k = 0; k <= ticks; k++) {
      const t = start + Math.round(((end - start) * k) / ticks / 60) * 60;
      const x = left + ((t - start) / 60) * barW;
      chart.append(svg("text", { x, y: H - 8, "text-anchor": k === 0 ? "start" : k === ticks ? "end" : "middle", "font-size": 11, fill: "#57606a", text: when(t).slice(11, 16) }));
    }
    const legend = el(
      "ul",
      { class: "legend", "aria-hidden": "true" },
      actions.map((a, n) => el("li", {}, swatch(colour(a, n)), a))
    );
    const byAction = el(
      "table",
      { id: "by-action" },
      el("caption", { text: "Messages by action" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Action" }), el("th", { scope: "col", class: "num", text: "Messages" }))),
      el(
        "tbody",
        {},
        actions.length
          ? actions.map((a) => el("tr", {}, el("td", {}, actionBadge(a)), el("td", { class: "num", text: stats.by_action[a] })))
          : el("tr", {}, el("td", { colspan: 2, text: "No messages in this period." }))
      )
    );
    const top_ = stats.top_symbols || [];
    const symbols = el(
      "table",
      { id: "top-symbols" },
      el("caption", { text: "Top symbols" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Symbol" }), el("th", { scope: "col", class: "num", text: "Messages" }))),
      el(
        "tbody",
        {},
        top_.length
          ? top_.map(([name, n]) => el("tr", {}, el("td", { class: "mono", text: name }), el("td", { class: "num", text: n })))
          : el("tr", {}, el("td", { colspan: 2, text: "No symbols in this period." }))
      )
    );
    return [chart, legend, el("div", { class: "columns" }, el("div", {}, byAction), el("div", {}, symbols))];
  }

  // --- the message page: the breakdown as the SPAM alert shows it --------
  async function messagePage(reference) {
    show("Message " + reference, el("h1", { text: "Message " + reference }), el("p", { class: "status", role: "status", text: "Loading…" }));
    let answer;
    try {
      answer = await api("/api/messages/" + encodeURIComponent(reference));
    } catch (e) {
      show("Message " + reference, el("h1", { text: "Message " + reference }), failure(e));
      return;
    }
    const r = answer.record;
    const client = (r.client_name ? r.client_name + " " : "") + "[" + r.client_ip + "]";
    const facts = [
      ["Time", when(r.time)],
      ["Action", actionBadge(r.action)],
      ["Reply", r.reply],
      ["From", r.from || "<>"],
      ["To", (r.rcpts || []).join(", ")],
      ["Subject", r.subject],
      ["Message-ID", r.message_id],
      ["Client", client],
      ["HELO", r.helo],
      ["Login", r.login],
      ["Size", typeof r.size === "number" ? r.size + " octets" : ""],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    const domain = domainOf(r.from);
    show(
      "Message " + reference,
      el("h1", { text: "Message " + reference }),
      el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)])),
      el(
        "p",
        {},
        el("a", { href: "/?from=" + encodeURIComponent(r.from || ""), text: "Other messages from this sender" }),
        domain ? [" · ", el("a", { href: "/readiness/" + encodeURIComponent(domain), text: "Readiness of " + domain })] : null
      ),
      el("h2", { id: "breakdown-heading" }, el("span", { class: "score", text: "Score: " + fixed(r.score) + " (must be lower " + fixed(r.threshold) + ")" })),
      breakdownList(answer.breakdown || []),
      el("p", { class: "advice", text: "Start with the symbols with the highest scores: they have the most influence. When the score is lower than " + fixed(r.threshold) + ", the messages will be sent." })
    );
  }

  function breakdownList(symbols) {
    if (!symbols.length) return el("p", { text: "No symbols." });
    return el(
      "ol",
      { class: "symbols", "aria-labelledby": "breakdown-heading" },
      symbols.map((s) =>
        el(
          "li",
          { class: s.blocking ? "blocking" : s.score >= 1 ? "high" : s.score < 0 ? "negative" : null, "data-symbol": s.name },
          el("h3", {}, el("code", { text: s.name }), " (" + fixed(s.score) + ")", s.blocking ? el("span", { class: "blocks", text: " — blocks sending on its own" }) : null, s.shadow ? el("span", { class: "hint", text: " (shadow rule: recorded, not counted)" }) : null),
          s.description ? el("p", { class: "description", text: s.description }) : null,
          (s.options || []).length ? el("p", { class: "details", text: "Details: " + s.options.join("; ") }) : null,
          s.fix ? el("p", { class: "fix", text: "Fix: " + s.fix }) : null
        )
      )
    );
  }

  // --- the readiness page -----------------------------------------------
  function domainForm(domain) {
    return el(
      "form",
      {
        class: "inline",
        role: "search",
        "aria-label": "Readiness of a domain",
        onsubmit: (ev) => {
          ev.preventDefault();
          const d = document.getElementById("domain").value.trim();
          if (d) location.assign("/readiness/" + encodeURIComponent(d));
        },
      },
      el("div", {}, el("label", { for: "domain", text: "Domain" }), el("input", { id: "domain", name: "domain", value: domain || "", required: true, autofocus: !domain, placeholder: "example.test" })),
      el("button", { type: "submit", text: "Check" })
    );
  }

  async function readinessPage(domain) {
    const title = domain ? "Readiness of " + domain : "Readiness";
    if (!domain) {
      show(title, el("h1", { text: title }), el("p", { text: "Whether a customer domain can send through the gateway: its DNS, SPF, DKIM and DMARC as recipients will judge them, and what stopped its mail lately." }), domainForm(""));
      return;
    }
    show(title, el("h1", { text: title }), domainForm(domain), el("p", { class: "status", role: "status", text: "Checking…" }));
    let report;
    try {
      report = await api("/api/readiness/" + encodeURIComponent(domain));
    } catch (e) {
      show(title, el("h1", { text: title }), domainForm(domain), failure(e));
      return;
    }
    show(title, el("h1", { text: title }), domainForm(domain), readinessView(report));
  }

  function readinessView(report) {
    return el("div", { id: "readiness" }, value(report, 2));
  }

  // A JSON value as headings, definition lists and tables.
  function value(v, level) {
    if (v === null || v === undefined) return el("span", { class: "muted", text: "—" });
    if (Array.isArray(v)) {
      if (!v.length) return el("span", { text: "none" });
      if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
        const keys = [...new Set(v.flatMap((x) => Object.keys(x)))];
        return el(
          "div",
          { class: "scroll" },
          el(
            "table",
            {},
            el("thead", {}, el("tr", {}, keys.map((k) => el("th", { scope: "col", text: label(k) })))),
            el("tbody", {}, v.map((x) => el("tr", {}, keys.map((k) => el("td", {}, scalar(k, x[k]) || value(x[k], level + 1))))))
          )
        );
      }
      return el("ul", {}, v.map((x) => el("li", {}, Array.isArray(x) ? x.join(": ") : scalar("", x) || value(x, level + 1))));
    }
    if (typeof v === "object") {
      return el(
        "dl",
        { class: "facts" },
        Object.entries(v).map(([k, x]) => [el("dt", { text: label(k) }), el("dd", {}, scalar(k, x) || value(x, level + 1))])
      );
    }
    return scalar("", v);
  }
  function scalar(key, x) {
    if (typeof x === "boolean") return el("span", { class: x ? "check-ok" : "check-bad", text: x ? "yes" : "no" });
    if (typeof x === "number") return el("span", { text: /score/.test(key) ? fixed(x) : String(x) });
    if (typeof x === "string") {
      const status = { ok: "check-ok", pass: "check-ok", fail: "check-bad", missing: "check-bad", warn: "check-warn", warning: "check-warn" }[x.toLowerCase()];
      return el("span", { class: status || null, text: x });
    }
    return null;
  }
  function label(key) {
    const s = key.replace(/_/g, " ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  // --- routing by the URL -------------------------------------------------
  function markNav(id) {
    for (const a of document.querySelectorAll(".bar nav a")) a.removeAttribute("aria-current");
    const a = document.getElementById(id);
    if (a) a.setAttribute("aria-current", "page");
  }
  function route() {
    const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "message" && parts[1]) {
      markNav("nav-messages");
      return messagePage(parts[1]);
    }
    if (parts[0] === "readiness") {
      markNav("nav-readiness");
      return readinessPage(parts[1] || "");
    }
    markNav("nav-messages");
    return messagesPage(new URLSearchParams(location.search));
  }
  route();
})();
