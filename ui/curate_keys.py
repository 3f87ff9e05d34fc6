"""The Curate tab's keyboard and its instant review, in the browser (``HEAD``: a script and
the tab's layout rules, loaded once with the tab; ``gr.HTML`` itself runs no ``<script>``).

Keys (outside a text box): **A** accept, **R** reject, **S** swap, **E** edit (the chosen
answer's box), **U** undo the last action, **N**/**K** next (skip), **P** previous. In a text
box: **Ctrl+Enter** saves the edits, **Esc** leaves the box.

Instant: a key (or a click on the button) shows its result at once, before the server
answers. The server sends with every pair the views of the pairs either side of it (a hidden
block, :func:`ui.curate_view.prefetch_html`); A, R, N, K and P swap the next or previous one
in, S swaps the sides, then the button's event goes to the server, which does the real
action and answers with the same view (nothing moves) or a different one (a conflict, an
error, a warning). What the server left unchanged is put back as it was, and a failed call
puts everything back. Keys pressed while an action is on its way wait for its answer, in
order, so every action applies to the pair the reviewer saw. Text typed while an action is
on its way (E right after P, say) is kept: the answer re-sends the boxes' texts, and the
script puts the typed text back over them when the answer shows the same pair.

Components the script reads are found by ``elem_id`` (``IDS``); ``gr.HTML`` keeps its value
in the ``.html-container > div`` inside, and updates it by comparing nodes with the DOM (the
marker element left after a swapped-in view disappears when the server's view replaces it).
"""

from __future__ import annotations

import json

BUTTONS = {"accept": "curate-accept", "reject": "curate-reject", "swap": "curate-swap",
           "next": "curate-next", "prev": "curate-prev", "undo": "curate-undo",
           "save": "curate-save"}
KEYS = {"a": "accept", "r": "reject", "s": "swap", "n": "next", "k": "next", "p": "prev",
        "u": "undo"}
# View part -> elem_id of the component showing it (ui.curate.build).
HTML_IDS = {"question": "curate-question-box", "meta": "curate-meta",
            "timeline": "curate-timeline", "player": "curate-player-box",
            "chosen_title": "curate-chosen-title", "rejected_title": "curate-rejected-title",
            "chosen_strip": "curate-chosen-strip-box",
            "rejected_strip": "curate-rejected-strip-box",
            "warning": "curate-warning-box"}
TEXT_IDS = {"chosen": "curate-chosen", "rejected": "curate-rejected",
            "edit_question": "curate-question-edit"}
EDIT_BOXES = ("curate-chosen", "curate-rejected", "curate-question-edit", "curate-note")
PREFETCH_ID = "curate-prefetch"

# JS callbacks for the events (.then / .failure of every button's click).
DONE_JS = "() => { if (window.tpoCurate) window.tpoCurate.done(); }"
FAILED_JS = "() => { if (window.tpoCurate) window.tpoCurate.failed(); }"

