"""The documentation of a dataclass's fields: type, default, and the docstring written
under each field (as the recipe sections and plugins' ``Options`` do)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing


def field_docs(cls) -> dict[str, str]:
    """Field name -> the string literal that follows its definition in the class body
    (of ``cls`` or, for inherited fields, of the base class that defines them)."""
    docs: dict = {}
    for klass in reversed(cls.__mro__[:-1]):
        docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                and isinstance(after.value.value, str):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe_fields(cls) -> list[dict]:
    """``[{name, type, default, help}]`` for each field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    rows = []
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        rows.append({"name": field.name, "type": _type_name(hints.get(field.name, field.type)),
                     "default": default if isinstance(default, (str, int, float, bool, type(None))) else repr(default),
                     "help": docs.get(field.name, "")})
    return rows


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None and hasattr(hint, "__name__") \
        else str(hint).replace("typing.", "")
