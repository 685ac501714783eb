// The btt node web UI: plain ES2020, no framework, no build step, no network beyond this node.
//
// Layout of this file:
// * format helpers (bytes, rates, ETA, BTT amounts from wei strings with BigInt);
// * `api()`: JSON requests with the Transmission-style session handshake on mutations;
// * live updates: an EventSource on /api/v1/events, polling /api/v1/torrents every 2 s while it is down;
// * rendering: the torrent table (one DOM row per torrent, updated in place), the detail panel
//   with its tabs, the rate graph and piece map canvases, the wallet, chain and session panels;
// * the add form, row actions and the remove dialog.
//
// Every value from the server reaches the page through textContent or attributes, never innerHTML.
"use strict";

(() => {
  const API = "/api/v1";
  const POLL_MS = 2000;
  const SIDE_POLL_MS = 10000;
  const GRAPH_WINDOW_MS = 120000;
  const SSE_RETRY_MS = 15000;
  const WEI_PER_BTT = 10n ** 18n;

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ formatting

  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function fmtBytes(n) {
    n = Number(n) || 0;
    let i = 0;
    while (n >= 1024 && i < UNITS.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + " " + UNITS[i];
  }

  const fmtRate = (n) => fmtBytes(n) + "/s";

  function fmtEta(t) {
    if (t.state === "seeding" || t.progress >= 1) return "done";
    if (t.state === "stopped" || t.state === "error") return "—";
    if (t.eta_s === null || t.eta_s === undefined) return "∞";
    let s = Math.max(0, Math.round(t.eta_s));
    const parts = [];
    for (const [unit, len] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
      if (s >= len || (unit === "s" && parts.length === 0)) {
        parts.push(Math.floor(s / len) + unit);
        s %= len;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  }

  function fmtRatio(r) {
    if (r === null || r === undefined || !Number.isFinite(r)) return "—";
    return r.toFixed(r < 10 ? 2 : 1);
  }

  // Progress text never rounds up: "100%" means every piece is there.
  function fmtPercent(p) {
    p = Number(p) || 0;
    if (p >= 1) return "100%";
    return (Math.floor(p * 1000) / 10).toFixed(1) + "%";
  }

  // BTT amounts arrive as decimal strings of wei. They stay BigInt all the way to the text:
  // a float cannot hold 18 decimals of a balance.
  function parseWei(s) {
    if (typeof s === "number" && Number.isSafeInteger(s)) return BigInt(s);
    if (typeof s !== "string" || !/^-?[0-9]+$/.test(s)) return null;
    return BigInt(s);
  }

  function groupThousands(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // "1,234.5 BTT": the fraction is cut (never rounded) to `decimals` digits, trailing zeros dropped.
  function fmtBtt(wei, decimals = 6) {
    const v = parseWei(wei);
    if (v === null) return "—";
    const neg = v < 0n;
    const abs = neg ? -v : v;
    const whole = abs / WEI_PER_BTT;
    let frac = (abs % WEI_PER_BTT).toString().padStart(18, "0").slice(0, decimals).replace(/0+$/, "");
    if (frac === "" && abs % WEI_PER_BTT !== 0n && whole === 0n) {
      // Too small for the shown digits: say so rather than print 0.
      return (neg ? "-" : "") + "<0." + "0".repeat(decimals - 1) + "1 BTT";
    }
    return (neg ? "-" : "") + groupThousands(whole.toString()) + (frac ? "." + frac : "") + " BTT";
  }

  // The exact amount, for the title attribute.
  function exactBtt(wei) {
    const v = parseWei(wei);
    if (v === null) return "";
    const neg = v < 0n;
    const abs = neg ? -v : v;
    const frac = (abs % WEI_PER_BTT).toString().padStart(18, "0").replace(/0+$/, "");
    return (neg ? "-" : "") + (abs / WEI_PER_BTT).toString() + (frac ? "." + frac : "") + " BTT (" + v.toString() + " wei)";
  }

  function fmtAgo(ms) {
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 0) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }

  // ------------------------------------------------------------------ messages

  // Messages sit in the page flow above the content, so they never cover a button. `topic`
  // groups them: a later success on the same topic (say "add") clears the stale errors.
  function showMessage(text, kind = "error", topic = "") {
    const box = document.createElement("div");
    box.className = "message " + kind;
    box.dataset.topic = topic;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.dataset.testid = kind === "error" ? "error" : "notice";
    const span = document.createElement("span");
    span.textContent = text;
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "✕";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => box.remove());
    box.append(span, close);
    $("messages").append(box);
    // Notices go away by themselves; errors stay until dismissed so they can be read.
    if (kind !== "error") setTimeout(() => box.remove(), 5000);
    while ($("messages").children.length > 3) $("messages").firstElementChild.remove();
  }

  function clearMessages(topic) {
    for (const m of [...$("messages").children]) if (m.dataset.topic === topic) m.remove();
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let sessionId = null;

  async function loadSession() {
    const s = await api("GET", "/session");
    sessionId = s.session_id || sessionId;
    return s;
  }

  async function send(method, path, body) {
    const headers = { Accept: "application/json" };
    if (sessionId) headers["X-Transmission-Session-Id"] = sessionId;
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(API + path, init);
  }

  // Sends a request and returns the parsed JSON body; throws ApiError with the server's message.
  async function api(method, path, body) {
    const mutating = method !== "GET" && method !== "HEAD";
    if (mutating && !sessionId) {
      try {
        await loadSession();
      } catch (_) {
        // The 409 handshake below still recovers the id.
      }
    }
    let res;
    try {
      res = await send(method, path, body);
      if (mutating && res.status === 409) {
        const fresh = res.headers.get("X-Transmission-Session-Id");
        if (fresh && fresh !== sessionId) {
          sessionId = fresh;
          res = await send(method, path, body);
        }
      }
    } catch (e) {
      throw new ApiError(0, "network", "cannot reach the node (" + e.message + "); is `btt node` running?");
    }
    const text = await res.text();
    let json = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch (_) {
        json = null;
      }
    }
    if (!res.ok) {
      const err = json && json.error;
      const message = err && err.message ? err.message : text.trim().slice(0, 300) || res.statusText;
      throw new ApiError(res.status, err && err.code, message + " (HTTP " + res.status + ")");
    }
    return json;
  }

  // ------------------------------------------------------------------ state

  const torrents = new Map(); // id -> Torrent
  let selectedId = null;
  let activeTab = "files";
  let lastStats = null;
  const samples = []; // {t, down, up}

  function upsert(t) {
    if (t && t.id !== undefined) torrents.set(t.id, t);
  }

  function replaceAll(list) {
    const seen = new Set();
    for (const t of list) {
      upsert(t);
      seen.add(t.id);
    }
    for (const id of [...torrents.keys()]) if (!seen.has(id)) torrents.delete(id);
  }

  function pushSample(stats) {
    let down = 0;
    let up = 0;
    if (stats) {
      down = stats.download_rate || 0;
      up = stats.upload_rate || 0;
    } else {
      for (const t of torrents.values()) {
        down += t.download_rate || 0;
        up += t.upload_rate || 0;
      }
    }
    const now = Date.now();
    samples.push({ t: now, down, up });
    while (samples.length && samples[0].t < now - GRAPH_WINDOW_MS - 5000) samples.shift();
  }

  // ------------------------------------------------------------------ live updates

  let source = null;
  let pollTimer = null;

  function setConn(state, text) {
    const el = $("conn");
    el.dataset.state = state;
    el.textContent = text;
  }

  function onTorrents(data) {
    replaceAll(data.torrents || []);
    if (data.stats) lastStats = data.stats;
    pushSample(data.stats);
    renderAll();
  }

  function startEvents() {
    if (typeof EventSource === "undefined") {
      startPolling();
      return;
    }
    source = new EventSource(API + "/events");
    source.addEventListener("open", () => {
      stopPolling();
      setConn("live", "live");
    });
    const handler = (fn) => (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      if (pollTimer) {
        stopPolling();
        setConn("live", "live");
      }
      fn(data);
    };
    source.addEventListener("torrents", handler(onTorrents));
    source.addEventListener("added", handler((d) => {
      upsert(d.torrent);
      renderAll();
    }));
    source.addEventListener("state", handler((d) => {
      upsert(d.torrent);
      renderAll();
    }));
    source.addEventListener("removed", handler((d) => {
      torrents.delete(d.id);
      if (selectedId === d.id) closeDetail();
      renderAll();
    }));
    source.addEventListener("error", () => {
      startPolling();
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (a non-stream answer); try again later, polling meanwhile.
        source = null;
        setTimeout(startEvents, SSE_RETRY_MS);
      }
    });
  }

  async function pollOnce() {
    try {
      const [list, stats] = await Promise.all([
        api("GET", "/torrents?limit=1000"),
        api("GET", "/stats").catch(() => null),
      ]);
      onTorrents({ torrents: list.torrents || [], stats });
      setConn("polling", "polling");
    } catch (e) {
      setConn("offline", "offline");
    }
  }

  function startPolling() {
    if (pollTimer) return;
    setConn("polling", "polling");
    pollOnce();
    pollTimer = setInterval(pollOnce, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  // ------------------------------------------------------------------ torrent table

  const rows = new Map(); // id -> {tr, cells}

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function progressBar() {
    const wrap = el("div", "progress");
    wrap.setAttribute("role", "progressbar");
    wrap.setAttribute("aria-valuemin", "0");
    wrap.setAttribute("aria-valuemax", "100");
    const bar = el("div", "bar");
    const label = el("span", "pct");
    wrap.append(bar, label);
    return wrap;
  }

  function setProgress(wrap, p, state) {
    const pct = fmtPercent(p);
    wrap.querySelector(".bar").style.width = Math.min(100, Math.max(0, (Number(p) || 0) * 100)) + "%";
    wrap.querySelector(".pct").textContent = pct;
    wrap.setAttribute("aria-valuenow", String(Math.floor((Number(p) || 0) * 100)));
    if (state !== undefined) wrap.dataset.state = state;
  }

  // Compact glyph buttons in the rows (the detail panel has worded ones); the name is in aria-label.
  const ACTION_GLYPHS = { start: "▶", stop: "■", remove: "✕" };

  function actionButton(act, label) {
    const b = el("button", (act === "remove" ? "danger " : "") + "icon-btn", ACTION_GLYPHS[act]);
    b.type = "button";
    b.dataset.act = act;
    b.dataset.testid = act;
    b.title = label;
    b.setAttribute("aria-label", label);
    return b;
  }

  function makeRow(t) {
    const tr = document.createElement("tr");
    tr.dataset.testid = "torrent-row";
    tr.tabIndex = 0;
    // cells.<column> is the <td>; the progress bar, name and buttons inside have their own keys.
    const cells = {};
    const add = (key, cls, label) => {
      const td = el("td", cls);
      td.dataset.label = label;
      td.dataset.col = key;
      tr.append(td);
      cells[key] = td;
      return td;
    };
    const name = add("name", "c-name", "Name");
    cells.nameText = el("span", "name-text");
    cells.error = el("span", "row-error");
    name.append(cells.nameText, cells.error);
    add("size", "c-size", "Size");
    cells.bar = progressBar();
    add("progress", "c-progress", "Progress").append(cells.bar);
    add("state", "c-state", "State");
    add("down", "c-num", "Down");
    add("up", "c-num", "Up");
    add("eta", "c-num", "ETA");
    add("peers", "c-num", "Peers");
    add("ratio", "c-num", "Ratio");
    add("earned", "c-num", "Earned");
    const actions = add("actions", "c-actions", "");
    cells.start = actionButton("start", "Start");
    cells.stop = actionButton("stop", "Stop");
    const buttons = el("div", "row-actions");
    buttons.append(cells.start, cells.stop, actionButton("remove", "Remove"));
    actions.append(buttons);
    tr.addEventListener("click", (ev) => {
      if (ev.target.closest("button")) return;
      openDetail(Number(tr.dataset.id));
    });
    tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && ev.target === tr) openDetail(Number(tr.dataset.id));
    });
    actions.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-act]");
      if (b) act(b.dataset.act, Number(tr.dataset.id), b);
    });
    return { tr, cells };
  }

  function updateRow(row, t) {
    const { tr, cells } = row;
    tr.dataset.id = String(t.id);
    tr.dataset.hash = t.hash;
    tr.dataset.state = t.state;
    tr.classList.toggle("selected", t.id === selectedId);
    setText(cells.nameText, t.name || t.hash);
    cells.nameText.title = t.name + "\n" + t.hash;
    setText(cells.error, t.error ? t.error : "");
    setText(cells.size, t.size_bytes ? fmtBytes(t.size_bytes) : "?");
    setProgress(cells.bar, t.progress, t.state);
    setText(cells.state, t.state);
    cells.state.className = "c-state state-" + t.state;
    setText(cells.down, fmtRate(t.download_rate));
    setText(cells.up, fmtRate(t.upload_rate));
    setText(cells.eta, fmtEta(t));
    setText(cells.peers, String(t.peers ?? 0));
    setText(cells.ratio, fmtRatio(t.ratio));
    setText(cells.earned, fmtBtt(t.earnings_wei));
    cells.earned.title = exactBtt(t.earnings_wei);
    const stopped = t.state === "stopped" || t.state === "error";
    cells.start.hidden = !stopped;
    cells.stop.hidden = stopped;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function matchesFilter(t) {
    const state = $("filter-state").value;
    const q = $("filter-q").value.trim().toLowerCase();
    if (q && !(t.name || "").toLowerCase().includes(q) && !t.hash.includes(q)) return false;
    if (!state) return true;
    if (state === "active") return t.download_rate > 0 || t.upload_rate > 0 || t.state === "downloading" || t.state === "checking" || t.state === "metadata";
    return t.state === state;
  }

  function renderTable() {
    const body = $("torrent-body");
    const list = [...torrents.values()].sort((a, b) => (a.queue_position ?? a.id) - (b.queue_position ?? b.id) || a.id - b.id);
    const shown = list.filter(matchesFilter);
    const keep = new Set(shown.map((t) => t.id));
    for (const [id, row] of rows) {
      if (!keep.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    let prev = null;
    for (const t of shown) {
      let row = rows.get(t.id);
      if (!row) {
        row = makeRow(t);
        rows.set(t.id, row);
      }
      updateRow(row, t);
      const want = prev ? prev.nextSibling : body.firstChild;
      if (want !== row.tr) body.insertBefore(row.tr, want);
      prev = row.tr;
    }
    $("empty").hidden = shown.length > 0;
    $("empty").textContent = torrents.size === 0 ? "No torrents yet. Add a magnet link or a .torrent file above." : "No torrent matches the filter.";
    setText($("torrent-count"), torrents.size ? (shown.length === torrents.size ? String(torrents.size) : shown.length + " of " + torrents.size) : "");
  }

  function renderTotals() {
    let down = 0;
    let up = 0;
    let peers = 0;
    if (lastStats) {
      down = lastStats.download_rate || 0;
      up = lastStats.upload_rate || 0;
      peers = lastStats.peers || 0;
    } else {
      for (const t of torrents.values()) {
        down += t.download_rate || 0;
        up += t.upload_rate || 0;
        peers += t.peers || 0;
      }
    }
    setText($("total-down"), fmtRate(down));
    setText($("total-up"), fmtRate(up));
    setText($("total-peers"), String(peers));
    document.title = (down || up ? "↓" + fmtRate(down) + " ↑" + fmtRate(up) + " · " : "") + "btt";
    if (lastStats) {
      fillInfo($("stats"), [
        ["Torrents", String(lastStats.torrents ?? torrents.size)],
        ["Active", String(lastStats.active ?? 0)],
        ["Downloaded", fmtBytes(lastStats.downloaded_bytes)],
        ["Uploaded", fmtBytes(lastStats.uploaded_bytes)],
        ["Peers", String(lastStats.peers ?? 0)],
        ...sessionInfo,
      ]);
    }
  }

  let sessionInfo = [];

  function fillInfo(dl, pairs) {
    const frag = document.createDocumentFragment();
    for (const [k, v, title] of pairs) {
      const dt = el("dt", "", k);
      const dd = el("dd", "", v);
      if (title) dd.title = title;
      frag.append(dt, dd);
    }
    dl.replaceChildren(frag);
  }

  function renderAll() {
    renderTable();
    renderTotals();
    renderDetailHeader();
    drawGraph();
  }

  // ------------------------------------------------------------------ actions

  async function act(action, id, button) {
    const t = torrents.get(id);
    if (!t) return;
    if (action === "remove") {
      confirmRemove(t);
      return;
    }
    if (button) button.disabled = true;
    try {
      const res = await api("POST", "/torrents/" + id + "/" + action);
      if (res && res.torrent) upsert(res.torrent);
      renderAll();
    } catch (e) {
      showMessage("Could not " + action + " " + t.name + ": " + e.message);
    } finally {
      if (button) button.disabled = false;
    }
  }

  function confirmRemove(t) {
    const dialog = $("remove-dialog");
    $("remove-name").textContent = t.name || t.hash;
    $("remove-delete-data").checked = false;
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "confirm") return;
      const deleteData = $("remove-delete-data").checked;
      try {
        await api("DELETE", "/torrents/" + t.id + "?delete_data=" + deleteData);
        torrents.delete(t.id);
        if (selectedId === t.id) closeDetail();
        renderAll();
        showMessage("Removed " + (t.name || t.hash) + (deleteData ? " and its data" : ""), "notice");
      } catch (e) {
        showMessage("Could not remove " + (t.name || t.hash) + ": " + e.message);
      }
    };
    dialog.showModal();
  }

  // ------------------------------------------------------------------ add form

  const PEER_RE = /^(\[[0-9a-fA-F:.]+\]|[0-9A-Za-z.-]+):(\d{1,5})$/;

  function parsePeers(text) {
    const out = [];
    for (const part of text.split(/[\s,;]+/)) {
      if (!part) continue;
      const m = PEER_RE.exec(part);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        throw new Error("“" + part + "” is not a peer address; write ip:port, e.g. 127.0.0.1:6881 or [::1]:6881");
      }
      out.push(part);
    }
    return out;
  }

  function bytesToBase64(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(bin);
  }

  // What the text field holds, as the body key the API takes.
  function linkBody(text) {
    if (/^magnet:\?/i.test(text)) return { magnet: text };
    if (/^https?:\/\//i.test(text)) return { url: text };
    if (/^[0-9a-fA-F]{40}$/.test(text) || /^[A-Za-z2-7]{32}$/.test(text)) return { magnet: "magnet:?xt=urn:btih:" + text };
    throw new Error("enter a magnet link (magnet:?xt=…), a 40-hex info-hash, an http(s) URL of a .torrent, or choose a file");
  }

  async function addTorrent(body, label) {
    const res = await api("POST", "/torrents", body);
    if (res && res.torrent) {
      upsert(res.torrent);
      renderAll();
      clearMessages("add");
      showMessage("Added " + (res.torrent.name || label), "notice", "add");
    }
    return res;
  }

  async function onAddSubmit(ev) {
    ev.preventDefault();
    const submit = $("add-submit");
    const file = $("add-file").files[0];
    const text = $("add-magnet").value.trim();
    let body;
    try {
      if (file && text) throw new Error("give either a link or a file, not both");
      if (file) {
        body = { torrent: bytesToBase64(await file.arrayBuffer()) };
      } else if (text) {
        body = linkBody(text);
      } else {
        throw new Error("enter a magnet link or choose a .torrent file first");
      }
      const extra = parsePeers($("add-peers").value);
      if (extra.length) body.peers = extra;
      if ($("add-paused").checked) body.paused = true;
    } catch (e) {
      showMessage("Cannot add: " + e.message, "error", "add");
      return;
    }
    submit.disabled = true;
    try {
      await addTorrent(body, file ? file.name : text);
      $("add-form").reset();
    } catch (e) {
      showMessage("Cannot add " + (file ? file.name : "the link") + ": " + e.message, "error", "add");
    } finally {
      submit.disabled = false;
    }
  }

  function setupDrop() {
    const drop = $("drop");
    let depth = 0;
    const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");
    window.addEventListener("dragenter", (ev) => {
      if (!hasFiles(ev)) return;
      depth++;
      drop.hidden = false;
    });
    window.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) drop.hidden = true;
    });
    window.addEventListener("dragover", (ev) => {
      if (hasFiles(ev)) ev.preventDefault();
    });
    window.addEventListener("drop", async (ev) => {
      if (!hasFiles(ev)) return;
      ev.preventDefault();
      depth = 0;
      drop.hidden = true;
      let extra = [];
      try {
        extra = parsePeers($("add-peers").value);
      } catch (e) {
        showMessage("Cannot add: " + e.message);
        return;
      }
      for (const file of ev.dataTransfer.files) {
        try {
          const body = { torrent: bytesToBase64(await file.arrayBuffer()) };
          if (extra.length) body.peers = extra;
          await addTorrent(body, file.name);
        } catch (e) {
          showMessage("Cannot add " + file.name + ": " + e.message);
        }
      }
    });
  }

  // ------------------------------------------------------------------ detail panel

  let detailTimer = null;
  let detailMeta = null; // the GET /torrents/{id} answer for the open torrent

  async function openDetail(id) {
    if (!torrents.has(id)) return;
    const changed = selectedId !== id;
    selectedId = id;
    $("detail").hidden = false;
    if (changed) {
      detailMeta = null;
      for (const body of ["files-body", "peers-body", "trackers-body"]) $(body).replaceChildren();
      $("pieces-summary").textContent = "";
    }
    renderAll();
    $("detail").scrollIntoView({ block: "nearest", behavior: "smooth" });
    try {
      const meta = await api("GET", "/torrents/" + id);
      if (selectedId !== id) return;
      detailMeta = meta;
      if (meta.torrent) upsert(meta.torrent);
      renderDetailHeader();
      if (meta.trackers) renderTrackers(meta.trackers);
    } catch (e) {
      showMessage("Could not load the details: " + e.message);
    }
    refreshTab();
    if (detailTimer) clearInterval(detailTimer);
    detailTimer = setInterval(refreshTab, POLL_MS);
  }

  function closeDetail() {
    selectedId = null;
    detailMeta = null;
    $("detail").hidden = true;
    if (detailTimer) clearInterval(detailTimer);
    detailTimer = null;
    for (const row of rows.values()) row.tr.classList.remove("selected");
  }

  function renderDetailHeader() {
    if (selectedId === null) return;
    const t = torrents.get(selectedId);
    if (!t) return;
    setText($("detail-name"), t.name || t.hash);
    const pairs = [
      ["State", t.state + (t.error ? ": " + t.error : "")],
      ["Progress", t.size_bytes ? fmtPercent(t.progress) + " of " + fmtBytes(t.size_bytes) : "size unknown until the metadata arrives"],
      ["Info-hash", t.hash],
      ["Pieces", t.pieces_have + " / " + t.pieces_total + (detailMeta && detailMeta.piece_length ? " × " + fmtBytes(detailMeta.piece_length) : "")],
      ["Downloaded", fmtBytes(t.downloaded_bytes)],
      ["Uploaded", fmtBytes(t.uploaded_bytes)],
      ["Ratio", fmtRatio(t.ratio)],
      ["Earned", fmtBtt(t.earnings_wei), exactBtt(t.earnings_wei)],
      ...(t.spent_wei !== undefined ? [["Spent", fmtBtt(t.spent_wei) + (t.budget_wei && t.budget_wei !== "0" ? " of " + fmtBtt(t.budget_wei) : ""), exactBtt(t.spent_wei)]] : []),
      ["Saved in", t.download_dir || "—"],
      ["Added", t.added_at ? new Date(t.added_at * 1000).toLocaleString() : "—"],
    ];
    if (detailMeta) {
      if (detailMeta.comment) pairs.push(["Comment", detailMeta.comment]);
      if (detailMeta.created_by) pairs.push(["Created by", detailMeta.created_by]);
      if (detailMeta.version) pairs.push(["Format", detailMeta.version]);
      pairs.push(["Private", detailMeta.private ? "yes" : "no"]);
      if (detailMeta.magnet) pairs.push(["Magnet", detailMeta.magnet]);
    }
    fillInfo($("detail-info"), pairs);
    const stopped = t.state === "stopped" || t.state === "error";
    document.querySelector('#detail [data-act="start"]').hidden = !stopped;
    document.querySelector('#detail [data-act="stop"]').hidden = stopped;
  }

  function selectTab(name) {
    activeTab = name;
    for (const b of document.querySelectorAll('.tabs [role="tab"]')) {
      const on = b.dataset.tab === name;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
      $("pane-" + b.dataset.tab).hidden = !on;
    }
    refreshTab();
  }

  let tabBusy = false;

  async function refreshTab() {
    const id = selectedId;
    if (id === null || tabBusy || document.hidden) return;
    const tab = activeTab;
    tabBusy = true;
    try {
      if (tab === "files") {
        const r = await api("GET", "/torrents/" + id + "/files");
        if (selectedId === id && activeTab === tab) renderFiles(r.files || []);
      } else if (tab === "peers") {
        const r = await api("GET", "/torrents/" + id + "/peers");
        if (selectedId === id && activeTab === tab) renderPeers(r.peers || []);
      } else if (tab === "trackers") {
        const r = await api("GET", "/torrents/" + id + "/trackers");
        if (selectedId === id && activeTab === tab) renderTrackers(r.trackers || []);
      } else if (tab === "pieces") {
        const r = await api("GET", "/torrents/" + id + "/pieces");
        if (selectedId === id && activeTab === tab) renderPieces(r);
      }
    } catch (e) {
      if (e.status === 404) {
        torrents.delete(id);
        closeDetail();
        renderAll();
      } else {
        showMessage("Could not load " + tab + ": " + e.message);
      }
    } finally {
      tabBusy = false;
    }
  }

  function renderFiles(files) {
    const frag = document.createDocumentFragment();
    for (const f of files) {
      const tr = el("tr");
      tr.dataset.testid = "file-row";
      const name = el("td", "path", f.path);
      name.dataset.label = "File";
      const size = el("td", "c-num", fmtBytes(f.length));
      size.dataset.label = "Size";
      const prog = el("td", "c-progress");
      prog.dataset.label = "Progress";
      const bar = progressBar();
      setProgress(bar, f.progress);
      prog.append(bar);
      tr.append(name, size, prog);
      frag.append(tr);
    }
    $("files-body").replaceChildren(frag);
  }

  function renderPeers(peers) {
    const frag = document.createDocumentFragment();
    for (const p of peers) {
      const tr = el("tr");
      tr.dataset.testid = "peer-row";
      tr.dataset.addr = p.addr;
      const flags = [p.seed ? "seed" : "", p.interested ? "interested" : "", p.unchoked ? "unchoked" : "choked"].filter(Boolean).join(" · ");
      const cols = [
        ["Address", p.addr, "mono"],
        ["Client", p.client || "?", ""],
        ["Transport", p.transport || "tcp", ""],
        ["Down", fmtRate(p.download_rate), "c-num"],
        ["Up", fmtRate(p.upload_rate), "c-num"],
        ["Received", fmtBytes(p.downloaded_bytes), "c-num"],
        ["Sent", fmtBytes(p.uploaded_bytes), "c-num"],
        ["Flags", flags, "flags"],
      ];
      for (const [label, text, cls] of cols) {
        const td = el("td", cls, text);
        td.dataset.label = label;
        tr.append(td);
      }
      frag.append(tr);
    }
    $("peers-body").replaceChildren(frag);
    $("peers-empty").hidden = peers.length > 0;
  }

  function renderTrackers(trackers) {
    const frag = document.createDocumentFragment();
    for (const tk of trackers) {
      const tr = el("tr");
      tr.dataset.testid = "tracker-row";
      const tier = el("td", "c-num", String(tk.tier));
      tier.dataset.label = "Tier";
      const url = el("td", "mono", tk.url);
      url.dataset.label = "URL";
      tr.append(tier, url);
      frag.append(tr);
    }
    $("trackers-body").replaceChildren(frag);
    $("trackers-empty").hidden = trackers.length > 0;
  }

  // ------------------------------------------------------------------ piece map

  let lastPieces = null;

  // The hex bitfield as bytes; a malformed string gives an empty map rather than an exception.
  function hexToBytes(hex) {
    if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return new Uint8Array(0);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function renderPieces(r) {
    lastPieces = r;
    const canvas = $("piece-map");
    canvas.dataset.have = String(r.have ?? 0);
    canvas.dataset.total = String(r.piece_count ?? 0);
    const perCell = drawPieces();
    setText($("pieces-summary"), (r.have ?? 0) + " of " + (r.piece_count ?? 0) + " pieces" + (r.piece_length ? " of " + fmtBytes(r.piece_length) : "") +
      (perCell > 1 ? " (each cell stands for about " + Math.round(perCell) + " pieces)" : ""));
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // One cell per piece while they fit at 4 px or more; beyond that each cell stands for a run of
  // pieces and its shade is the share of them this node has.
  function drawPieces() {
    const r = lastPieces;
    const canvas = $("piece-map");
    if (!r || canvas.offsetParent === null) return 1;
    const count = Math.max(0, r.piece_count | 0);
    const bits = hexToBytes(r.bitfield);
    const has = (i) => ((bits[i >> 3] ?? 0) >> (7 - (i & 7))) & 1;
    const width = canvas.clientWidth || 300;
    const maxRows = 40;
    let cell = 12;
    while (cell > 4 && Math.ceil(count / Math.floor(width / cell)) > maxRows) cell -= 1;
    const cols = Math.max(1, Math.floor(width / cell));
    const cells = Math.min(count, cols * maxRows);
    const perCell = cells ? count / cells : 1;
    const rowsN = Math.max(1, Math.ceil(cells / cols));
    const dpr = window.devicePixelRatio || 1;
    canvas.style.height = rowsN * cell + "px";
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(rowsN * cell * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, rowsN * cell);
    const haveColor = cssVar("--ok");
    const missColor = cssVar("--track");
    const gap = cell > 5 ? 1 : 0;
    for (let c = 0; c < cells; c++) {
      const from = Math.floor(c * perCell);
      const to = Math.max(from + 1, Math.floor((c + 1) * perCell));
      let n = 0;
      for (let i = from; i < to; i++) n += has(i);
      const x = (c % cols) * cell;
      const y = Math.floor(c / cols) * cell;
      ctx.fillStyle = missColor;
      ctx.fillRect(x, y, cell - gap, cell - gap);
      if (n) {
        ctx.globalAlpha = n / (to - from);
        ctx.fillStyle = haveColor;
        ctx.fillRect(x, y, cell - gap, cell - gap);
        ctx.globalAlpha = 1;
      }
    }
    return perCell;
  }

  // ------------------------------------------------------------------ rate graph

  function niceMax(v) {
    if (v <= 0) return 1024;
    const p = Math.pow(2, Math.ceil(Math.log2(v)));
    return p * 0.75 >= v ? p * 0.75 : p;
  }

  function drawGraph() {
    const canvas = $("rate-graph");
    const width = canvas.clientWidth;
    const height = canvas.clientHeight || 140;
    if (!width) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const now = Date.now();
    const recent = samples.filter((s) => s.t >= now - GRAPH_WINDOW_MS);
    const max = niceMax(Math.max(0, ...recent.map((s) => Math.max(s.down, s.up))));
    const top = 14;
    const plotH = height - top - 2;
    const xOf = (t) => width - ((now - t) / GRAPH_WINDOW_MS) * width;
    const yOf = (v) => top + plotH - (v / max) * plotH;

    ctx.strokeStyle = cssVar("--grid");
    ctx.lineWidth = 1;
    ctx.fillStyle = cssVar("--muted");
    ctx.font = "11px system-ui, sans-serif";
    for (const f of [0.5, 1]) {
      const y = Math.round(yOf(max * f)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(0, y);
      ctx.lineTo(width, y);
      ctx.stroke();
      ctx.fillText(fmtRate(max * f), 4, y - 3);
    }
    for (let m = 30000; m < GRAPH_WINDOW_MS; m += 30000) {
      const x = Math.round(xOf(now - m)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, height);
      ctx.stroke();
    }
    for (const [key, color] of [["down", cssVar("--down")], ["up", cssVar("--up")]]) {
      if (recent.length < 2) break;
      ctx.beginPath();
      recent.forEach((s, i) => (i ? ctx.lineTo(xOf(s.t), yOf(s[key])) : ctx.moveTo(xOf(s.t), yOf(s[key]))));
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.stroke();
      ctx.lineTo(xOf(recent[recent.length - 1].t), yOf(0));
      ctx.lineTo(xOf(recent[0].t), yOf(0));
      ctx.closePath();
      ctx.globalAlpha = 0.15;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
    canvas.dataset.samples = String(recent.length);
  }

  // ------------------------------------------------------------------ wallet and chain

  function kv(pairs) {
    const dl = el("dl", "info");
    fillInfo(dl, pairs);
    return dl;
  }

  function shortAddr(a) {
    return typeof a === "string" && a.length > 14 ? a.slice(0, 8) + "…" + a.slice(-6) : String(a);
  }

  async function refreshWallet() {
    const box = $("wallet");
    try {
      const w = await api("GET", "/wallet");
      const parts = [];
      const accounts = w.accounts || [];
      if (accounts.length === 0) {
        parts.push(el("p", "muted", "No accounts. Create one with `btt wallet new` (with the node's --data-dir if it has one)."));
      } else {
        const list = el("ul", "accounts");
        for (const a of accounts) {
          const li = el("li");
          li.dataset.testid = "account";
          const addr = el("span", "mono", shortAddr(a.address));
          addr.title = a.address;
          // A null balance means the chain did not answer for this account.
          const known = a.balance_wei !== null && a.balance_wei !== undefined;
          const bal = el("b", "balance", known ? fmtBtt(a.balance_wei) : "unknown");
          bal.title = known ? exactBtt(a.balance_wei) : "the chain did not report a balance (see the Chain panel)";
          li.append(addr, bal);
          list.append(li);
        }
        parts.push(list);
      }
      const m = w.market || {};
      parts.push(el("h3", "", "Market"));
      if (m.enabled === false) parts.push(el("p", "muted small", "The market is not enabled on this node."));
      const pairs = [
        ["Locked", fmtBtt(m.locked_wei), exactBtt(m.locked_wei)],
        ["Claimable", fmtBtt(m.claimable_wei), exactBtt(m.claimable_wei)],
        ["Claimed", fmtBtt(m.claimed_wei), exactBtt(m.claimed_wei)],
        ...(m.earnings_wei !== undefined ? [["Earned", fmtBtt(m.earnings_wei), exactBtt(m.earnings_wei)]] : []),
        ["Channels", String((m.channels || []).length)],
      ];
      parts.push(kv(pairs));
      box.replaceChildren(...parts);
    } catch (e) {
      box.replaceChildren(el("p", "panel-error", e.message));
    }
  }

  async function refreshChain() {
    const box = $("chain");
    try {
      const c = await api("GET", "/chain");
      const parts = [];
      const validators = c.validators || [];
      parts.push(kv([
        ["Mode", c.mode || "—"],
        ["RPC", c.rpc || "—"],
        ["Chain id", c.chain_id ?? "—"],
        ["Height", c.height ?? "—"],
        ["Head", c.block_time_ms ? fmtAgo(c.block_time_ms) : "—", c.block_time_ms ? new Date(c.block_time_ms).toLocaleString() : ""],
        ["Finality", c.finality_ms !== null && c.finality_ms !== undefined ? c.finality_ms + " ms" : "—"],
        ["Validators", String(validators.length)],
        ...(c.syncing === true || c.syncing === false ? [["Syncing", c.syncing ? "yes" : "no"]] : []),
      ].map(([k, v, t]) => [k, String(v), t])));
      if (validators.length) {
        const ul = el("ul", "validators mono");
        for (const v of validators) {
          const li = el("li", "", shortAddr(v));
          li.title = v;
          ul.append(li);
        }
        parts.push(ul);
      }
      if (c.error) parts.push(el("p", "panel-error", c.error));
      box.replaceChildren(...parts);
      box.dataset.mode = c.mode || "";
    } catch (e) {
      box.replaceChildren(el("p", "panel-error", e.message));
    }
  }

  // ------------------------------------------------------------------ start-up

  async function init() {
    $("add-form").addEventListener("submit", onAddSubmit);
    $("filter-state").addEventListener("change", renderTable);
    $("filter-q").addEventListener("input", renderTable);
    $("detail-close").addEventListener("click", closeDetail);
    document.querySelector("#detail .detail-actions").addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-act]");
      if (b && selectedId !== null) act(b.dataset.act, selectedId, b);
    });
    const tabs = document.querySelector(".tabs");
    tabs.addEventListener("click", (ev) => {
      const b = ev.target.closest("[data-tab]");
      if (b) selectTab(b.dataset.tab);
    });
    tabs.addEventListener("keydown", (ev) => {
      if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
      const all = [...tabs.querySelectorAll("[data-tab]")];
      const i = all.findIndex((b) => b.dataset.tab === activeTab);
      const next = all[(i + (ev.key === "ArrowRight" ? 1 : all.length - 1)) % all.length];
      selectTab(next.dataset.tab);
      next.focus();
    });
    let resizeFrame = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(resizeFrame);
      resizeFrame = requestAnimationFrame(() => {
        drawGraph();
        drawPieces();
      });
    });
    setupDrop();

    try {
      const s = await loadSession();
      $("version").textContent = s.version ? "v" + s.version : "";
      sessionInfo = [
        ["Network", s.network || "—"],
        ["Peer port", String(s.peer_port ?? "—")],
        ["Download dir", s.download_dir || "—"],
      ];
      fillInfo($("stats"), sessionInfo);
    } catch (e) {
      showMessage("Cannot reach the node: " + e.message);
    }
    // A first list right away, so the page is filled before the first event arrives.
    try {
      const list = await api("GET", "/torrents?limit=1000");
      replaceAll(list.torrents || []);
      renderAll();
    } catch (e) {
      showMessage("Cannot list torrents: " + e.message);
    }
    startEvents();
    refreshWallet();
    refreshChain();
    setInterval(() => {
      if (document.hidden) return;
      refreshWallet();
      refreshChain();
    }, SIDE_POLL_MS);
    // The graph scrolls even when no event arrives.
    setInterval(drawGraph, 1000);
  }

  // For tests in a page console: the pure formatters.
  window.bttUi = { fmtBtt, fmtBytes, fmtPercent, fmtEta, hexToBytes };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
