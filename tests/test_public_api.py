"""The public API: curated top-level names, `__all__` everywhere, docstrings and type hints.

What is public: every module of esparse whose name does not start with "_", and in it the
names of its `__all__`. Each such function or class has a docstring (the API reference is
generated from them) and each function annotates every parameter and its return.
"""

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import esparse

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    p.stem for p in (ROOT / "esparse").glob("*.py") if not p.stem.startswith("_")
) + sorted(
    p.name
    for p in (ROOT / "esparse").iterdir()
    if p.is_dir() and not p.name.startswith("_") and (p / "__init__.py").exists()
)


def _public(module_name):
    module = importlib.import_module(f"esparse.{module_name}")
    return module, [(n, getattr(module, n)) for n in module.__all__]


def test_import_esparse_is_fast_and_imports_no_jax():
    code = (
        "import sys, time; t = time.perf_counter(); import esparse; "
        "dt = time.perf_counter() - t; "
        "assert 'jax' not in sys.modules, 'import esparse imported jax'; "
        "assert not [m for m in sys.modules if m.startswith('esparse.')]; print(dt)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert float(out.stdout) < 0.5  # a few ms in practice; the bound allows a loaded machine


def test_version_is_single_sourced():
    from importlib.metadata import PackageNotFoundError, version

    assert esparse.__version__.count(".") >= 2
    try:
        assert version("esparse") == esparse.__version__
    except PackageNotFoundError:  # running from a source tree that is not installed
        pass


def test_curated_names_resolve_and_are_documented():
    assert esparse.__all__[0] == "__version__"
    assert sorted(esparse.__all__[1:]) == sorted(esparse._EXPORTS)
    for name, module_name in esparse._EXPORTS.items():
        value = getattr(esparse, name)
        module = importlib.import_module(f"esparse.{module_name}")
        assert value is getattr(module, name), name
        assert name in module.__all__, f"esparse.{module_name}.__all__ lacks {name}"
        assert inspect.getdoc(value), f"esparse.{name} has no docstring"
    for module_name in esparse._SUBMODULES:
        assert inspect.ismodule(getattr(esparse, module_name)), module_name
    with pytest.raises(AttributeError):
        esparse.no_such_name  # noqa: B018


def test_type_checking_imports_match_the_curated_names():
    """The `if TYPE_CHECKING:` imports (what IDEs and type checkers see) list the same names."""
    tree = ast.parse((ROOT / "esparse" / "__init__.py").read_text())
    seen = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module != "esparse":
                    for alias in imp.names:
                        seen[alias.name] = imp.module.removeprefix("esparse.")
    assert seen == esparse._EXPORTS


@pytest.mark.parametrize("module_name", MODULES)
def test_module_has_all_and_docstrings(module_name):
    module = importlib.import_module(f"esparse.{module_name}")
    assert inspect.getdoc(module), f"esparse.{module_name} has no module docstring"
    assert hasattr(module, "__all__"), f"esparse.{module_name} has no __all__"
    assert len(set(module.__all__)) == len(module.__all__)
    for name, value in _public(module_name)[1]:
        assert not name.startswith("_"), f"esparse.{module_name}.__all__ exports {name}"
        if inspect.isfunction(value) or inspect.isclass(value):
            assert value.__doc__, f"esparse.{module_name}.{name} has no docstring"


@pytest.mark.parametrize("module_name", MODULES)
def test_public_functions_are_annotated(module_name):
    missing = []
    for name, value in _public(module_name)[1]:
        fn = inspect.unwrap(value) if callable(value) else None
        if not inspect.isfunction(fn):
            continue
        sig = inspect.signature(fn)
        params = [p for p, par in sig.parameters.items() if par.annotation is inspect._empty]
        if params:
            missing.append(f"{name}: parameters {params}")
        if sig.return_annotation is inspect._empty:
            missing.append(f"{name}: return")
    assert not missing, f"esparse.{module_name}: unannotated: {missing}"


@pytest.mark.parametrize("module_name", MODULES)
def test_no_module_imports_a_private_name_of_another(module_name):
    path = ROOT / "esparse" / f"{module_name}.py"
    files = [path] if path.exists() else sorted((ROOT / "esparse" / module_name).rglob("*.py"))
    bad = [
        f"from {node.module} import {alias.name}"
        for file in files
        for node in ast.walk(ast.parse(file.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("esparse.")
        for alias in node.names
        if alias.name.startswith("_") and not node.module.startswith("esparse._")
    ]
    assert not bad, f"esparse.{module_name} imports private names: {bad}"
