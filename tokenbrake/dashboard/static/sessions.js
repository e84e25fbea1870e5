// Sessions: live agent sessions by cost, the stopped ones (loops, limits, operators) with why
// and what they cost, and the sessions the ledger saw in the last 7 days. An admin can stop
// and resume a live session (a POST with the login's CSRF token).
"use strict";

(() => {
  const {el} = TB;

  function act(session, verb) {
    const path = `/admin/sessions/${encodeURIComponent(session.session)}/${verb}?key=${encodeURIComponent(session.key)}`;
    return el("button", {type: "button", class: "act", "data-session": session.session, text: verb,
                         onclick: async (event) => {
                           event.target.disabled = true;
                           try {
                             await TB.post(path);
                             await refresh();
                           } catch (error) {
                             TB.say(TB.panel("live"), `${verb} ${session.session}: ${error.message}`, "error");
                           }
                         }});
  }

  const COLUMNS = [
    {label: "Session", value: (s) => s.session},
    {label: "Key", value: (s) => s.key},
    {label: "Status", value: (s) => s.status, class: (s) => `status-${s.status}`},
    {label: "Calls", value: (s) => TB.count(s.calls), num: true},
    {label: "Calls/min", value: (s) => TB.count(s.calls_last_minute), num: true},
    {label: "Tokens", value: (s) => TB.count(s.tokens), num: true},
    {label: "Cost", value: (s) => TB.usd(s.cost_usd), num: true},
    {label: "Loop calls", value: (s) => TB.count(s.loop_calls), num: true},
    {label: "Last seen", value: (s) => TB.when(s.last_seen)},
  ];
  const ACTIONS = {label: "", value: (s) => act(s, s.status === "stopped" ? "resume" : "stop")};

  function costBars(target, sessions) {
    const top = sessions.slice(0, 15).reverse();
    TB.chart(target, [{type: "bar", orientation: "h", y: top.map((s) => `${s.session} (${s.key})`),
                       x: top.map((s) => Number(s.cost_usd)), text: top.map((s) => TB.usd(s.cost_usd)),
                       marker: {color: top.map((s) => (s.status === "stopped" ? "#ef4444" : TB.PALETTE[0]))}}],
             {height: 70 + 30 * Math.max(2, top.length), bargap: 0.3, yaxis: {type: "category"}, showlegend: false});
  }

  async function live() {
    const data = (await TB.get("/admin/sessions")).data || [];
    const sessions = data.slice().sort((a, b) => Number(b.cost_usd) - Number(a.cost_usd));
    const stopped = sessions.filter((s) => s.status === "stopped");
    const sum = (list) => list.reduce((total, s) => total + Number(s.cost_usd), 0).toFixed(9);
    const card = (id, list) => {
      const box = document.getElementById(id);
      box.querySelector(".value").textContent = TB.count(list.length);
      box.querySelector(".prev").textContent = `costing ${TB.usd(sum(list))}`;
    };
    card("card-live", sessions);
    card("card-stopped", stopped);
    const liveTarget = TB.panel("live");
    costBars(liveTarget, sessions);
    TB.table(liveTarget, TB.actions ? [...COLUMNS, ACTIONS] : COLUMNS, sessions);
    const stoppedTarget = TB.panel("stopped");
    costBars(stoppedTarget, stopped);
    TB.table(stoppedTarget, [
      ...COLUMNS.slice(0, 2), {label: "Why", value: (s) => s.reason || "–"}, {label: "Evidence", value: (s) => s.evidence || "–"},
      {label: "Stopped", value: (s) => TB.when(s.stopped_at)}, {label: "Calls", value: (s) => TB.count(s.calls), num: true},
      {label: "Cost", value: (s) => TB.usd(s.cost_usd), num: true}, ...(TB.actions ? [ACTIONS] : []),
    ], stopped, stopped.length ? [{session: "total", key: "", calls: stopped.reduce((n, s) => n + s.calls, 0),
                                    cost_usd: sum(stopped)}] : null);
    if (!stopped.length) TB.say(stoppedTarget, "No session is stopped.", "empty");
  }

  async function history() {
    const target = TB.panel("history");
    const data = await TB.get("/admin/insight/breakdown", new URLSearchParams({since: "7d", by: "session", top: "20"}));
    const rows = (data.rows || []).filter((r) => r.group.session);
    TB.bars(target, rows, (r) => TB.groupName(r.group), (r) => r.cost_usd, TB.usd);
    TB.breakdownTable(target, {...data, rows, total: null}, "Session");  // (its total would count calls of no session)
  }

  const refresh = TB.every(() => TB.panels({live, history}));
})();
