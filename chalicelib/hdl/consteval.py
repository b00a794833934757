"""Evaluate the constant expressions of port ranges and parameter defaults from their syntax.

Integer arithmetic only (IEEE 1800-2017 §11.4 operators that ranges use), over literals and
parameters already known; anything else — a function call other than $clog2, a hierarchical
name, a real — gives None ("not known without elaboration").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pyslang
from pyslang import syntax as sx

# Syntax nodes are read by their kind's attributes, which the stubs do not type per kind.
Node = Any

SK = sx.SyntaxKind


def _clog2(n: int) -> int:
    return 0 if n <= 1 else (n - 1).bit_length()


def _div(a: int, b: int) -> int | None:
    return None if b == 0 else int(a / b)


def _mod(a: int, b: int) -> int | None:
    return None if b == 0 else a - b * int(a / b)


def _power(a: int, b: int) -> int | None:
    return None if b < 0 or b > 1024 else a**b


_BINARY: dict[SK, Callable[[int, int], int | None]] = {
    SK.AddExpression: lambda a, b: a + b,
    SK.SubtractExpression: lambda a, b: a - b,
    SK.MultiplyExpression: lambda a, b: a * b,
    SK.DivideExpression: _div,
    SK.ModExpression: _mod,
    SK.PowerExpression: _power,
    SK.LogicalShiftLeftExpression: lambda a, b: a << b if 0 <= b <= 1024 else None,
    SK.ArithmeticShiftLeftExpression: lambda a, b: a << b if 0 <= b <= 1024 else None,
    SK.LogicalShiftRightExpression: lambda a, b: a >> b if b >= 0 else None,
    SK.ArithmeticShiftRightExpression: lambda a, b: a >> b if b >= 0 else None,
    SK.BinaryAndExpression: lambda a, b: a & b,
    SK.BinaryOrExpression: lambda a, b: a | b,
    SK.BinaryXorExpression: lambda a, b: a ^ b,
}


def evaluate(expr: Node | None, values: Mapping[str, int]) -> int | None:
    """The integer value of ``expr`` given parameter ``values`` (name -> int), or None."""
    if expr is None:
        return None
    kind = expr.kind
    if kind in _BINARY:
        left, right = evaluate(expr.left, values), evaluate(expr.right, values)
        return None if left is None or right is None else _BINARY[kind](left, right)
    return _leaf(expr, values)


def _leaf(expr: Node, values: Mapping[str, int]) -> int | None:
    kind = expr.kind
    if kind == SK.IntegerLiteralExpression:
        return _int(expr.literal.value)
    if kind == SK.IntegerVectorExpression:
        return _int(expr.value.value)
    if kind == SK.ParenthesizedExpression:
        return evaluate(expr.expression, values)
    if kind == SK.IdentifierName:
        return values.get(expr.identifier.valueText)
    if kind == SK.UnaryMinusExpression:
        operand = evaluate(expr.operand, values)
        return None if operand is None else -operand
    if kind == SK.UnaryPlusExpression:
        return evaluate(expr.operand, values)
    if kind == SK.InvocationExpression:
        return _clog2_call(expr, values)
    return None


def _clog2_call(expr: Node, values: Mapping[str, int]) -> int | None:
    left = expr.left
    if left.kind != SK.SystemName or left.systemIdentifier.valueText != "$clog2":
        return None
    if expr.arguments is None:
        return None
    args = [a.expr for a in expr.arguments.parameters if a.kind == SK.OrderedArgument]
    if len(args) != 1:
        return None
    arg = args[0]
    while arg.kind in (SK.SimplePropertyExpr, SK.SimpleSequenceExpr):
        arg = arg.expr
    value = evaluate(arg, values)
    return None if value is None else _clog2(value)


def _int(value: object) -> int | None:
    """An SVInt literal value as a Python int; None for one with x or z bits."""
    if isinstance(value, int):
        return value
    if not isinstance(value, pyslang.SVInt) or value.hasUnknown:
        return None
    digits = value.toString(pyslang.LiteralBase.Decimal, False)
    try:
        return int(digits)
    except ValueError:
        return None
