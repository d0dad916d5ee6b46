"""KeyboardInterrupt and the books: Ctrl-C outside ``serve()`` never lands between two
moves of the accounting.

Trio raises KeyboardInterrupt where the code happens to be, unless that code is
KI-protected: then it delivers it to the main task at its next checkpoint, as a
cancellation, which every stage accounts for. So the entry function of every task of a
run is protected (:func:`protected`: the code those tasks run inherits it), and the code
of the user's functions (``parse``, ``when``, a sink's methods, a source's iteration)
is marked unprotected (:func:`unprotect`), so that Ctrl-C still interrupts a user
function that hangs: the KeyboardInterrupt then comes out of the user's call, where the
stage reports what it holds, as for any exception.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable
from typing import Any, TypeVar

import trio

__all__ = ["protected", "unprotect"]

F = TypeVar("F", bound=Callable[..., Any])


def protected(fn: F) -> F:
    """Mark ``fn`` (a task's entry function) KI-protected."""
    return trio.lowlevel.enable_ki_protection(fn)


class _Code:
    __slots__ = ("__code__",)

    def __init__(self, code: types.CodeType) -> None:
        self.__code__ = code


def _codes(obj: object) -> list[types.CodeType]:
    """The code objects that run when ``obj`` is called or iterated."""
    if isinstance(obj, types.GeneratorType):
        return [obj.gi_code]
    if isinstance(obj, types.AsyncGeneratorType):
        return [obj.ag_code]
    if isinstance(obj, types.CoroutineType):
        return [obj.cr_code]
    if isinstance(obj, functools.partial):
        return _codes(obj.func)
    if isinstance(obj, types.MethodType):
        return _codes(obj.__func__)
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return [code]
    found = []
    for name in ("__call__", "__next__", "__anext__", "__iter__", "__aiter__"):
        method = getattr(type(obj), name, None)
        code = getattr(method, "__code__", None)
        if isinstance(code, types.CodeType):
            found.append(code)
    return found


def unprotect(*objs: object) -> None:
    """Mark the code of ``objs`` (the user's functions, methods, generators) as not
    KI-protected. Code that is not Python (a builtin) has no frame to mark: Ctrl-C then
    waits for it to return to the nearest Python frame."""
    for obj in objs:
        if obj is None:
            continue
        try:
            codes = _codes(obj)
        except Exception:  # a hostile object: its code stays as it is
            continue
        for code in codes:
            if code.co_filename.startswith(_OWN):
                continue  # trio_sink's own (a built-in sink): keeps its protection
            trio.lowlevel.disable_ki_protection(_Code(code))


_OWN = os.path.join(os.path.dirname(__file__), "")  # the package's folder, with its separator
