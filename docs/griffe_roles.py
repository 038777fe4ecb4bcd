"""A griffe extension for the API reference: reads the docstrings' Sphinx roles (:class:`x.Y`,
:func:`~x.f`) as plain code spans, since mkdocstrings renders Markdown; and shows the value of a
default a signature takes from a named constant (`length: int = 200`, not `= DEFAULTS.length`)."""

import ast
import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def _plain(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


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
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)

    def on_package(self, *, pkg, **kwargs) -> None:
        for function in _functions(pkg):
            for parameter in function.parameters:
                value = _literal(pkg, parameter.default)
                if value is not None:
                    parameter.default = value
