// What every dashboard page shares: the API, numbers as people read them, tables, charts,
// the URL's query, the theme toggle and the 10-second refresh. Each page's script uses `TB`.
"use strict";

window.TB = (() => {
  const body = document.body;
  const viewer = body.dataset.role === "viewer";
  const team = body.dataset.team || "";
  const actions = body.dataset.actions === "on";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const REFRESH_MS = 10000;
  const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
                   "#f97316", "#64748b", "#14b8a6", "#a855f7"];

  // ---- the API: JSON with the login's cookie; a lapsed login goes back to the login form
  async function get(path, params) {
    const qs = params ? params.toString() : "";
    const response = await fetch(path + (qs ? "?" + qs : ""),
                                 {headers: {accept: "application/json"}, credentials: "same-origin", cache: "no-store"});
    return answer(response);
  }

  async function post(path) {
    const response = await fetch(path, {method: "POST", credentials: "same-origin",
                                        headers: {accept: "application/json", "x-csrf-token": csrf}});
    return answer(response);
  }

  async function answer(response) {
    if (response.status === 401) {
      location.href = "/dashboard/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("the login has ended");
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || `${response.status} ${response.statusText}`);
    return data;
  }

  // ---- numbers, rounded from their decimal strings (no binary floating point in between)
  function roundDecimal(text, places) {  // "0.0012345", 4 -> "0.0012"; half up; thousands with commas
    let s = String(text).trim().toLowerCase();
    const negative = s.startsWith("-");
    s = s.replace(/^[-+]/, "");
    const [mantissa, exponent = "0"] = s.split("e");
    const [whole, fraction = ""] = mantissa.split(".");
    let digits = whole + fraction;
    let point = whole.length + parseInt(exponent, 10);  // where the decimal point falls in `digits`
    if (point < 0) { digits = "0".repeat(-point) + digits; point = 0; }
    digits = digits.padEnd(point + places + 1, "0");
    const kept = digits.slice(0, point + places).split("").map(Number);
    if (Number(digits[point + places]) >= 5) {
      let i = kept.length - 1;
      for (; i >= 0 && kept[i] === 9; i--) kept[i] = 0;
      if (i >= 0) kept[i] += 1; else kept.unshift(1);
    }
    const all = kept.join("").padStart(places + 1, "0");
    const integer = all.slice(0, all.length - places).replace(/^0+(?=\d)/, "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const shown = places ? `${integer}.${all.slice(all.length - places)}` : integer;
    return (negative && /[1-9]/.test(shown) ? "-" : "") + shown;
  }

  function usd(text) {
    if (text === null || text === undefined || text === "") return "–";
    const size = Math.abs(Number(text));
    if (size === 0) return "$0.00";
    const places = size >= 1 ? 2 : size >= 0.01 ? 4 : 6;
    const shown = roundDecimal(text, places);
    return shown.startsWith("-") ? "-$" + shown.slice(1) : "$" + shown;
  }

  const count = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const ms = (n) => (n === null || n === undefined ? "–" : `${Math.round(Number(n)).toLocaleString("en-US")} ms`);
  const percent = (share) => `${(share * 100).toFixed(1)}%`;

  function when(iso) {  // 2026-12-01 10:00:05, UTC
    return iso ? String(iso).replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : "–";
  }

  function change(now, before) {  // "+12.5%" against the previous period
    const a = Number(now), b = Number(before);
    if (!b) return a ? "new" : "no change";
    const share = (a - b) / b;
    return `${share >= 0 ? "+" : ""}${(share * 100).toFixed(1)}%`;
  }

  // ---- UTC periods: today, this week (from Monday), this month, and the one before each
  function periodStart(kind, at = new Date()) {
    const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
    if (kind === "day") return [day, new Date(day.getTime() - 86400000)];
    if (kind === "week") {
      const monday = new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * 86400000);
      return [monday, new Date(monday.getTime() - 7 * 86400000)];
    }
    const first = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
    return [first, new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() - 1, 1))];
  }
  const iso = (date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

  // ---- the URL's query keeps each page's choices
  const query = () => new URLSearchParams(location.search);

  function keep(params) {
    const qs = params.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
    linkPages();
  }

  function linkPages() {  // the team chosen follows from page to page
    const chosen = query().getAll("team");
    for (const link of document.querySelectorAll("nav a")) {
      const url = new URL(link.href);
      url.search = "";
      for (const name of chosen) url.searchParams.append("team", name);
      link.href = url.pathname + url.search;
    }
  }

  // The filters of the page's own query that the API takes (repeatable: team=a&team=b).
  const FILTERS = ["key", "team", "user", "model", "asked", "upstream", "session", "status"];
  function filters(from = query()) {
    const out = new URLSearchParams();
    for (const [name, value] of from) {
      if (value && (FILTERS.includes(name) || name.startsWith("tag."))) out.append(name, value);
    }
    return out;
  }

  function withParams(base, extra) {
    const out = new URLSearchParams(base);
    for (const [name, value] of Object.entries(extra)) {
      if (value !== undefined && value !== null && value !== "") out.set(name, value);
    }
    return out;
  }

  // ---- elements
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // A panel: its title, a chart (when plotly.js is there) and a table under it.
  function panel(id) {
    const section = document.getElementById(id);
    if (!section._tb) {
      const chart = window.Plotly ? el("div", {class: "chart", id: `${id}-chart`}) : null;
      const message = el("p", {class: "message", id: `${id}-message`});
      const wrap = el("div", {class: "table-wrap", id: `${id}-table`});
      section.replaceChildren(el("h2", {text: section.dataset.title || ""}), chart || "", message, wrap);
      section._tb = {chart, message, wrap};
    }
    return section._tb;
  }

  function say(target, text, kind = "") {
    target.message.textContent = text || "";
    target.message.className = "message " + kind;
  }

  // columns: [{label, value: row => text, num: true?, class: row => name?}]
  function table(target, columns, rows, footer = null) {
    const head = el("tr", {}, ...columns.map((c) => el("th", {class: c.num ? "num" : "", scope: "col", text: c.label})));
    const line = (row) => el("tr", {}, ...columns.map((c) => {
      const shown = c.value(row);
      const cell = el("td", {class: [c.num ? "num" : "", c.class ? c.class(row) : ""].join(" ").trim()});
      if (shown instanceof Node) cell.append(shown); else cell.textContent = shown ?? "";
      return cell;
    }));
    const parts = [el("thead", {}, head), el("tbody", {}, ...rows.map(line))];
    if (footer) parts.push(el("tfoot", {}, ...footer.map(line)));
    const node = el("table", {class: "data"}, ...parts);
    target.wrap.replaceChildren(node);
    say(target, rows.length ? "" : "Nothing in this period yet.", rows.length ? "" : "empty");
    return node;
  }

  function meter(share) {
    const bar = el("span");
    bar.style.width = `${Math.min(100, Math.max(0, share * 100)).toFixed(1)}%`;
    const box = el("span", {class: `meter${share >= 1 ? " full" : share >= 0.8 ? " warn" : ""}`}, bar);
    return el("span", {}, box, percent(share));
  }

  // ---- charts: plotly.js drawn in the page's theme; redrawn when the theme changes
  const drawn = new Map();

  function chart(target, traces, layout = {}) {
    if (!window.Plotly || !target.chart) return;
    const empty = !traces.some((trace) => (trace.x || []).length);
    target.chart.hidden = empty;  // the table under it says there is nothing yet
    if (empty) return;
    drawn.set(target.chart, [traces, layout]);
    draw(target.chart, traces, layout);
  }

  function draw(node, traces, layout) {
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--fg").trim(), grid = css.getPropertyValue("--grid").trim();
    const axis = (extra) => ({gridcolor: grid, zerolinecolor: grid, automargin: true, exponentformat: "none", ...extra});
    const full = {
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", colorway: PALETTE, height: 280,
      font: {color: fg, size: 12, family: "system-ui, sans-serif"}, margin: {l: 10, r: 10, t: 10, b: 10},
      legend: {orientation: "h", y: -0.25}, hoverlabel: {namelength: -1},
      ...layout, xaxis: axis(layout.xaxis), yaxis: axis(layout.yaxis),
    };
    window.Plotly.react(node, traces, full, {displayModeBar: false, responsive: true});
  }

  function bars(target, rows, label, value, format, layout = {}) {  // one horizontal bar per row, biggest on top
    const shown = rows.slice().reverse();
    chart(target, [{type: "bar", orientation: "h", y: shown.map(label), x: shown.map((r) => Number(value(r))),
                    text: shown.map((r) => format(value(r))), textposition: "auto", hoverinfo: "y+text",
                    marker: {color: PALETTE[0]}}],
          {height: 70 + 30 * Math.max(2, shown.length), bargap: 0.3, yaxis: {type: "category"}, showlegend: false,
           ...layout});
  }

  function toggleTheme() {
    const dark = getComputedStyle(document.documentElement).colorScheme.includes("dark");
    const next = dark ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("tb-theme", next); } catch (e) { /* not kept */ }
    for (const [node, [traces, layout]] of drawn) if (node.isConnected) draw(node, traces, layout);
  }

  // ---- refresh: now, then every 10 s while the page is shown (not when a fetch still runs)
  function every(work) {
    let running = null, again = false;
    const status = document.getElementById("status");
    const once = async () => {
      try {
        await work();
        status.textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC`;
        status.className = "";
      } catch (error) {
        status.textContent = `Could not refresh: ${error.message}`;
        status.className = "failed";
      }
    };
    const run = () => {  // a change made while a refresh runs gets a refresh of its own after it
      if (running) { again = true; return running; }
      running = (async () => {
        do { again = false; await once(); } while (again);
        running = null;
      })();
      return running;
    };
    run();
    setInterval(() => { if (!document.hidden) run(); }, REFRESH_MS);
    return run;
  }

  // Runs each panel's work on its own, so one failing panel says why and the others still draw.
  async function panels(works) {
    const results = await Promise.allSettled(Object.values(works).map((work) => work()));
    const names = Object.keys(works);
    const failed = results.map((r, i) => [r, names[i]]).filter(([r]) => r.status === "rejected");
    for (const [result, name] of failed) {
      const node = document.getElementById(name);
      if (node && node.classList.contains("panel")) say(panel(name), result.reason.message, "error");
      else if (node && node.querySelector(".prev")) node.querySelector(".prev").textContent = result.reason.message;
    }
    if (failed.length === results.length && failed.length) throw failed[0][0].reason;
  }

  // ---- groups and budgets, as several pages show them
  function groupName(group) {
    if (!group || group.other) return group && group.other ? "other" : "all";
    const parts = Object.values(group).map((v) => (v === null || v === undefined || v === "" ? "(none)" : String(v)));
    return parts.length ? parts.join(" · ") : "all";
  }

  // Every budget counter as a row, closest to its cap first.
  // Each budget's share used, on a scale from nothing to the cap (and past it).
  function budgetBars(target, rows) {
    const most = Math.max(100, ...rows.map((r) => r.share * 100));
    bars(target, rows, (r) => r.name, (r) => r.share * 100, (v) => `${Number(v).toFixed(1)}% used`,
         {xaxis: {range: [0, most * 1.02], ticksuffix: "%"}});
  }

  function budgetRows(data) {
    const rows = [];
    for (const budget of data.data || []) {
      for (const counter of budget.counters || []) {
        const amount = Number(budget.amount_usd);
        const used = Number(counter.spent_usd || 0) + Number(counter.reserved_usd || 0);
        rows.push({budget, counter, amount, share: amount ? used / amount : 0,
                   name: counter.counter + (counter.tenant ? ` in ${counter.tenant}` : "")});
      }
    }
    return rows.sort((a, b) => b.share - a.share);
  }

  // ---- forecasts (/admin/insight/forecast): the way to the period's end as chart traces, its
  // 80% interval a band around it; `toY` turns a spend into what the chart shows (the spend, or
  // what a budget has left of it)
  function forecastTraces(forecast, toY = (spend) => spend) {
    const path = forecast.path || [];
    const x = path.map((p) => p.t);
    const end = (p, which) => toY(Number(p.intervals[0][which]));
    return [
      {type: "scatter", mode: "lines", name: "80% interval", x, y: path.map((p) => end(p, "low_usd")),
       line: {width: 0}, showlegend: false, hoverinfo: "skip"},
      {type: "scatter", mode: "lines", name: "80% interval", x, y: path.map((p) => end(p, "high_usd")),
       line: {width: 0}, fill: "tonexty", fillcolor: "rgba(148, 163, 184, 0.35)", hoverinfo: "skip"},
      {type: "scatter", mode: "lines", name: "forecast", x, y: path.map((p) => toY(Number(p.forecast_usd))),
       line: {dash: "dash", width: 2}},
    ];
  }

  function forecastNote(forecast) {
    if (forecast.status !== "ok") return `No forecast: ${forecast.reason}.`;
    const [eighty] = forecast.intervals;
    const out = !forecast.runs_out_at ? "" : new Date(forecast.runs_out_at) <= new Date()
      ? `; the budget ran out ${when(forecast.runs_out_at)}` : `; at this pace the budget runs out ${when(forecast.runs_out_at)}`;
    return `Forecast for ${when(forecast.period_end)}: ${usd(forecast.forecast_usd)} ` +
           `(80% between ${usd(eighty.low_usd)} and ${usd(eighty.high_usd)})${out}.`;
  }

  const FORECAST_COLUMNS = [
    {label: "By", value: (p) => when(p.t)},
    {label: "Forecast spend", value: (p) => usd(p.forecast_usd), num: true},
    {label: "80% low", value: (p) => usd(p.intervals[0].low_usd), num: true},
    {label: "80% high", value: (p) => usd(p.intervals[0].high_usd), num: true},
  ];

  const BUDGET_COLUMNS = [
    {label: "Budget", value: (r) => r.name},
    {label: "Period", value: (r) => r.budget.period},
    {label: "Mode", value: (r) => r.budget.mode},
    {label: "Amount", value: (r) => usd(r.budget.amount_usd), num: true},
    {label: "Spent", value: (r) => usd(r.counter.spent_usd), num: true},
    {label: "Reserved", value: (r) => usd(r.counter.reserved_usd), num: true},
    {label: "Remaining", value: (r) => usd(r.counter.remaining_usd), num: true},
    {label: "Used", value: (r) => meter(r.share)},
    {label: "Resets", value: (r) => when(r.counter.resets_at)},
  ];

  // The metric columns of a breakdown row, or of its total.
  const METRIC_COLUMNS = [
    {label: "Requests", value: (r) => count(r.requests), num: true},
    {label: "Errors", value: (r) => count(r.errors), num: true},
    {label: "Input tokens", value: (r) => count(r.input_tokens), num: true},
    {label: "Output tokens", value: (r) => count(r.output_tokens), num: true},
    {label: "Cost", value: (r) => usd(r.cost_usd), num: true},
    {label: "Saved", value: (r) => usd(r.saved_usd), num: true},
    {label: "p95 latency", value: (r) => ms(r.latency_ms_p95), num: true},
  ];

  function breakdownTable(target, data, label) {
    const footer = [];
    if (data.other) footer.push({...data.other, group: {other: true}});
    if (data.total) footer.push({...data.total, group: {total: true}});
    const name = (r) => (r.group && r.group.total ? "total" : groupName(r.group));
    return table(target, [{label, value: name}, ...METRIC_COLUMNS], data.rows || [], footer);
  }

  document.getElementById("theme-toggle").addEventListener("click", toggleTheme);
  linkPages();

  return {viewer, team, actions, get, post, usd, count, ms, percent, when, change, periodStart, iso, query, keep,
          filters, withParams, el, panel, say, table, meter, chart, bars, every, panels, groupName, budgetRows, budgetBars,
          BUDGET_COLUMNS, METRIC_COLUMNS, breakdownTable, PALETTE, roundDecimal, forecastTraces, forecastNote,
          FORECAST_COLUMNS};
})();
