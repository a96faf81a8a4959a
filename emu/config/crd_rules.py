"""The x-kubernetes-validations (CEL) rules of CustomResourceDefinitions, evaluated as the
API server evaluates them.

CEL itself is Google's C++ implementation through its Python binding (PyPI
`cel-expr-python`, the cel-expr project's runtime): the standard macros and functions,
RE2 for `matches()` (the same dialect as cel-go's), `duration()`, and the strings
extension (`split`, `substring`, ...). What the Kubernetes CEL environment adds and the
Gateway API rules use is defined here: `isIP()` (k8s.io/apiserver/pkg/cel/library/ip.go)
and the escaping of property names that are CEL keywords (`namespace` is seen by a rule
as `__namespace__`, k8s.io/apiserver/pkg/cel/escaping.go).

The API server's semantics kept here (k8s.io/apiextensions-apiserver/pkg/apiserver/
schema/cel/validation.go):

- a rule is evaluated at every value its schema node applies to, with `self` bound to it;
- a rule that reads `oldSelf` (a transition rule) runs only on update, where the old
  object has a value at the same place;
- a rule that is false gives `<path>: Invalid value: "<schema type>": <message>` (or
  `failed rule: <rule>` without a message); one that fails to evaluate gives the error
  followed by ` evaluating rule: <message>`.

The rules of one schema node are compiled once per process into one program that
yields the list of their outcomes: calling into CEL costs more than most rules do.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from emu.errors import KemuError

if TYPE_CHECKING:
    import cel_expr_python.cel as cel

Problem = tuple[str, str]

# CEL's reserved words: a property with one of these names is `__name__` to a rule.
_CEL_RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop package namespace return var void while".split()
)
_ESCAPED_CHARACTERS = re.compile(r"__|[-./]|[^a-zA-Z0-9_]")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}
_OLD_SELF = re.compile(r"\boldSelf\b")
_NO_SUCH_KEY = re.compile(r'Key not found in map : "(.*)"')

_lock = threading.RLock()
_env: cel.Env | None = None
_bool_type: cel.Type | None = None
_error_type: cel.Type | None = None
_compiled: dict[str, cel.Expression] = {}


@dataclass(frozen=True)
class Rule:
    """One x-kubernetes-validations entry of a schema node."""

    rule: str
    message: str
    transition: bool  # reads oldSelf: checked on update only

    @property
    def failure(self) -> str:
        """What the API server says when the rule is false (ruleMessageOrDefault)."""
        return self.message.strip() or f"failed rule: {self.rule.strip()}"

    @property
    def name(self) -> str:
        """How an evaluation error names the rule (ruleErrorString)."""
        return self.message.strip() or self.rule.strip()


def rules_of(schema: dict[str, Any]) -> RuleSet | None:
    """The rules of one schema node (messageExpression is not evaluated: `message`, or the
    API server's default, is said instead)."""
    entries = schema.get("x-kubernetes-validations") or ()
    rules = tuple(Rule(entry["rule"], entry.get("message", ""), bool(_OLD_SELF.search(entry["rule"]))) for entry in entries)
    return RuleSet(rules) if rules else None


def cel_name(property_name: str) -> str | None:
    """A property's name as a rule sees it; None if rules cannot see it at all."""
    if not property_name or property_name[0].isdigit():
        return None
    if property_name in _CEL_RESERVED:
        return f"__{property_name}__"
    unsupported = False

    def escape(m: re.Match[str]) -> str:
        nonlocal unsupported
        found = _ESCAPES.get(m[0])
        if found is None:
            unsupported = True
            return ""
        return found

    escaped = _ESCAPED_CHARACTERS.sub(escape, property_name)
    return None if unsupported else escaped


def _is_ip(text: str) -> bool:
    """Kubernetes' isIP(): an IPv4 or IPv6 address, no zone, not an IPv4-mapped IPv6 one."""
    if "%" in text:
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None)