SCRIPT = """
(() => {
if (window.tpoCurate) return;
const CFG = %(cfg)s;
const MARK = '<i data-tpo-optimistic hidden></i>';
const inflight = [];  // one record per action sent and not answered yet, in order
const waiting = [];   // actions asked for while one was in flight
const byId = (id) => document.getElementById(id);
const htmlBox = (id) => document.querySelector('#' + id + ' .html-container > div');
const textBox = (id) => document.querySelector('#' + id + ' textarea, #' + id + ' input');
const showing = () => { const b = byId(CFG.buttons.accept); return b && b.offsetParent !== null; };

const typed = new Map();  // edit box -> [text typed while an action was in flight, pair id]
let setting = false;
const shownPair = () => {
  const q = document.querySelector('#curate-question');
  return q ? q.dataset.pairId : null;
};
function setText(box, value) {
  box.value = value;
  setting = true;
  try { box.dispatchEvent(new Event('input', {bubbles: true})); }  // Gradio's value follows
  finally { setting = false; }
}
function prefetched(dir) {
  const root = document.querySelector('#' + CFG.prefetch + ' .tpo-prefetch');
  const current = document.querySelector('#curate-question');
  if (!root || !current || root.dataset.from !== current.dataset.pairId) return null;
  const el = root.querySelector('[data-dir="' + dir + '"]');
  return el ? JSON.parse(el.dataset.view) : null;
}
function putHtml(rec, part, value) {
  const el = htmlBox(CFG.html[part]);
  if (!el) return;
  rec.html.push([el, el.innerHTML]);
  el.innerHTML = value + MARK;
}
function putText(rec, part, value) {
  const box = textBox(CFG.text[part]);
  if (!box) return;
  rec.text.push([box, box.value]);
  setText(box, value);
}
function samePlayer(value) {  // the same video: keep its element (and where it is playing)
  const video = document.querySelector('#' + CFG.html.player + ' video');
  const src = /src="([^"]*)"/.exec(value);
  return !!(video && src && video.getAttribute('src') === src[1]);
}
function show(rec, view) {
  for (const part in CFG.html) {
    if (view[part] === undefined || (part === 'player' && samePlayer(view[part]))) continue;
    putHtml(rec, part, view[part]);
  }
  for (const part in CFG.text) if (view[part] !== undefined) putText(rec, part, view[part]);
}
function swapSides(rec) {
  const c = textBox(CFG.text.chosen), r = textBox(CFG.text.rejected);
  if (c && r) {
    const cv = c.value, rv = r.value;
    putText(rec, 'chosen', rv);
    putText(rec, 'rejected', cv);
  }
  const cs = htmlBox(CFG.html.chosen_strip), rs = htmlBox(CFG.html.rejected_strip);
  if (cs && rs) {
    const a = cs.innerHTML, b = rs.innerHTML;
    const strip = (html, from, to) => html.replaceAll(MARK, '').replace(from, to);
    putHtml(rec, 'chosen_strip', strip(b, 'curate-rejected-strip', 'curate-chosen-strip'));
    putHtml(rec, 'rejected_strip', strip(a, 'curate-chosen-strip', 'curate-rejected-strip'));
  }
}
function warned() {  // accepting this pair needs a second press
  const sel = '#' + CFG.html.warning + ' [data-warning]:not([data-confirmed])';
  return !!document.querySelector(sel);
}
function begin(action) {
  const rec = {action, html: [], text: [], at: Date.now()};
  inflight.push(rec);
  let view = null;
  const forward = action === 'next' || action === 'reject' || (action === 'accept' && !warned());
  if (forward) view = prefetched('next');
  else if (action === 'prev') view = prefetched('prev');
  if (view) show(rec, view);
  else if (action === 'swap') swapSides(rec);
  rec.timer = setTimeout(() => { if (inflight[0] === rec) finish(false); }, 30000);
}
function finish(answered) {
  const rec = inflight.shift();
  if (rec) {
    clearTimeout(rec.timer);
    // A part the server left as it was still carries the marker: put it back. (A part it
    // changed loses the marker when Gradio patches it, before or after this runs.)
    for (const [el, before] of rec.html) {
      if (!answered || el.querySelector(':scope > [data-tpo-optimistic]')) el.innerHTML = before;
    }
    if (!answered) for (const [box, before] of rec.text.reverse()) setText(box, before);
  }
  if (inflight.length) return;
  if (!typed.size) {
    if (waiting.length) setTimeout(() => press(waiting.shift()), 0);
    return;
  }
  // The answer re-sent the boxes' texts over what was typed meanwhile; Gradio may write
  // them after this runs, so put the typed text back once it has (then send what waits).
  const kept = [...typed];
  typed.clear();
  requestAnimationFrame(() => setTimeout(() => {
    if (answered) {
      for (const [box, [value, pair]] of kept) {
        if (pair === shownPair() && box.value !== value) setText(box, value);
      }
    }
    if (!inflight.length && waiting.length) press(waiting.shift());
  }, 0));
}
let own = false;  // a click this script makes after its own begin()
function press(action) {
  const button = byId(CFG.buttons[action]);
  if (!button || !showing()) return;
  begin(action);
  // Paint the swapped-in view first, then let Gradio send the action.
  requestAnimationFrame(() => setTimeout(() => {
    own = true;
    try { button.click(); } finally { own = false; }
  }, 0));
}
window.tpoCurate = {
  done: () => finish(true),
  failed: () => finish(false),
  busy: () => inflight.length,
};
// Typing while an action is in flight: remember it (see finish()).
document.addEventListener('input', (ev) => {
  const t = ev.target;
  if (setting || !inflight.length || !t || !t.closest || !t.closest(CFG.editBoxes)) return;
  typed.set(t, [t.value, shownPair()]);
}, true);
// Every click on an action button (a key's or the mouse's) starts here, before Gradio's.
document.addEventListener('click', (ev) => {
  const button = ev.target.closest && ev.target.closest('button[id]');
  const action = button && CFG.actions[button.id];
  if (!action || own) return;
  if (inflight.length) {  // wait for the answer to the last one
    ev.preventDefault();
    ev.stopImmediatePropagation();
    if (waiting.length < 20) waiting.push(action);
    return;
  }
  begin(action);
}, true);
document.addEventListener('keydown', (ev) => {
  if (!showing()) return;
  const t = ev.target;
  const typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable);
  if (typing) {
    const box = t.closest && t.closest(CFG.editBoxes);
    if (box && ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      press('save');
    } else if (box && ev.key === 'Escape') {
      t.blur();
    }
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
  const key = (ev.key || '').toLowerCase();
  if (key === 'e') {
    const box = textBox(CFG.text.chosen);
    if (box) { ev.preventDefault(); box.focus(); }
    return;
  }
  const action = CFG.keys[key];
  if (!action) return;
  ev.preventDefault();
  if (inflight.length) { if (waiting.length < 20) waiting.push(action); return; }
  press(action);
});
})();
"""

