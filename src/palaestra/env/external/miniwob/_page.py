"""The page side of the MiniWoB++ adapter: episode control in JS and the text view of the DOM.

Episode control reproduces what MiniWoB++'s own ``SeleniumInstance`` does
(Farama ``miniwob/selenium_instance.py``: ``force_stop`` → ``set_seed`` →
``set_mode`` → ``core.startEpisodeReal()``), with one change: the task's
wall-clock limit (``core.EPISODE_MAX_TIME``, 10 s by default) is switched
off, because an LLM agent thinks for longer than a step of an RL policy, and
a timer would make episodes depend on the machine's speed.

The text view is a pruned DOM listing in the spirit of BrowserGym's AXTree
with ``bid``s: each visible element that is interactive or carries text gets
one line ``[id] role "name" flags``, indented under its listed ancestors;
loose text between elements is listed without an id. Ids are the element's
``data-pal-id``, assigned in document order the first time an element is
seen in an episode, so an element keeps its id for the whole episode and the
same episode gets the same ids on every machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Start an episode: stop any running one, forget ids, seed, generate, disarm the timer.
RESET_JS = """
([seed, mode]) => {
  core.endEpisode(0);
  document.querySelectorAll('[data-pal-id]').forEach((e) => { delete e.dataset.palId; });
  window.__palNext = 1;
  if (document.activeElement && document.activeElement !== document.body) {
    document.activeElement.blur();
  }
  Math.seedrandom(seed);
  core.setDataMode(mode);
  core.startEpisodeReal();
  if (core.EP_TIMER !== null) { clearTimeout(core.EP_TIMER); core.EP_TIMER = -1; }
  core.clearTimer();
}
"""

#: The utterance a seed generates, without disturbing an episode (run on a spare page).
UTTERANCE_JS = """
([seed, mode]) => {
  core.endEpisode(0);
  Math.seedrandom(seed);
  core.setDataMode(mode);
  core.startEpisodeReal();
  const utterance = core.getUtterance();
  core.endEpisode(0);
  return utterance;
}
"""


OBSERVE_FN = """
function palObserve() {
  const SKIP_IDS = new Set(['reward-display', 'sync-task-cover', 'click-canvas', 'query',
                            'attention-canvas']);
  const SKIP_TAGS = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'BR', 'OPTION', 'HEAD', 'META',
                             'LINK', 'TEMPLATE', 'CANVAS']);
  const NAMED_BY_TEXT = new Set(['link', 'button', 'label', 'clickable', 'heading', 'tab',
                                 'option', 'menuitem']);
  const nodes = [];
  const clean = (s) => (s || '').replace(/\\s+/g, ' ').trim().slice(0, 200);
  const roleOf = (el, cs) => {
    const tag = el.tagName;
    if (tag === 'A') return 'link';
    if (tag === 'BUTTON') return 'button';
    if (tag === 'INPUT') {
      const t = (el.type || 'text').toLowerCase();
      if (t === 'hidden') return null;
      if (t === 'button' || t === 'submit' || t === 'reset') return 'button';
      if (t === 'checkbox' || t === 'radio') return t;
      if (t === 'range') return 'slider';
      return 'textbox';
    }
    if (tag === 'TEXTAREA') return 'textbox';
    if (tag === 'SELECT') return 'combobox';
    if (tag === 'LABEL') return 'label';
    if (/^H[1-6]$/.test(tag)) return 'heading';
    if (tag === 'IMG') return 'img';
    const aria = el.getAttribute('role');
    if (aria) return aria;
    const parent = el.parentElement;
    if (cs.cursor === 'pointer' && (!parent || getComputedStyle(parent).cursor !== 'pointer')) {
      return 'clickable';
    }
    return null;
  };
  const walk = (el, depth, inNamed) => {
    if (SKIP_IDS.has(el.id) || SKIP_TAGS.has(el.tagName)) return;
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) return;
    const cs = getComputedStyle(el);
    if (cs.display === 'none') return;
    const shown = cs.visibility !== 'hidden';
    const elems = [], texts = [];
    el.childNodes.forEach((c) => {
      if (c.nodeType === Node.TEXT_NODE) { if (c.data.trim()) texts.push(c); }
      else if (c.nodeType === Node.ELEMENT_NODE) elems.push(c);
    });
    let role = shown ? roleOf(el, cs) : null;
    let name = '';
    if (role === 'textbox' || role === 'checkbox' || role === 'radio' || role === 'combobox'
        || role === 'slider') {
      const labels = el.labels ? Array.from(el.labels) : [];
      name = clean(labels.map((l) => l.textContent).join(' '));
    } else if (role === 'img') {
      name = clean(el.getAttribute('alt') || el.getAttribute('title') || '');
    } else if (role !== null && (NAMED_BY_TEXT.has(role) || elems.length === 0)) {
      name = clean(el.tagName === 'INPUT' ? el.value : el.textContent)
        || clean(el.getAttribute('title') || el.getAttribute('aria-label') || '');
    } else if (shown && !inNamed && elems.length === 0 && texts.length > 0) {
      role = 'text';
      name = clean(el.textContent);
    }
    const listed = role !== null && !(inNamed && (role === 'text' || role === 'heading'));
    let childDepth = depth;
    if (listed) {
      if (!el.dataset.palId) el.dataset.palId = String(window.__palNext++);
      const node = {pid: Number(el.dataset.palId), depth: depth, role: role, name: name,
                    tag: el.tagName.toLowerCase(), html_id: el.id || '',
                    classes: typeof el.className === 'string' ? el.className : '',
                    focused: document.activeElement === el, disabled: !!el.disabled};
      if (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') {
        node.input_type = el.tagName === 'TEXTAREA' ? 'textarea' : (el.type || 'text');
        if (role === 'checkbox' || role === 'radio') node.checked = el.checked;
        else node.value = el.value;
      }
      if (el.tagName === 'SELECT') {
        node.options = Array.from(el.options).map((o) => clean(o.textContent));
        node.value = el.selectedIndex >= 0 ? clean(el.options[el.selectedIndex].textContent) : '';
      }
      nodes.push(node);
      childDepth = depth + 1;
    }
    if (role === 'combobox') return;
    const named = inNamed || (listed && NAMED_BY_TEXT.has(role));
    const mixed = elems.length > 0 && texts.length > 0;
    el.childNodes.forEach((c) => {
      if (c.nodeType === Node.ELEMENT_NODE) walk(c, childDepth, named);
      else if (c.nodeType === Node.TEXT_NODE && mixed && !named && shown && c.data.trim()) {
        nodes.push({pid: null, depth: childDepth, role: 'text', name: clean(c.data)});
      }
    });
  };
  walk(document.body, 0, false);
  return nodes;
}
"""


@dataclass(frozen=True)
class Node:
    """One listed element (``pid`` set) or loose text (``pid`` None)."""

    pid: int | None
    depth: int
    role: str
    name: str
    tag: str = ""
    html_id: str = ""
    classes: str = ""
    focused: bool = False
    disabled: bool = False
    input_type: str | None = None
    value: str | None = None
    checked: bool | None = None
    options: tuple[str, ...] = ()

    @classmethod
    def from_js(cls, d: dict[str, Any]) -> Node:
        return cls(
            pid=d.get("pid"),
            depth=int(d.get("depth", 0)),
            role=str(d.get("role", "")),
            name=str(d.get("name", "")),
            tag=str(d.get("tag", "")),
            html_id=str(d.get("html_id", "")),
            classes=str(d.get("classes", "")),
            focused=bool(d.get("focused", False)),
            disabled=bool(d.get("disabled", False)),
            input_type=d.get("input_type"),
            value=d.get("value"),
            checked=d.get("checked"),
            options=tuple(d.get("options") or ()),
        )

    def render(self) -> str:
        indent = "  " * self.depth
        if self.pid is None:
            return f"{indent}text {_q(self.name)}"
        parts = [f"{indent}[{self.pid}] {self.role}"]
        if self.name:
            parts.append(_q(self.name))
        if self.input_type == "password":
            parts.append("password")
        if self.value is not None:
            parts.append(f"value={_q(self.value)}")
        if self.options:
            parts.append("options=[" + ", ".join(_q(o) for o in self.options) + "]")
        if self.checked is not None:
            parts.append("checked" if self.checked else "unchecked")
        if self.focused:
            parts.append("focused")
        if self.disabled:
            parts.append("disabled")
        return " ".join(parts)


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def render_page(nodes: list[Node]) -> str:
    return "\n".join(n.render() for n in nodes) or "(the page shows nothing)"


#: The episode's status after an action and, unless it is over, the page listing. Waits one
#: macrotask first so that handlers scheduled with ``setTimeout(0)`` have run.
OBSERVE_JS = (
    "async () => {\n"
    + OBSERVE_FN
    + """
  await new Promise((resolve) => setTimeout(resolve, 0));
  const status = {done: !!WOB_DONE_GLOBAL, raw: Number(WOB_RAW_REWARD_GLOBAL),
                  reason: WOB_REWARD_REASON == null ? null : String(WOB_REWARD_REASON)};
  return {utterance: core.getUtterance(), status: status,
          nodes: status.done ? null : palObserve()};
}
"""
)
