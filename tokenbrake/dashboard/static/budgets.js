// Budgets: every budget in force, and for each counter its burn-down through the period, read
// from the insight series with the filters its scope names, against an even pace to the reset,
// and what its forecast leaves of it to the period's end (a line, and its 80% band).
"use strict";

(() => {
  const {el} = TB;
  const MAX_CHARTS = 12;
  const LENGTH_S = {minute: 60, hour: 3600, day: 86400, week: 7 * 86400};

  // The period a counter is in: [start, end] from its reset time (end) and the budget's period.
  function window_(budget, counter) {
    const end = counter.resets_at ? new Date(counter.resets_at) : new Date();
    if (budget.period === "month") {
      return [new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() - 1, end.getUTCDate(), end.getUTCHours(),
                                end.getUTCMinutes())), end];
    }
    if (budget.period === "rolling") return [new Date(Date.now() - (budget.rolling_s || 86400) * 1000), new Date()];
    if (budget.period === "total") return [new Date(Date.now() - 90 * 86400000), new Date()];
    return [new Date(end.getTime() - LENGTH_S[budget.period] * 1000), end];
  }

  function every(start, end) {
    const seconds = (end - start) / 1000;
    return seconds <= 7200 ? "minute" : seconds <= 2 * 86400 ? "hour" : "day";
  }

  // The insight filters naming a counter's requests: `team:search` -> team=search; a
  // `user:alice` counter in tenant `team:a` -> user=alice&team=a; `tag:feature=x` -> tag.feature=x.
  function scopeFilters(counter) {
    const out = new URLSearchParams();
    const add = (name) => {
      const at = name.indexOf(":");
      const kind = name.slice(0, at), value = name.slice(at + 1);
      if (["team", "key", "user", "model"].includes(kind)) out.append(kind, value);
      else if (kind === "tag") {
        const eq = value.indexOf("=");
        out.append(`tag.${value.slice(0, eq)}`, value.slice(eq + 1));
      }
    };
    if (counter.counter && counter.counter !== "global") add(counter.counter);
    if (counter.tenant) add(counter.tenant);
    return out;
  }

  function chartPanel(index, row) {
    const id = `burndown-${index}`;
    let section = document.getElementById(id);
    if (!section) {
      section = el("section", {class: "panel", id});
      document.getElementById("burndowns").append(section);
    }
    section.dataset.title = `${row.name} (${row.budget.period}, ${row.budget.mode}): ${TB.usd(row.budget.amount_usd)}`;
    if (section._tb) section.querySelector("h2").textContent = section.dataset.title;
    return TB.panel(id);
  }

  // The forecast of a budget's counter, from the list /admin/insight/forecast answers.
  function forecastOf(forecasts, row) {
    return forecasts.find((f) => f.budget_usd !== null && f.scope === row.budget.scope && f.period === row.budget.period
                          && (f.counter || f.scope) === row.counter.counter && (f.tenant || null) === (row.counter.tenant || null));
  }

  async function burndown(index, row, forecast) {
    const target = chartPanel(index, row);
    const [start, end] = window_(row.budget, row.counter);
    const step = every(start, end);
    const data = await TB.get("/admin/insight/series", TB.withParams(scopeFilters(row.counter),
                                                                      {since: TB.iso(start), until: TB.iso(end), every: step, metrics: "cost_usd"}));
    const now = new Date();
    const points = (data.series && data.series[0] ? data.series[0].points : [])
      .filter((p) => new Date(p.t) <= now).sort((a, b) => (a.t < b.t ? -1 : 1));  // none from the future
    let spent = 0;
    const rows = points.map((p) => {
      spent += Number(p.cost_usd);
      return {t: p.t, cost: p.cost_usd, spent: spent.toFixed(9), left: (row.amount - spent).toFixed(9)};
    });
    const left = Number(row.counter.remaining_usd ?? row.amount - spent);
    TB.chart(target, [
      {type: "scatter", mode: "lines", name: "even pace", x: [TB.iso(start), TB.iso(end)], y: [row.amount, 0],
       line: {dash: "dot", color: "#94a3b8"}},
      {type: "scatter", mode: "lines", name: "remaining", line: {shape: "hv", width: 2.5},
       x: [TB.iso(start), ...rows.map((r) => r.t), TB.iso(now < end ? now : end)],
       y: [row.amount, ...rows.map((r) => Number(r.left)), left]},
      ...(forecast && forecast.status === "ok" ? TB.forecastTraces(forecast, (spend) => row.amount - spend) : []),
    ], {yaxis: {tickprefix: "$", rangemode: "tozero"}, xaxis: {type: "date", range: [TB.iso(start), TB.iso(end)]},
        height: 240});
    TB.table(target, [{label: "Time", value: (r) => TB.when(r.t)}, {label: "Spent then", value: (r) => TB.usd(r.cost), num: true},
                      {label: "Spent so far", value: (r) => TB.usd(r.spent), num: true},
                      {label: "Remaining", value: (r) => TB.usd(r.left), num: true}],
             rows.filter((r) => Number(r.cost)),
             [{t: "now (settled and reserved)", cost: null, spent: String(row.amount - left), left: String(left)}]);
    if (forecast) TB.say(target, TB.forecastNote(forecast));
  }

  async function all() {
    const rows = TB.budgetRows(await TB.get("/admin/budgets"));
    const target = TB.panel("budget-table");
    TB.budgetBars(target, rows);
    TB.table(target, TB.BUDGET_COLUMNS, rows);
    if (!rows.length) TB.say(target, TB.viewer ? `No budget counts team ${TB.team}'s spend.` : "No budgets are set.", "empty");
    const shown = rows.slice(0, MAX_CHARTS);
    const holder = document.getElementById("burndowns");
    while (holder.children.length > shown.length) holder.lastElementChild.remove();
    const forecasts = shown.length ? (await TB.get("/admin/insight/forecast")).forecasts || [] : [];
    const results = await Promise.allSettled(shown.map((row, i) => burndown(i, row, forecastOf(forecasts, row))));
    results.forEach((r, i) => { if (r.status === "rejected") TB.say(TB.panel(`burndown-${i}`), r.reason.message, "error"); });
  }

  TB.every(() => TB.panels({"budget-table": all}));
})();
