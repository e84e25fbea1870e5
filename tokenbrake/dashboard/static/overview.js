// Overview: spend today, this week and this month against the period before; for the period
// chosen, spend over time by model, the breakdowns by model, team and feature, the top users
// and keys, what was saved, the budgets closest to their cap, where the period's spend is
// forecast to end, and the anomaly alerts.
"use strict";

(() => {
  const {el} = TB;
  const periodBox = document.getElementById("period");
  const teamBox = document.getElementById("team");
  const WORDS = {day: "yesterday", week: "last week", month: "last month"};
  const seenTeams = new Set();

  function chosen() {
    const q = TB.query();
    const period = ["day", "week", "month"].includes(q.get("period")) ? q.get("period") : "week";
    return {period, team: TB.viewer ? TB.team : (q.get("team") || "")};
  }

  function scoped(extra) {
    const {team} = chosen();
    return TB.withParams(team ? new URLSearchParams({team}) : new URLSearchParams(), extra);
  }

  function span() {
    const [start] = TB.periodStart(chosen().period);
    return {since: TB.iso(start), until: TB.iso(new Date())};
  }

  async function card(period) {
    const [start, before] = TB.periodStart(period);
    const [now, prev] = await Promise.all([
      TB.get("/admin/insight/totals", scoped({since: TB.iso(start), until: TB.iso(new Date())})),
      TB.get("/admin/insight/totals", scoped({since: TB.iso(before), until: TB.iso(start)})),
    ]);
    const box = document.getElementById(`card-${period}`);
    const spent = now.current.cost_usd, was = prev.current.cost_usd;
    box.querySelector(".value").textContent = TB.usd(spent);
    const delta = TB.change(spent, was);
    box.querySelector(".prev").replaceChildren(
      `${TB.count(now.current.requests)} requests · ${WORDS[period]} ${TB.usd(was)} `,
      el("span", {class: delta.startsWith("+") ? "up" : delta.startsWith("-") ? "down" : "", text: `(${delta})`}));
  }

  async function spendOverTime() {
    const target = TB.panel("spend");
    const {period} = chosen();
    const data = await TB.get("/admin/insight/series",
                              scoped({...span(), every: period === "day" ? "hour" : "day", by: "model", top: 8,
                                       metrics: "cost_usd"}));
    const series = data.series || [];
    TB.chart(target, series.map((s) => ({type: "bar", name: TB.groupName(s.group), x: s.points.map((p) => p.t),
                                         y: s.points.map((p) => Number(p.cost_usd))})),
             {barmode: "stack", yaxis: {tickprefix: "$"}, xaxis: {type: "date"}});
    const times = [...new Set(series.flatMap((s) => s.points.map((p) => p.t)))].sort();
    const cost = new Map(series.map((s) => [TB.groupName(s.group), new Map(s.points.map((p) => [p.t, p.cost_usd]))]));
    const rows = times.map((t) => ({t, values: [...cost.values()].map((byTime) => byTime.get(t) || "0")}));
    const total = (r) => r.values.reduce((sum, v) => sum + Number(v), 0).toFixed(9);
    TB.table(target, [{label: "Time", value: (r) => TB.when(r.t)},
                      ...[...cost.keys()].map((name, i) => ({label: name, value: (r) => TB.usd(r.values[i]), num: true})),
                      {label: "Total", value: (r) => TB.usd(total(r)), num: true}],
             rows.filter((r) => r.values.some((v) => Number(v))));
  }

  async function breakdown(id, by, label) {
    const target = TB.panel(id);
    const data = await TB.get("/admin/insight/breakdown", scoped({...span(), by, top: 10}));
    const rows = data.rows || [];
    TB.bars(target, rows, (r) => TB.groupName(r.group), (r) => r.cost_usd, TB.usd);
    TB.breakdownTable(target, data, label);
    if (by === "team") {
      for (const r of rows) if (r.group.team) seenTeams.add(r.group.team);
      fillTeams();
    }
  }

  const SAVINGS = [["routing_usd", "Routing to a cheaper model"], ["downgrades_usd", "Budget downgrades"],
                   ["refusals_usd", "Refusals before spending"], ["cache_usd", "Cache"],
                   ["reduction_usd", "Context reduction"]];

  async function savings() {
    const target = TB.panel("savings");
    const data = await TB.get("/admin/insight/savings", scoped(span()));
    const rows = SAVINGS.map(([field, label]) => ({label, amount: data[field] || "0"}));
    TB.bars(target, rows, (r) => r.label, (r) => r.amount, TB.usd);
    TB.table(target, [{label: "Saved by", value: (r) => r.label}, {label: "Amount", value: (r) => TB.usd(r.amount), num: true}],
             rows, [{label: "total", amount: data.total_usd}]);
    const box = document.getElementById("card-saved");
    box.querySelector(".value").textContent = TB.usd(data.total_usd);
    box.querySelector(".prev").textContent = `${periodBox.selectedOptions[0].textContent.toLowerCase()}, by the controls`;
  }

  async function budgets() {
    const target = TB.panel("budgets");
    const {team} = chosen();
    let rows = TB.budgetRows(await TB.get("/admin/budgets"));
    if (team && !TB.viewer) rows = rows.filter((r) => r.counter.counter === `team:${team}` || r.counter.tenant === `team:${team}`);
    rows = rows.slice(0, 10);
    TB.budgetBars(target, rows);
    TB.table(target, TB.BUDGET_COLUMNS, rows);
  }

  // The period's spend so far (the global month, or the team's: a team's budget's period if it
  // has one) and its forecast to the end, with the forecast's 80% band.
  async function forecast() {
    const target = TB.panel("forecast");
    const {team} = chosen();
    const data = await TB.get("/admin/insight/forecast",
                              new URLSearchParams(team && !TB.viewer ? {scope: `team:${team}`} : {}));
    const found = (data.forecasts || [])[0];
    if (!found || found.status !== "ok") {
      target.chart.hidden = true;
      target.wrap.replaceChildren();
      TB.say(target, found ? TB.forecastNote(found) : "No spend to forecast.", "empty");
      return;
    }
    const now = new Date(), start = new Date(found.period_start || Date.now() - 30 * 86400000);
    const step = (now - start) <= 2 * 86400000 ? "hour" : "day";
    const params = new URLSearchParams(Object.entries(found.filters).flatMap(([name, values]) => values.map((v) => [name, v])));
    const spent = await TB.get("/admin/insight/series", TB.withParams(params, {since: TB.iso(start), until: TB.iso(now),
                                                                               every: step, metrics: "cost_usd"}));
    let sum = 0;
    const points = ((spent.series || [])[0] || {points: []}).points;
    const stepMs = step === "hour" ? 3600000 : 86400000;
    const x = [TB.iso(start)], y = [0];
    for (const p of points) {
      sum += Number(p.cost_usd);
      x.push(TB.iso(new Date(Math.min(new Date(p.t).getTime() + stepMs, now.getTime()))));
      y.push(sum);
    }
    const traces = [{type: "scatter", mode: "lines", name: "spent", x, y, line: {width: 2.5}}, ...TB.forecastTraces(found)];
    if (found.budget_usd) {
      traces.push({type: "scatter", mode: "lines", name: "budget", x: [found.period_start, found.period_end],
                   y: [Number(found.budget_usd), Number(found.budget_usd)], line: {dash: "dot", color: "#ef4444"}});
    }
    TB.chart(target, traces, {yaxis: {tickprefix: "$", rangemode: "tozero"},
                              xaxis: {type: "date", range: [TB.iso(start), found.period_end]}});
    TB.table(target, TB.FORECAST_COLUMNS, found.path.slice(1));
    TB.say(target, TB.forecastNote(found));
  }

  const ANOMALY_COLUMNS = [
    {label: "Since", value: (a) => TB.when(a.since)}, {label: "Kind", value: (a) => a.kind.replaceAll("_", " ")},
    {label: "Scope", value: (a) => a.scope}, {label: "Factor", value: (a) => (a.factor === null ? "new" : `x${a.factor}`), num: true},
    {label: "So far", value: (a) => TB.usd(String(a.cost_so_far_usd)), num: true},
    {label: "A day at this pace", value: (a) => TB.usd(String(a.projected_usd_per_day)), num: true},
    {label: "Behind it", value: (a) => a.contributors.slice(0, 3).map((c) => `${c.kind} ${c.name} ${Math.round(c.share * 100)}%`).join(", ")},
    {label: "Stop it", value: (a) => a.remedy}, {label: "State", value: (a) => (a.ended_at ? `ended ${TB.when(a.ended_at)}` : "ON")},
  ];

  async function anomalies() {
    const target = TB.panel("anomalies");
    const {team} = chosen();
    const data = await TB.get("/admin/insight/anomalies", new URLSearchParams({since: "7d"}));
    const rows = (data.anomalies || []).filter((a) => !team || a.team === team);
    TB.table(target, ANOMALY_COLUMNS, rows);
  }

  function fillTeams() {
    const {team} = chosen();
    if (team) seenTeams.add(team);
    const have = new Set([...teamBox.options].map((o) => o.value));
    for (const name of [...seenTeams].sort()) if (!have.has(name)) teamBox.append(el("option", {value: name, text: name}));
    teamBox.value = team;
  }

  function setUp() {
    const {period} = chosen();
    periodBox.value = period;
    if (TB.viewer) {
      teamBox.replaceChildren(el("option", {value: TB.team, text: TB.team}));
      teamBox.disabled = true;
    }
    fillTeams();
    const changed = () => {
      const q = TB.query();
      q.set("period", periodBox.value);
      q.delete("team");
      if (teamBox.value && !TB.viewer) q.set("team", teamBox.value);
      TB.keep(q);
      refresh();
    };
    periodBox.addEventListener("change", changed);
    teamBox.addEventListener("change", changed);
  }

  setUp();
  const refresh = TB.every(() => TB.panels({
    "card-day": () => card("day"), "card-week": () => card("week"), "card-month": () => card("month"),
    spend: spendOverTime, "by-model": () => breakdown("by-model", "model", "Model"),
    "by-team": () => breakdown("by-team", "team", "Team"), "by-feature": () => breakdown("by-feature", "tag.feature", "Feature"),
    "top-users": () => breakdown("top-users", "user", "User"), "top-keys": () => breakdown("top-keys", "key", "Key"),
    savings, budgets, forecast, anomalies,
  }));
})();
