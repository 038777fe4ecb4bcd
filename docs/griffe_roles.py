"""A griffe extension for the API reference: reads the docstrings' Sphinx roles (:class:`x.Y`,
:func:`~x.f`) as code spans, since mkdocstrings renders Markdown, linked to the entry of the
reference that documents their target, if one does; and shows the value of a default a signature
takes from a named constant (`length: int = 200`, not `= DEFAULTS.length`)."""

import ast
import re
from pathlib import Path

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
REFERENCE = Path(__file__).parent / "reference" / "python.md"


def _documented() -> set[str]:
    """The paths the Python reference has an entry for: each `::: path`, and the members it lists."""
    paths = set()
    for block in re.split(r"^(?=::: )", REFERENCE.read_text(encoding="utf-8"), flags=re.M):
        head = re.match(r"::: (charseq\.[\w.]+)", block)
        if head:
            paths.add(head.group(1))
            members = re.search(r"members: \[([^\]]*)\]", block)
            paths.update(f"{head.group(1)}.{m.strip()}" for m in (members.group(1).split(",") if members else ()))
    return paths


DOCUMENTED = _documented()


def _role(obj, match: re.Match) -> str:
    """The code span a role stands for, a link where the reference documents its target (the name is
    read as the docstring's module reads it: a full path, or one of the module's own names)."""
    short, target = match.groups()
    text = f"`{target.rsplit('.', 1)[-1] if short else target}`"
    module = obj if obj.is_module else obj.module
    candidates = [target, f"{module.path}.{target}"]
    first, _, rest = target.partition(".")
    member = module.members.get(first)
    if member is not None and member.is_alias:
        candidates.append(member.target_path + (f".{rest}" if rest else ""))
    for path in candidates:
        if path in DOCUMENTED:
            return f"[{text}][{path}]"
    return text


def _member(pkg, path: str, depth: int = 0):
    """The object a dotted path names, through aliases and through constants: a name bound to another
    (`DECODE = config.DECODE`) is followed, and the attributes of an instance made with no arguments
    (`DEFAULTS = GenerateConfig()`) are its class's. None where the path cannot be followed statically."""
    parts = path.split(".")
    if parts[0] != pkg.name or depth > 8:
        return None
    obj = pkg
    for part in parts[1:]:
        try:
            obj = obj.final_target if obj.is_alias else obj
        except griffe.AliasResolutionError:
            return None
        if obj.is_attribute:
            value = obj.value
            if isinstance(value, griffe.ExprCall) and not value.arguments:
                obj = _member(pkg, value.function.canonical_path, depth + 1)
            elif isinstance(value, (griffe.ExprName, griffe.ExprAttribute)):
                obj = _member(pkg, value.canonical_path, depth + 1)
            else:
                return None
            if obj is None:
                return None
        obj = obj.members.get(part)
        if obj is None:
            return None
    return obj


def _literal(pkg, expression, depth: int = 0) -> str | None:
    """The source of the literal value a default names (`DEFAULTS.length` → `200`), else None."""
    if not isinstance(expression, (griffe.ExprName, griffe.ExprAttribute)) or depth > 8:
        return None
    obj = _member(pkg, expression.canonical_path)
    try:
        obj = obj.final_target if obj is not None and obj.is_alias else obj
    except griffe.AliasResolutionError:
        return None
    if obj is None or not obj.is_attribute:
        return None
    if isinstance(obj.value, str):
        try:
            ast.literal_eval(obj.value)
        except (ValueError, SyntaxError):
            return None
        return obj.value
    return _literal(pkg, obj.value, depth + 1)


def _functions(obj):
    for member in obj.members.values():
        if member.is_alias:
            continue
        if member.is_function:
            yield member
        elif member.is_class or member.is_module:
            yield from _functions(member)


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda match: _role(obj, match), obj.docstring.value)

    def on_package(self, *, pkg, **kwargs) -> None:
        for function in _functions(pkg):
            for parameter in function.parameters:
                value = _literal(pkg, parameter.default)
                if value is not None:
                    parameter.default = value
