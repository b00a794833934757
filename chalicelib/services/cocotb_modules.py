"""cocotb test modules: which project file a module name in a cocotb job's config means.

Shared by the API (a name no file answers is a 422 at submit) and the runner (which puts each
module's import root on the testbench's PYTHONPATH). Python's own rule first: `tests.test_alu`
is `tests/test_alu.py` from the project root. The web client's design page creates every file
under `src/`, so a name that is not a path from the root may also be the tail of exactly one
project path (`test_adder` -> `src/test_adder.py`); its import root is then `src`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.errors import Unprocessable


@dataclass(frozen=True)
class TestModule:
    name: str  # as cocotb imports it: "test_adder", "tests.test_alu"
    path: str  # the project file: "src/test_adder.py"
    root: str  # the folder on sys.path ("" for the project root)


def resolve_test_modules(names: Iterable[str], paths: Iterable[str]) -> list[TestModule]:
    """Each module name (already validated as dotted identifiers) with its project file.

    Raises Unprocessable naming the module when no project file answers it, or when several do
    (then naming them: give the dotted path from the project root instead).
    """
    known = sorted(set(paths))
    found = []
    for name in names:
        rel = name.replace(".", "/") + ".py"
        if rel in known:
            found.append(TestModule(name, rel, ""))
            continue
        matches = [p for p in known if p.endswith("/" + rel)]
        if not matches:
            raise Unprocessable(f"config.test_modules: no project file {rel} for module {name!r} "
                                "(a module is a .py file named without '.py')")
        if len(matches) > 1:
            raise Unprocessable(f"config.test_modules: several project files answer {name!r} "
                                f"({', '.join(matches)}); name it by its path from the project "
                                "root with dots, e.g. " + repr(matches[0][:-3].replace("/", ".")))
        found.append(TestModule(name, matches[0], matches[0][: -len(rel) - 1]))
    return found
