// The /lag dashboard: polls /v1/ops/lag with the API key kept in localStorage; no build step.
"use strict";
(function () {
  const KEY = "fairstream.apiKey";
  const $ = (id) => document.getElementById(id);
  const state = { open: null, timer: null, interval: 10, data: null };
  // ?minutes=N sets the sparklines' span (default the last hour).
  const minutes = Math.min(Math.max(Number(new URLSearchParams(location.search).get("minutes")) || 60, 1), 1560);

  // A key passed once as ?key=... is stored, then removed from the address bar.
  const params = new URLSearchParams(location.search);
  if (params.get("key")) {
    localStorage.setItem(KEY, params.get("key"));
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function seconds(v) {
    if (v === null || v === undefined) return "∞";
    if (v < 1) return v === 0 ? "0 s" : v.toFixed(2) + " s";
    if (v < 60) return v.toFixed(1) + " s";
    const s = Math.round(v), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), r = s % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    return m + "m " + String(r).padStart(2, "0") + "s";
  }
  function num(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"); }
  function rate(v) { return v === null || v === undefined ? "–" : v < 10 ? v.toFixed(2) : Math.round(v).toLocaleString("en-US"); }
  function badge(s) { return '<span class="badge s-' + esc(s) + '">' + esc(s) + "</span>"; }

  // Inline SVG sparkline of [t, lag_seconds, lag, status] points.
  function sparkline(points, w, h) {
    if (!points || points.length < 2) return '<svg class="spark" width="' + w + '" height="' + h + '"><text x="0" y="' + (h - 4) + '" fill="#8a94a3" font-size="11">collecting…</text></svg>';
    const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
    const values = points.map((p) => p[1]);
    const max = Math.max(1, ...values);
    // From zero, unless the lag never came near it: then from the minimum, to show the trend.
    const lo = Math.min(...values) > max / 2 ? Math.min(...values) * 0.98 : 0;
    const x = (t) => ((t - t0) / Math.max(t1 - t0, 1)) * (w - 2) + 1;
    const y = (v) => h - 2 - ((v - lo) / Math.max(max - lo, 1e-9)) * (h - 4);
    const line = points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
    const area = line + " L" + x(t1).toFixed(1) + " " + (h - 1) + " L" + x(t0).toFixed(1) + " " + (h - 1) + " Z";
    const last = points[points.length - 1];
    const bad = ["ERR", "STOP", "STALL", "REWIND"].includes(last[3]);
    const color = bad ? "#c62828" : last[3] === "WARN" ? "#c98a00" : last[3] === "REPLAYING" ? "#2f6fd1" : "#1f8a4c";
    return '<svg class="spark" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '" role="img" aria-label="time lag, max ' + esc(seconds(max)) + '">' +
      '<path d="' + area + '" fill="' + color + '" fill-opacity="0.15"/>' +
      '<path d="' + line + '" fill="none" stroke="' + color + '" stroke-width="1.5"/>' +
      '<circle cx="' + x(last[0]).toFixed(1) + '" cy="' + y(last[1]).toFixed(1) + '" r="2.5" fill="' + color + '"/></svg>';
  }

  async function api(path) {
    const key = localStorage.getItem(KEY);
    if (!key) { askKey(""); throw new Error("no key"); }
    const res = await fetch(path, { headers: { "X-API-Key": key } });
    if (res.status === 401 || res.status === 403) {
      const body = await res.json().catch(() => ({}));
      askKey((body.error && body.error.message) || "the key was refused");
      throw new Error("refused");
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    return res.json();
  }

  function askKey(message) {
    $("keyform").hidden = false;
    $("keyerror").textContent = message;
  }

  function summary(groups) {
    const counts = {};
    groups.forEach((g) => { counts[g.status] = (counts[g.status] || 0) + 1; });
    const order = ["ERR", "STOP", "STALL", "REWIND", "WARN", "REPLAYING", "OK", "NOTFOUND"];
    $("summary").innerHTML = '<span class="chip">' + groups.length + " groups</span>" +
      order.filter((s) => counts[s]).map((s) => '<span class="chip t-' + s + '">' + counts[s] + " " + s + "</span>").join("");
  }

  function render() {
    const data = state.data;
    if (!data) return;
    const filter = $("filter").value.trim().toLowerCase();
    const groups = data.groups
      .filter((g) => !filter || g.group.toLowerCase().includes(filter))
      .sort((a, b) => b.max_lag_seconds - a.max_lag_seconds || b.max_lag - a.max_lag || a.group.localeCompare(b.group));
    summary(data.groups);
    const when = new Date(data.collected_at * 1000).toLocaleTimeString();
    $("meta").textContent = "collected " + when + " · every " + data.interval_seconds + " s · window " +
      data.window_seconds + " s" + (data.collector_error ? " · collector error: " + data.collector_error : "");
    const rows = groups.map((g) => {
      const open = state.open === g.group;
      const row = '<tr class="group-row' + (open ? " open" : "") + '" data-group="' + esc(g.group) + '">' +
        "<td>" + badge(g.status) + "</td>" +
        '<td class="group" title="' + esc(g.group) + '">' + esc(g.group) + "</td>" +
        '<td class="num t-' + esc(g.status) + '"><b>' + seconds(g.max_lag_seconds) + "</b></td>" +
        '<td class="num">' + num(g.max_lag) + "</td>" +
        '<td class="num">' + num(g.total_lag) + "</td>" +
        '<td class="num">' + rate(g.consume_rate) + "</td>" +
        '<td class="num">' + (g.total_lag === 0 ? "–" : seconds(g.catch_up_seconds)) + "</td>" +
        "<td>" + esc(g.state) + " · " + g.members + "</td>" +
        "<td>" + sparkline(g.history, 180, 28) + "</td></tr>";
      return open ? row + '<tr class="detail-row"><td class="detail" colspan="9" id="detail">loading partitions…</td></tr>' : row;
    });
    document.querySelector("#groups tbody").innerHTML = rows.join("");
    $("empty").hidden = groups.length > 0;
    if (state.open) loadDetail(state.open);
  }

  async function loadDetail(group) {
    try {
      const g = await api("/v1/ops/lag/" + encodeURIComponent(group) + "?history_minutes=" + minutes + "&points=120");
      const cell = $("detail");
      if (!cell || state.open !== group) return;
      const parts = g.partitions.map((p) =>
        "<tr><td>" + badge(p.status) + "</td><td>" + esc(p.topic) + '</td><td class="num">' + p.partition +
        '</td><td class="num">' + num(p.committed) + '</td><td class="num">' + num(p.log_end) +
        '</td><td class="num">' + num(p.lag) + '</td><td class="num">' + seconds(p.lag_seconds) +
        '</td><td class="num">' + rate(p.consume_rate) + '</td><td class="num">' + rate(p.produce_rate) +
        '</td><td class="num">' + (p.lag === 0 ? "–" : seconds(p.catch_up_seconds)) + "</td><td>" + (p.assigned ? "yes" : "no") + "</td></tr>").join("");
      cell.innerHTML = '<div class="detail-head"><h3>' + esc(g.group) + "</h3>" +
        "<span>evaluated: " + badge(g.evaluated_status) + "</span>" +
        (g.replaying ? "<span>replaying: statuses are not alarms</span>" : "") +
        "<span>" + sparkline(g.history, 420, 48) + "</span></div>" +
        '<table class="partitions"><thead><tr><th>status</th><th>topic</th><th class="num">partition</th>' +
        '<th class="num">committed</th><th class="num">log end</th><th class="num">lag</th><th class="num">time lag</th>' +
        '<th class="num">consumed /s</th><th class="num">produced /s</th><th class="num">catch-up</th><th>assigned</th></tr></thead><tbody>' +
        (parts || '<tr><td colspan="11">no committed offsets</td></tr>') + "</tbody></table>";
    } catch (e) {
      const cell = $("detail");
      if (cell) cell.textContent = "could not load partitions: " + e.message;
    }
  }

  async function refresh() {
    clearTimeout(state.timer);
    try {
      state.data = await api("/v1/ops/lag?history_minutes=" + minutes + "&points=60");
      state.interval = state.data.interval_seconds || 10;
      $("keyform").hidden = true;
      render();
    } catch (e) {
      if (e.message !== "no key" && e.message !== "refused") $("meta").textContent = "refresh failed: " + e.message;
    }
    if ($("auto").checked) state.timer = setTimeout(refresh, state.interval * 1000);
  }

  document.querySelector("#groups tbody").addEventListener("click", (ev) => {
    const row = ev.target.closest("tr.group-row");
    if (!row) return;
    state.open = state.open === row.dataset.group ? null : row.dataset.group;
    render();
  });
  $("filter").addEventListener("input", render);
  $("auto").addEventListener("change", refresh);
  $("forget").addEventListener("click", () => { localStorage.removeItem(KEY); askKey(""); });
  $("keyentry").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    refresh();
  });
  $("span").textContent = minutes === 60 ? "last hour" : minutes < 60 ? "last " + minutes + " min" : "last " + (minutes / 60).toFixed(1) + " h";
  refresh();
})();