def _environment() -> cel.Env:
    global _env, _bool_type, _error_type
    if _env is not None:
        return _env
    with _lock:
        if _env is not None:
            return _env
        try:
            import cel_expr_python.cel as cel
            import cel_expr_python.ext.ext_strings as ext_strings
        except ImportError as e:
            raise KemuError("checking Gateway API objects needs the CEL runtime: pip install cel-expr-python (see setup.cfg)") from e
        is_ip = cel.FunctionDecl("isIP", [cel.Overload("isIP_string", cel.Type.BOOL, [cel.Type.STRING], impl=_is_ip)])
        _bool_type, _error_type = cel.Type.BOOL, cel.Type.ERROR
        _env = cel.NewEnv(
            variables={"self": cel.Type.DYN, "oldSelf": cel.Type.DYN},
            extensions=[ext_strings.ExtStrings()],
            functions=[is_ip],
        )
    return _env


def compiled(expression: str) -> cel.Expression:
    """The compiled program of one CEL expression (compiled once per process)."""
    found = _compiled.get(expression)
    if found is None:
        with _lock:
            found = _compiled.get(expression)
            if found is None:
                found = _compiled[expression] = _environment().compile(expression)
    return found


def _together(rules: tuple[Rule, ...]) -> str:
    """One program for every rule of a node, `[rule1, rule2, ...]`: one call into CEL
    instead of one per rule (the call, not the rule, is most of the cost). The newline
    ends a `//` comment a rule may end with."""
    return "[" + ", ".join(f"({rule.rule}\n)" for rule in rules) + "]"


class RuleSet:
    """The rules of one schema node, with their programs."""

    __slots__ = ("_programs", "on_create", "rules")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.on_create = tuple(rule for rule in rules if not rule.transition)
        # has an old value -> the program of the active rules (False: there are none)
        self._programs: dict[bool, cel.Expression | Literal[False]] = {}

    def prepare(self) -> None:
        """Compile ahead what `check` runs on create (a rule that does not compile fails here)."""
        for rule in self.rules:
            compiled(rule.rule)
        self._program(False)

    def _program(self, has_old: bool) -> cel.Expression | Literal[False]:
        found = self._programs.get(has_old)
        if found is None:
            active = self.rules if has_old else self.on_create
            found = self._programs[has_old] = compiled(_together(active)) if active else False
        return found

    def check(self, path: str, type_name: str, value: Any, old: Any, has_old: bool) -> list[Problem]:
        """The problems the API server reports at `path`; `value` (and `old`) are already in
        CEL's view (see `cel_name`)."""
        program = self._program(has_old)
        if program is False:
            return []
        data = {"self": value, "oldSelf": old} if has_old else {"self": value}
        active = self.rules if has_old else self.on_create
        together = program.eval(data=data)
        outcomes = together.plain_value() if together.type() != _error_type else None
        if isinstance(outcomes, list):  # (always, when not an error: the program makes a list)
            if all(outcome is True for outcome in outcomes):
                return []
            if all(isinstance(outcome, bool) for outcome in outcomes):
                return [
                    (path, f'Invalid value: "{type_name}": {rule.failure}') for rule, ok in zip(active, outcomes, strict=True) if not ok
                ]
        # Some rule could not be evaluated (the list is then an error): rule by rule.
        problems: list[Problem] = []
        for rule in active:
            result = compiled(rule.rule).eval(data=data)
            if result.type() == _bool_type:
                if result.value() is not True:
                    problems.append((path, f'Invalid value: "{type_name}": {rule.failure}'))
            else:
                problems.append((path, f'Invalid value: "{type_name}": {_error_detail(result.value(), rule)}'))
        return problems


def _error_detail(error: Any, rule: Rule) -> str:
    """A rule that could not be evaluated, in the API server's words (cel-go's errors)."""
    text = str(error)
    if "No matching overload" in text:
        return f"'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule.name}"
    m = _NO_SUCH_KEY.search(text)
    if m:
        text = f"no such key: {m[1]}"
    return f"{text} evaluating rule: {rule.name}"
