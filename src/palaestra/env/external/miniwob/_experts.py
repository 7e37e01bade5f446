"""Experts for the registered MiniWoB++ tasks, written from each task's HTML/JS.

MiniWoB++ has no general oracle (its demonstrations are human recordings),
so each registered task gets a small rule read off its ``genProblem``: parse
the utterance, look at the current page listing (values, checked boxes,
selected option) and return the next action. Every expert works from any
reachable non-terminal state, because it looks only at the current page: a
field holding the wrong text is retyped, a wrongly ticked box is unticked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from palaestra.env.external.miniwob._page import Node

Expert = Callable[[str, Sequence[Node]], str]


class ExpertError(RuntimeError):
    """The page or utterance does not look like the task the expert was written for."""


def _match(pattern: str, utterance: str) -> re.Match[str]:
    m = re.fullmatch(pattern, utterance)
    if m is None:
        raise ExpertError(f"utterance {utterance!r} does not match {pattern!r}")
    return m


def _find(nodes: Sequence[Node], what: str, pred: Callable[[Node], bool]) -> Node:
    for n in nodes:
        if n.pid is not None and pred(n):
            return n
    raise ExpertError(f"no {what} on the page")


def _pid(n: Node) -> int:
    assert n.pid is not None  # _find only returns listed elements
    return n.pid


def _button(nodes: Sequence[Node], name: str) -> Node:
    return _find(nodes, f"button {name!r}", lambda n: n.role == "button" and n.name == name)


def _textboxes(nodes: Sequence[Node]) -> list[Node]:
    return [n for n in nodes if n.pid is not None and n.role == "textbox"]


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fill_then_submit(fields: Sequence[tuple[Node, str]], submit: Node) -> str:
    for node, text in fields:
        if node.value != text:
            return f"type({_pid(node)}, {_q(text)})"
    return f"click({_pid(submit)})"


def click_test(u: str, nodes: Sequence[Node]) -> str:
    return f"click({_pid(_button(nodes, 'Click Me!'))})"


def click_test_2(u: str, nodes: Sequence[Node]) -> str:
    word = _match(r"Click button (ONE|TWO)\.", u).group(1)
    return f"click({_pid(_button(nodes, word))})"


def click_button(u: str, nodes: Sequence[Node]) -> str:
    name = _match(r'Click on the "(.*)" button\.', u).group(1)
    return f"click({_pid(_button(nodes, name))})"


def click_link(u: str, nodes: Sequence[Node]) -> str:
    name = _match(r'Click on the link "(.*)"\.', u).group(1)
    link = _find(
        nodes, f"link {name!r}", lambda n: n.role in ("clickable", "link") and n.name == name
    )
    return f"click({_pid(link)})"


def click_option(u: str, nodes: Sequence[Node]) -> str:
    name = _match(r"Select (.*) and click Submit\.", u).group(1)
    radio = _find(nodes, f"radio {name!r}", lambda n: n.role == "radio" and n.name == name)
    if not radio.checked:
        return f"click({_pid(radio)})"
    return f"click({_pid(_button(nodes, 'Submit'))})"


def click_checkboxes(u: str, nodes: Sequence[Node]) -> str:
    listed = _match(r"Select (.*) and click Submit\.", u).group(1)
    wanted = set() if listed == "nothing" else set(listed.split(", "))
    for n in nodes:
        if n.pid is not None and n.role == "checkbox" and bool(n.checked) != (n.name in wanted):
            return f"click({n.pid})"
    return f"click({_pid(_button(nodes, 'Submit'))})"


def _dialog_close(nodes: Sequence[Node]) -> Node:
    return _find(
        nodes,
        "dialog close button",
        lambda n: n.role == "button" and "ui-dialog-titlebar-close" in n.classes,
    )


def click_dialog(u: str, nodes: Sequence[Node]) -> str:
    return f"click({_pid(_dialog_close(nodes))})"


def click_dialog_2(u: str, nodes: Sequence[Node]) -> str:
    name = _match(r'Click the button in the dialog box labeled "(.*)"\.', u).group(1)
    target = _dialog_close(nodes) if name == "x" else _button(nodes, name)
    return f"click({_pid(target)})"


def click_tab(u: str, nodes: Sequence[Node]) -> str:
    n = _match(r"Click on Tab #(\d)\.", u).group(1)
    tab = _find(nodes, f"Tab #{n}", lambda x: x.role == "link" and x.name == f"Tab #{n}")
    return f"click({_pid(tab)})"


_WIDGET: dict[str, Callable[[Node], bool]] = {
    "radio": lambda n: n.role == "radio",
    "checkbox": lambda n: n.role == "checkbox",
    "text": lambda n: n.role == "textbox" and n.input_type != "textarea",
    "textarea": lambda n: n.input_type == "textarea",
    "button": lambda n: n.role == "button",
}


def click_widget(u: str, nodes: Sequence[Node]) -> str:
    kind = _match(r'Click on a "(\w+)" widget\.', u).group(1)
    if kind not in _WIDGET:
        raise ExpertError(f"unknown widget kind {kind!r}")
    return f"click({_pid(_find(nodes, f'{kind} widget', _WIDGET[kind]))})"


def enter_text(u: str, nodes: Sequence[Node]) -> str:
    text = _match(r'Enter "(.*)" into the text field and press Submit\.', u).group(1)
    return _fill_then_submit([(_textboxes(nodes)[0], text)], _button(nodes, "Submit"))


def enter_text_2(u: str, nodes: Sequence[Node]) -> str:
    m = _match(
        r'Type "(.*)" in all (upper|lower) case letters in the text input and press Submit\.', u
    )
    text = m.group(1).upper() if m.group(2) == "upper" else m.group(1).lower()
    return _fill_then_submit([(_textboxes(nodes)[0], text)], _button(nodes, "Submit"))


def enter_password(u: str, nodes: Sequence[Node]) -> str:
    pw = _match(r'Enter the password "(.*)" into both text fields and press submit\.', u).group(1)
    boxes = _textboxes(nodes)
    if len(boxes) != 2:
        raise ExpertError(f"expected two password fields, found {len(boxes)}")
    return _fill_then_submit([(boxes[0], pw), (boxes[1], pw)], _button(nodes, "Submit"))


def focus_text(u: str, nodes: Sequence[Node]) -> str:
    return f"click({_pid(_textboxes(nodes)[0])})"


def focus_text_2(u: str, nodes: Sequence[Node]) -> str:
    pos = _match(r"Focus into the (1st|2nd|3rd) input textbox\.", u).group(1)
    html_id = {"1st": "tt1", "2nd": "tt2", "3rd": "tt3"}[pos]
    box = _find(nodes, f"textbox #{html_id}", lambda n: n.html_id == html_id)
    return f"click({_pid(box)})"


def login_user(u: str, nodes: Sequence[Node]) -> str:
    m = _match(
        r'Enter the username "(.*)" and the password "(.*)" into the text fields and press login\.',
        u,
    )
    user = _find(nodes, "username field", lambda n: n.html_id == "username")
    pw = _find(nodes, "password field", lambda n: n.html_id == "password")
    return _fill_then_submit([(user, m.group(1)), (pw, m.group(2))], _button(nodes, "Login"))


def choose_list(u: str, nodes: Sequence[Node]) -> str:
    name = _match(r"Select (.*) from the list and click Submit\.", u).group(1)
    sel = _find(nodes, "list", lambda n: n.role == "combobox")
    if sel.value != name:
        return f"select({_pid(sel)}, {_q(name)})"
    return f"click({_pid(_button(nodes, 'Submit'))})"


EXPERTS: dict[str, Expert] = {
    "click-test": click_test,
    "click-test-2": click_test_2,
    "click-button": click_button,
    "click-link": click_link,
    "click-option": click_option,
    "click-checkboxes": click_checkboxes,
    "click-dialog": click_dialog,
    "click-dialog-2": click_dialog_2,
    "click-tab": click_tab,
    "click-widget": click_widget,
    "enter-text": enter_text,
    "enter-text-2": enter_text_2,
    "enter-password": enter_password,
    "focus-text": focus_text,
    "focus-text-2": focus_text_2,
    "login-user": login_user,
    "choose-list": choose_list,
}
