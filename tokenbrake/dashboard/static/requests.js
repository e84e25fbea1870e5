// Requests: the latest rows of the ledger (status, tokens, cost, latency, served model, route,
// flags), filtered by the page's query; "Older requests" pages back and pauses the refresh.
"use strict";

(() => {
  const form = document.getElementById("controls");
  const older = document.getElementById("older");
  const newest = document.getElementById("newest");
  const FIELDS = ["team", "key", "model", "status"];
  const LIMIT = 50;
  let before = null;  // paging back: the oldest row shown so far
  let oldest = null;

  const statusClass = (status) => (status === 0 ? "status-0" : `status-${String(status)[0]}xx`);
  const model = (r) => (r.requested_model && r.requested_model !== r.served_model
    ? `${r.requested_model} → ${r.served_model || "–"}` : r.served_model || r.requested_model || "–");

  const COLUMNS = [
    {label: "Time", value: (r) => TB.when(r.ts)},
    {label: "Key", value: (r) => r.key_name || "–"},
    {label: "Team", value: (r) => r.team || "–"},
    {label: "User", value: (r) => r.user || "–"},
    {label: "Model (asked → served)", value: model},
    {label: "Route", value: (r) => r.route || "–"},
    {label: "Upstream", value: (r) => r.upstream || r.provider || "–"},
    {label: "Status", value: (r) => String(r.status), class: (r) => statusClass(r.status), num: true},
    {label: "Input", value: (r) => TB.count(r.input_tokens), num: true},
    {label: "Cached", value: (r) => TB.count(r.cached_input_tokens), num: true},
    {label: "Output", value: (r) => TB.count(r.output_tokens), num: true},
    {label: "Reasoning", value: (r) => TB.count(r.reasoning_tokens), num: true},
    {label: "Cost", value: (r) => TB.usd(r.cost_usd), num: true},
    {label: "Saved", value: (r) => TB.usd(r.saved_usd), num: true},
    {label: "Latency", value: (r) => TB.ms(r.latency_ms), num: true},
    {label: "Stream", value: (r) => (r.stream ? "yes" : "")},
    {label: "Flags", value: (r) => (r.flags || []).join(", ")},
  ];

  function fill() {
    const q = TB.query();
    for (const name of FIELDS) form.elements[name].value = q.get(name) || "";
    if (TB.viewer) { form.elements.team.value = TB.team; form.elements.team.disabled = true; }
  }

  async function load() {
    const target = TB.panel("requests");
    const params = TB.withParams(TB.filters(), {limit: LIMIT, before});
    const rows = (await TB.get("/admin/insight/requests", params)).rows || [];
    oldest = rows.length ? rows[rows.length - 1].ts : null;
    older.disabled = rows.length < LIMIT;
    const shown = rows.slice().reverse();
    const colors = {2: "#10b981", 4: "#f59e0b", 5: "#ef4444", 0: "#ef4444"};
    TB.chart(target, [{type: "scatter", mode: "markers", x: shown.map((r) => r.ts), y: shown.map((r) => Number(r.latency_ms)),
                       text: shown.map((r) => `${model(r)} · ${r.status} · ${TB.usd(r.cost_usd)}`), hoverinfo: "x+y+text",
                       marker: {size: shown.map((r) => 7 + Math.min(18, Math.sqrt(Number(r.cost_usd) * 1e5))),
                                color: shown.map((r) => colors[String(r.status)[0]] || "#64748b")}}],
             {xaxis: {type: "date"}, yaxis: {title: {text: "latency (ms); size: cost"}, rangemode: "tozero"},
              showlegend: false, height: 240});
    TB.table(target, COLUMNS, rows);
  }

  fill();
  const refresh = TB.every(() => (before ? Promise.resolve() : TB.panels({requests: load})));
  form.addEventListener("change", () => {
    const q = TB.query();
    for (const name of FIELDS) {
      q.delete(name);
      if (form.elements[name].value.trim() && !(TB.viewer && name === "team")) q.set(name, form.elements[name].value.trim());
    }
    TB.keep(q);
    before = null;
    newest.hidden = true;
    refresh();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  older.addEventListener("click", () => {
    before = oldest;
    newest.hidden = false;
    TB.panels({requests: load});
  });
  newest.addEventListener("click", () => { before = null; newest.hidden = true; refresh(); });
})();