CSS = """
#tab-curate { --layout-gap: 8px; --block-padding: 6px 10px; --block-label-margin: 2px; }
#curate-question-box, #curate-meta { padding: 0 2px; }
#curate-question { font-size: 18px; font-weight: 600; padding: 0; line-height: 1.3; }
.tpo-meta { font-size: 13px; opacity: .85; }
.tpo-filter-reason { font-size: 13px; }
#tab-curate .tpo-side-title { font-size: 13px; font-weight: 400; margin: 0; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
#tab-curate .tpo-counters { font-size: 13px; }
#tab-curate .tpo-kinds { opacity: .75; font-size: 12px; }
#curate-timeline .tpo-timeline { height: 48px; }
#curate-timeline .tpo-timeline-legend { font-size: 11px; }
.tpo-warning { color: #b45309; font-weight: 600; font-size: 14px; padding: 2px 0; }
.tpo-guide { border: 1px solid #f59e0b88; border-radius: 8px; padding: 8px 12px; }
.tpo-guide ul { margin: 4px 0 4px 18px; }
#curate-chosen-strip-box .tpo-strip img, #curate-rejected-strip-box .tpo-strip img { height: 54px; }
#curate-chosen-strip-box figcaption, #curate-rejected-strip-box figcaption { font-size: 11px; }
#curate-player-box video { max-height: 260px; }
#curate-actions button { min-width: 0; }
#curate-prefetch { display: none; }
#curate-warning-box:not(:has(.tpo-warning)) { display: none; }
#curate-message:not(:has(p)) { display: none; }
"""


def head() -> str:
    """The ``<script>`` and ``<style>`` the Curate tab puts in the page's ``<head>``."""
    cfg = {"buttons": BUTTONS, "keys": KEYS, "html": HTML_IDS, "text": TEXT_IDS,
           "prefetch": PREFETCH_ID, "actions": {v: k for k, v in BUTTONS.items()},
           "editBoxes": ", ".join(f"#{i}" for i in EDIT_BOXES)}
    return f"<script>{SCRIPT % {'cfg': json.dumps(cfg)}}</script><style>{CSS}</style>"
