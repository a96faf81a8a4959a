"""The nft spelling of a transaction (emu.netfilter.transaction): the one place kemu
writes nft scripts. (iptables has its own renderer, emu.proxy.iptables_render.)

Tables are written as blocks — sets and maps on one line each, then chains with a rule a
line; other commands one a line (`add rule ip t c ...`). nft 1.0.6 wants a ';' or a
newline before a closing '}', and a hook priority as a number for the ip family's output
hook: base chains are spelled `type filter hook output priority -110; policy accept;`.
The leaves spell themselves and keep their text — a rule its `Rule.text`, a set its
`SetDef.body` — so what is kept from one render to the next costs nothing to spell again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emu.netfilter.ruleset import Chain, elements_text, quote
from emu.netfilter.transaction import (
    AddChain,
    AddElements,
    AddRules,
    AddSet,
    AddTable,
    DeleteChain,
    DeleteElements,
    DeleteSet,
    DeleteTable,
    FlushChain,
    FlushSet,
    TableDef,
    Transaction,
)


def script(txn: Transaction) -> str:
    """The transaction as one nft script ("" when it has no commands)."""
    out: list[str] = []
    t = f"{txn.family} {quote(txn.table)}"
    for op in txn.ops:
        _SPELL[type(op)](out, t, op)
    return "\n".join(out) + "\n" if out else ""


def _add_table(out: list[str], t: str, op: AddTable) -> None:
    if f"{op.table.family} {quote(op.table.name)}" != t:
        raise ValueError(f"table {op.table.family} {op.table.name} in a transaction on {t}")
    _table(out, op.table)


def _delete_table(out: list[str], t: str, op: DeleteTable) -> None:
    out.append(f"delete table {t}")


def _add_chain(out: list[str], t: str, op: AddChain) -> None:
    spec = f" {{ {op.chain.spec()} }}" if op.chain.is_base else ""
    out.append(f"add chain {t} {quote(op.chain.name)}{spec}")


def _flush_chain(out: list[str], t: str, op: FlushChain) -> None:
    out.append(f"flush chain {t} {quote(op.name)}")


def _delete_chain(out: list[str], t: str, op: DeleteChain) -> None:
    out.append(f"delete chain {t} {quote(op.name)}")


def _add_rules(out: list[str], t: str, op: AddRules) -> None:
    head = f"add rule {t} {quote(op.chain)} "
    out.extend(head + r.text for r in op.rules)


def _add_set(out: list[str], t: str, op: AddSet) -> None:
    out.append(f"add {_kind(op.set.is_map)} {t} {quote(op.set.name)} {{ {op.set.body} }}")


def _delete_set(out: list[str], t: str, op: DeleteSet) -> None:
    out.append(f"delete {_kind(op.is_map)} {t} {quote(op.name)}")


def _flush_set(out: list[str], t: str, op: FlushSet) -> None:
    out.append(f"flush {_kind(op.is_map)} {t} {quote(op.name)}")


def _add_elements(out: list[str], t: str, op: AddElements) -> None:
    if op.elements:
        out.append(f"add element {t} {quote(op.set)} {{ {elements_text(op.elements)} }}")


def _delete_elements(out: list[str], t: str, op: DeleteElements) -> None:
    if op.keys:
        out.append(f"delete element {t} {quote(op.set)} {{ {', '.join(op.keys)} }}")


# By the op's type: a dict look-up rather than a `match` trying each class in turn.
_SPELL: dict[type, Callable[[list[str], str, Any], None]] = {
    AddTable: _add_table,
    DeleteTable: _delete_table,
    AddChain: _add_chain,
    FlushChain: _flush_chain,
    DeleteChain: _delete_chain,
    AddRules: _add_rules,
    AddSet: _add_set,
    DeleteSet: _delete_set,
    FlushSet: _flush_set,
    AddElements: _add_elements,
    DeleteElements: _delete_elements,
}


def table_text(t: TableDef) -> str:
    """The table as one block (`table f n { ... }`)."""
    out: list[str] = []
    _table(out, t)
    return "\n".join(out) + "\n"


def _table(out: list[str], t: TableDef) -> None:
    spec = f"{t.family} {quote(t.name)}"
    if not (t.sets or t.chains or t.comment):
        out.append(f"table {spec} {{}}")
        return
    out.append(f"table {spec} {{")
    if t.comment:
        out.append(f'  comment "{t.comment}";')
    out += ["  " + s.decl for s in t.sets]
    for c in t.chains:
        _chain(out, c)
    out.append("}")


def _chain(out: list[str], c: Chain) -> None:
    out.append(f"  chain {quote(c.name)} {{")
    if c.is_base:
        out.append(f"    {c.spec()}")
    if c.comment:
        out.append(f'    comment "{c.comment}"')
    out += ["    " + r.text for r in c.rules]
    out.append("  }")


def _kind(is_map: bool) -> str:
    return "map" if is_map else "set"
