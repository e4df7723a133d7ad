// Live updates for the decisions list: every 2 s ask the JSON endpoint for
// decisions newer than the newest shown and put them on top. The page is
// complete without this script; it only saves reloading it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var rows = document.getElementById("decisions-rows");
  var status = document.getElementById("live-status");
  if (!live || !rows || !window.fetch) return;
  var limit = parseInt(live.dataset.limit, 10) || 100;

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text || "";
    tr.appendChild(td);
    return td;
  }
  function row(d) {
    var tr = document.createElement("tr");
    tr.dataset.seq = d.seq;
    tr.dataset.source = d.source;
    tr.className = "new";
    var t = document.createElement("time");
    t.dateTime = d.time;
    t.textContent = d.time.replace("T", " ").replace(/\.\d+/, "");
    cell(tr, "").appendChild(t);
    var a = document.createElement("a");
    a.href = "/console/client?mac=" + encodeURIComponent(d.mac);
    a.textContent = d.mac;
    cell(tr, "", "mac").appendChild(a);
    cell(tr, d.identity);
    cell(tr, d.client);
    cell(tr, d.method);
    cell(tr, d.result, "result result-" + d.result);
    cell(tr, d.vlan, "vlan");
    cell(tr, d.source, "source source-" + d.source);
    cell(tr, d.reason);
    return tr;
  }
  function poll() {
    var q = new URLSearchParams({ after: live.dataset.last, limit: String(limit) });
    if (live.dataset.mac) q.set("mac", live.dataset.mac);
    if (live.dataset.identity) q.set("identity", live.dataset.identity);
    fetch("/console/api/decisions?" + q.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) return;
        live.dataset.last = p.last_seq;
        var ds = p.decisions || [];
        if (!ds.length) return;
        for (var i = ds.length - 1; i >= 0; i--) rows.insertBefore(row(ds[i]), rows.firstChild);
        while (rows.children.length > limit) rows.removeChild(rows.lastChild);
        status.textContent = ds.length + (ds.length === 1 ? " new decision" : " new decisions") + " at the top.";
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
