// Explore: any series and breakdown of the insight API. The page's address is the query: its
// parameters are the API's own (since, every, by, top, the filters) plus the metric shown.
"use strict";

(() => {
  const {el} = TB;
  const form = document.getElementById("controls");
  const DIMENSIONS = ["model", "team", "key", "user", "asked", "upstream", "session", "status", "tag"];
  const TEXT_FILTERS = ["team", "key", "user", "model", "asked", "upstream", "session"];
  const field = (name) => form.elements[name];
  const METRIC_LABELS = Object.fromEntries([...field("metric").options].map((o) => [o.value, o.textContent]));

  function formatOf(metric) {
    if (metric.endsWith("_usd")) return TB.usd;
    if (metric.startsWith("latency")) return TB.ms;
    return TB.count;
  }

  // The page's query (with defaults) -> the form; the form -> the query.
  function read() {
    const q = TB.query();
    const by = (q.get("by") || "model").split(",").filter(Boolean);
    const dim = (d) => (d && d.startsWith("tag.") ? "tag" : d || "");
    const tag = by.find((d) => d.startsWith("tag."));
    return {q, metric: q.get("metric") || "cost_usd", since: q.get("since") || "7d", every: q.get("every") || "hour",
            by: dim(by[0]) || "model", by2: dim(by[1]), bytag: tag ? tag.slice(4) : "", top: q.get("top") || "10"};
  }

  function fill() {
    const now = read();
    for (const name of ["by", "by2"]) {
      const box = field(name);
      box.replaceChildren(...(name === "by2" ? [el("option", {value: "", text: "(nothing)"})] : []),
                          ...DIMENSIONS.map((d) => el("option", {value: d, text: d})));
    }
    for (const name of ["metric", "since", "every", "by", "by2", "bytag", "top"]) field(name).value = now[name];
    for (const name of TEXT_FILTERS) field(name).value = now.q.getAll(name).join(",");
    field("status").value = now.q.get("status") || "";
    const tag = [...now.q.keys()].find((k) => k.startsWith("tag."));
    field("tag").value = tag ? `${tag.slice(4)}=${now.q.get(tag)}` : "";
    if (TB.viewer) { field("team").value = TB.team; field("team").disabled = true; }
  }

  function written() {
    const q = new URLSearchParams();
    const dim = (d) => (d === "tag" ? `tag.${field("bytag").value.trim() || "feature"}` : d);
    const by = [field("by").value, field("by2").value].filter(Boolean).map(dim);
    q.set("metric", field("metric").value);
    q.set("since", field("since").value);
    q.set("every", field("every").value);
    q.set("by", [...new Set(by)].join(","));
    q.set("top", String(Math.max(1, Math.min(50, parseInt(field("top").value, 10) || 10))));
    for (const name of TEXT_FILTERS) {
      if (name === "team" && TB.viewer) continue;
      for (const value of field(name).value.split(",").map((v) => v.trim()).filter(Boolean)) q.append(name, value);
    }
    if (field("status").value) q.set("status", field("status").value);
    const [tagName, ...tagValue] = field("tag").value.split("=");
    if (tagName.trim() && tagValue.length) q.set(`tag.${tagName.trim()}`, tagValue.join("=").trim());
    return q;
  }

  function apiQuery(extra) {
    const q = TB.query();
    const out = TB.filters(q);
    for (const name of ["since", "until", "by", "top"]) if (q.get(name)) out.set(name, q.get(name));
    return TB.withParams(out, extra);
  }

  // A chart shows at most MAX_POINTS buckets a line (about a point per pixel of its width): a
  // finer `every` over a longer span is drawn at the finest one that fits, and says so.
  const MAX_POINTS = 1500;  // a day of minutes fits; 90 days of hours (2,160) do not
  const STEP_S = {minute: 60, hour: 3600, day: 86400};
  const UNIT_S = {m: 60, h: 3600, d: 86400};

  function spanSeconds(since) {
    const relative = /^(\d+)([mhd])$/.exec(since);
    if (relative) return Number(relative[1]) * UNIT_S[relative[2]];
    const start = Date.parse(since);
    return Number.isNaN(start) ? 0 : (Date.now() - start) / 1000;
  }

  function drawnEvery(every, since) {
    const span = spanSeconds(since);
    const fits = ["minute", "hour", "day"].filter((e) => STEP_S[e] >= STEP_S[every] && span / STEP_S[e] <= MAX_POINTS);
    return fits[0] || "day";
  }

  async function series() {
    const target = TB.panel("series");
    const {metric, every: asked, since} = read();
    const every = drawnEvery(asked, since);
    const data = await TB.get("/admin/insight/series", apiQuery({every, metrics: metric}));
    const all = data.series || [];
    const format = formatOf(metric);
    const mode = all.some((s) => s.points.length > 48) ? "lines" : "lines+markers";
    TB.chart(target, all.map((s) => ({type: "scatter", mode, name: TB.groupName(s.group),
                                      x: s.points.map((p) => p.t), y: s.points.map((p) => Number(p[metric] ?? 0))})),
             {xaxis: {type: "date"}, yaxis: {title: {text: METRIC_LABELS[metric]}}});
    const times = [...new Set(all.flatMap((s) => s.points.map((p) => p.t)))].sort();
    const byGroup = all.map((s) => new Map(s.points.map((p) => [p.t, p[metric]])));
    TB.table(target, [{label: "Time", value: (t) => TB.when(t)},
                      ...all.map((s, i) => ({label: TB.groupName(s.group), value: (t) => format(byGroup[i].get(t) ?? 0), num: true}))],
             times.filter((t) => byGroup.some((points) => Number(points.get(t) || 0))));  // the buckets with something
    if (every !== asked) {
      const points = Math.round(spanSeconds(since) / STEP_S[asked]).toLocaleString("en-US");
      TB.say(target, `By ${asked} this span would be ${points} points a line, more than the chart can show: ` +
                     `drawn by ${every}. Shorten the span to see ${asked}s.`);
    }
  }

  async function breakdown() {
    const target = TB.panel("breakdown");
    const {metric} = read();
    const data = await TB.get("/admin/insight/breakdown", apiQuery({}));
    const format = formatOf(metric);
    TB.bars(target, data.rows || [], (r) => TB.groupName(r.group), (r) => r[metric] ?? 0, format);
    TB.breakdownTable(target, data, (data.by || []).join(" · ") || "group");
  }

  fill();
  if (!TB.query().get("by")) TB.keep(written());
  const permalink = document.getElementById("permalink");
  const linked = () => { permalink.href = location.pathname + location.search; };
  linked();
  const refresh = TB.every(() => TB.panels({series, breakdown}));
  form.addEventListener("change", () => { TB.keep(written()); linked(); refresh(); });
  form.addEventListener("submit", (event) => event.preventDefault());
})();
