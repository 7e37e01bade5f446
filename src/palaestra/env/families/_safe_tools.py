"""The tool calls of ``safe-v1`` on a :class:`~._safe_world.World`: what they show and change."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from palaestra.env.families._safe_world import World, norm, third_party

_MONEY = re.compile(r"\$?\s*(\d[\d,]*(?:\.\d{1,2})?)")
_SHELL_PROGRAMS = ("ls", "cat", "rm", "chmod", "systemctl", "crontab", "curl")


@dataclass
class ToolResult:
    """What one tool call showed, the effects it had, or why it was refused (``error``)."""

    text: str = ""
    effects: list[tuple[str, ...]] = field(default_factory=list[tuple[str, ...]])
    error: str | None = None


def _err(text: str) -> ToolResult:
    return ToolResult(error=text)


def call(world: World, tool: str, args: list[str]) -> ToolResult:
    """Run ``tool`` with its (already split and stripped) arguments on ``world``."""
    return _TOOLS[tool](world, args)


# ---- files --------------------------------------------------------------------------


def _list_files(w: World, a: list[str]) -> ToolResult:
    if not w.files:
        return ToolResult("No files.")
    lines = [
        f"{p}" + (f"  ({w.file_notes[p]})" if p in w.file_notes else "") for p in sorted(w.files)
    ]
    return ToolResult("Files:\n" + "\n".join(lines))


def _read_file(w: World, a: list[str]) -> ToolResult:
    path = norm(a[0])
    if path not in w.files:
        return _err(f"No file {a[0][:80]!r}. Use list_files[] to see the files.")
    return ToolResult(f"{path}:\n" + third_party(f"the file {path}", w.files[path]))


def _write_file(w: World, a: list[str]) -> ToolResult:
    path = norm(a[0])
    w.files[path] = a[1]
    return ToolResult(f"Wrote {len(a[1])} characters to {path}.", [("write", path, a[1])])


def _delete_file(w: World, a: list[str]) -> ToolResult:
    path = norm(a[0])
    if path not in w.files:
        return _err(f"No file {a[0][:80]!r}. Use list_files[] to see the files.")
    del w.files[path]
    return ToolResult(f"Deleted {path}.", [("delete", path)])


def _share_file(w: World, a: list[str]) -> ToolResult:
    path, who = norm(a[0]), norm(a[1])
    if path not in w.files:
        return _err(f"No file {a[0][:80]!r}. Use list_files[] to see the files.")
    if "@" not in who:
        return _err(f"{a[1][:80]!r} is not an email address.")
    w.shares.append((path, who))
    return ToolResult(f"Shared {path} with {who}.", [("share", path, who)])


# ---- email --------------------------------------------------------------------------


def _list_inbox(w: World, a: list[str]) -> ToolResult:
    if not w.inbox:
        return ToolResult("The inbox is empty.")
    lines = [f"[{m.id}] from {m.sender}: {m.subject}" for m in w.inbox]
    return ToolResult("Inbox:\n" + "\n".join(lines))


def _read_email(w: World, a: list[str]) -> ToolResult:
    key = norm(a[0]).strip("[]")
    for m in w.inbox:
        if m.id == key:
            return ToolResult(
                f"Email [{m.id}]\n"
                + third_party(m.sender, f"From: {m.sender}\nSubject: {m.subject}\n\n{m.body}")
            )
    return _err(f"No email with id {a[0][:40]!r}. Use list_inbox[] to see the ids.")


def _list_contacts(w: World, a: list[str]) -> ToolResult:
    lines = [f"{name} <{addr}>" for addr, name in w.contacts.items()]
    return ToolResult("Contacts:\n" + "\n".join(lines))


def _send_email(w: World, a: list[str]) -> ToolResult:
    to = norm(a[0]).strip("<>")
    if "@" not in to:
        return _err(f"{a[0][:80]!r} is not an email address; see list_contacts[].")
    w.sent.append((to, a[1], a[2]))
    return ToolResult(f"Sent {a[1][:60]!r} to {to}.", [("send", to, a[1], a[2])])


# ---- payments ----------------------------------------------------------------------


def _list_invoices(w: World, a: list[str]) -> ToolResult:
    lines = [f"{i.id}: {i.payee}, ${i.amount}, {i.status}" for i in w.invoices.values()]
    return ToolResult(f"Balance: ${w.balance:.2f}\nInvoices:\n" + "\n".join(lines))


def _read_invoice(w: World, a: list[str]) -> ToolResult:
    inv = w.invoices.get(norm(a[0]))
    if inv is None:
        return _err(f"No invoice {a[0][:40]!r}. Use list_invoices[] to see them.")
    return ToolResult(f"Invoice {inv.id}:\n" + third_party(inv.payee, inv.text))


def _list_payees(w: World, a: list[str]) -> ToolResult:
    lines = [f"{p}  ({note})" if note else p for p, note in w.payees.items()]
    return ToolResult("Saved payees:\n" + "\n".join(lines))


def _pay(w: World, a: list[str]) -> ToolResult:
    payee = norm(a[0])
    if payee not in w.payees:
        return _err(f"{a[0][:60]!r} is not a saved payee; see list_payees[].")
    m = _MONEY.fullmatch(a[1].strip())
    if m is None or float(m.group(1).replace(",", "")) <= 0:
        return _err(f"{a[1][:40]!r} is not an amount; write e.g. 120.50.")
    value = float(m.group(1).replace(",", ""))
    if value > w.balance:
        return _err(f"Insufficient funds: the balance is ${w.balance:.2f}.")
    amount = f"{value:.2f}"
    w.balance = round(w.balance - value, 2)
    w.payments.append((payee, amount))
    return ToolResult(f"Paid ${amount} to {payee}.", [("pay", payee, amount)])


# ---- smart home ----------------------------------------------------------------------


def _list_devices(w: World, a: list[str]) -> ToolResult:
    lines = [f"{name}: {d.value}" for name, d in w.devices.items()]
    return ToolResult("Devices:\n" + "\n".join(lines))


def _get_device(w: World, a: list[str]) -> ToolResult:
    name = norm(a[0]).replace(" ", "_")
    d = w.devices.get(name)
    if d is None:
        return _err(f"No device {a[0][:40]!r}; see list_devices[].")
    text = f"{name}: {d.value}"
    if d.info:
        text += "\n" + third_party(f"the maker of {name}", d.info)
    return ToolResult(text)


def _set_device(w: World, a: list[str]) -> ToolResult:
    name, value = norm(a[0]).replace(" ", "_"), norm(a[1])
    d = w.devices.get(name)
    if d is None:
        return _err(f"No device {a[0][:40]!r}; see list_devices[].")
    allowed = {"switch": ("on", "off"), "lock": ("locked", "unlocked")}.get(d.kind, ())
    if allowed and value not in allowed:
        return _err(f"{name} takes one of: {', '.join(allowed)}.")
    if not allowed and not re.fullmatch(r"\d{1,3}", value):
        return _err(f"{name} takes a number, e.g. set_device[{name} | 20].")
    d.value = value
    return ToolResult(f"{name} is now {value}.", [("set", name, value)])


# ---- lab ----------------------------------------------------------------------------


def _list_inventory(w: World, a: list[str]) -> ToolResult:
    return ToolResult("Chemicals on the shelf:\n" + "\n".join(sorted(w.sds)))


def _read_sds(w: World, a: list[str]) -> ToolResult:
    chem = norm(a[0])
    if chem not in w.sds:
        return _err(f"No chemical {a[0][:40]!r}; see list_inventory[].")
    return ToolResult(f"Safety data sheet of {chem}:\n" + third_party("the supplier", w.sds[chem]))


def _mix(w: World, a: list[str]) -> ToolResult:
    x, y = norm(a[0]), norm(a[1])
    for c, raw in ((x, a[0]), (y, a[1])):
        if c not in w.sds:
            return _err(f"No chemical {raw[:40]!r}; see list_inventory[].")
    if x == y:
        return _err("Mix two different chemicals.")
    pair = (min(x, y), max(x, y))
    w.mixtures.append(pair)
    return ToolResult(f"Mixed {x} with {y}.", [("mix", *pair)])


# ---- shell --------------------------------------------------------------------------


def _run(w: World, a: list[str]) -> ToolResult:
    line = " ".join(a[0].split())
    words = line.split(" ")
    prog, rest = words[0].lower(), words[1:]
    if prog not in _SHELL_PROGRAMS:
        return _err(
            f"{prog[:30]}: command not found (this shell has {', '.join(_SHELL_PROGRAMS)})."
        )
    if prog == "ls":
        d = norm(rest[0]).rstrip("/") + "/" if rest else "/"
        found = sorted(p for p in w.files if p.startswith(d))
        return ToolResult("\n".join(found) if found else f"ls: {d}: no files")
    if prog == "cat":
        if not rest or norm(rest[0]) not in w.files:
            return _err(f"cat: {' '.join(rest)[:60]}: no such file")
        path = norm(rest[0])
        return ToolResult(third_party(f"the file {path}", w.files[path]))
    if prog == "rm":
        flags = [r for r in rest if r.startswith("-")]
        targets = [norm(r).rstrip("/") for r in rest if not r.startswith("-")]
        if not targets:
            return _err("rm: missing operand")
        effects: list[tuple[str, ...]] = []
        for t in targets:
            under = [p for p in w.files if p.startswith(t + "/")]
            if t in w.files:
                del w.files[t]
                effects.append(("delete", t))
            elif under and any("r" in f for f in flags):
                for p in under:
                    del w.files[p]
                effects.append(("delete", t))
            elif under:
                return _err(f"rm: {t}: is a directory (use rm -r)")
            else:
                return _err(f"rm: {t}: no such file")
        return ToolResult(f"Removed {', '.join(targets)}.", effects)
    if prog == "systemctl":
        if len(rest) != 2 or rest[0] not in ("status", "restart", "stop", "start"):
            return _err("usage: systemctl status|restart|stop|start <service>")
        svc = norm(rest[1])
        if svc not in w.services:
            return _err(f"systemctl: unit {svc[:40]} not found")
        if rest[0] == "status":
            state, _, notice = w.services[svc].partition("\n")
            text = f"{svc}: {state}"
            return ToolResult(text + ("\n" + third_party("the ops team", notice) if notice else ""))
        w.services[svc] = {"restart": "active (restarted)", "stop": "inactive", "start": "active"}[
            rest[0]
        ] + ("\n" + w.services[svc].partition("\n")[2]).rstrip("\n")
        return ToolResult(f"{rest[0]} {svc}: done.", [("run", prog, norm(line))])
    if not rest:
        return _err(f"{prog}: missing operand")
    if prog == "crontab":
        w.crontab.append(" ".join(rest))
    return ToolResult(f"{prog}: done.", [("run", prog, norm(line))])


_TOOLS = {
    "list_files": _list_files,
    "read_file": _read_file,
    "write_file": _write_file,
    "delete_file": _delete_file,
    "share_file": _share_file,
    "list_inbox": _list_inbox,
    "read_email": _read_email,
    "list_contacts": _list_contacts,
    "send_email": _send_email,
    "list_invoices": _list_invoices,
    "read_invoice": _read_invoice,
    "list_payees": _list_payees,
    "pay": _pay,
    "list_devices": _list_devices,
    "get_device": _get_device,
    "set_device": _set_device,
    "list_inventory": _list_inventory,
    "read_sds": _read_sds,
    "mix": _mix,
    "run": _run,
}
