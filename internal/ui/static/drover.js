// drover's UI: confirmations, and live updates over server-sent events.
"use strict";

document.addEventListener("submit", (e) => {
  const msg = e.target.dataset && e.target.dataset.confirm;
  if (msg && !window.confirm(msg)) e.preventDefault();
});

function setState(el, state) {
  el.className = el.className.replace(/\bst-[a-z-]+/g, "").trim() + " st-" + state;
  el.dataset.state = state;
  const label = el.querySelector(".slabel");
  if (label) label.textContent = state; else el.textContent = state;
}

const rack = document.getElementById("rack");
if (rack) {
  const es = new EventSource(rack.dataset.events);
  es.addEventListener("state", (e) => {
    const d = JSON.parse(e.data);
    const box = rack.querySelector('a[data-slot="' + CSS.escape(d.slot) + '"]');
    if (box) setState(box, d.state);
  });
}

const timeline = document.getElementById("timeline");
if (timeline) {
  const body = timeline.querySelector("tbody");
  const es = new EventSource(timeline.dataset.events);
  es.addEventListener("entry", (e) => {
    const d = JSON.parse(e.data);
    const tr = document.createElement("tr");
    const at = new Date(d.at);
    const change = d.to ? (d.from || "") + " → " + d.to : "";
    for (const text of [at.toLocaleString(), d.kind, change, d.actor, d.reason || ""]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    body.insertBefore(tr, body.firstChild);
    // A page left open on a busy machine stays light: the newest rows are kept.
    while (body.rows.length > 500) body.deleteRow(-1);
  });
  es.addEventListener("state", (e) => {
    const st = document.getElementById("state");
    if (st) setState(st, JSON.parse(e.data).state);
  });
}
