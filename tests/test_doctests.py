"""The examples (``>>>``) in the docstrings run, and show what they say.

Every module of the three packages whose source holds an example is collected, so an example
added anywhere runs here without a change to this file. The root conftest seeds each test,
so examples that draw random numbers are reproducible; pytest's warning filters apply to
them too.
"""

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"pyrocrl": "pyrocrl", "models": "pyrocrl.models", "inference": "pyrocrl.inference"}


def _modules_with_examples() -> list[str]:
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ">>> " not in path.read_text():
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names.append(".".join((package, *parts)))
    return names


MODULES = _modules_with_examples()


def test_examples_exist():
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has '>>> ' in its source but no docstring example"
    failures = []
    for test in tests:
        out: list[str] = []
        result = runner.run(test, out=out.append)
        if result.failed:
            failures.append("".join(out))
    assert not failures, "\n".join(failures)
