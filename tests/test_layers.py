"""The package's layers import one way (docs/design.md, architecture): the spec and the edk2
model below the readers and the paths, the orchestration (explain, audit) above both, outputs
and the CLI on top; and no module takes another's private name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "efihandoff"

# package (or module) -> the efihandoff packages/modules it must never import
FORBIDDEN = {
    "uefi": (
        "paths", "sources", "edk2", "rules", "fwupd", "descriptions", "explain", "audit", "survey",
        "outputs", "cli",
    ),
    "rules": ("paths", "sources", "explain", "audit", "survey", "outputs", "cli"),
    "edk2": ("paths", "sources", "rules", "explain", "audit", "survey", "outputs", "cli"),
    "machine": ("paths", "sources", "edk2", "explain", "audit", "survey", "outputs", "cli"),
    "intervals": ("paths", "sources", "edk2", "explain", "audit", "survey", "outputs", "cli"),
    "sources": ("paths", "explain", "audit", "survey", "outputs", "cli"),
    "paths": ("sources", "explain", "audit", "survey", "outputs", "cli"),
    "explain": ("survey", "outputs", "cli"),
    "candidates": ("explain", "crosscheck", "advice", "survey", "outputs", "cli"),
    "crosscheck": ("explain", "advice", "survey", "outputs", "cli"),
    "advice": ("explain", "crosscheck", "survey", "outputs", "cli"),
    "audit": ("explain", "candidates", "crosscheck", "advice", "survey", "outputs", "cli"),
}


def _modules(name: str) -> list[Path]:
    pkg = SRC / name
    return sorted(pkg.rglob("*.py")) if pkg.is_dir() else [SRC / f"{name}.py"]


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names taken, line) of every absolute efihandoff import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
    return [(m, names, line) for m, names, line in out if m.split(".")[0] == "efihandoff"]


def _target(module: str, names: list[str]) -> list[str]:
    """The efihandoff sub-packages/modules an import reaches (``from efihandoff import x``
    reaches ``x``)."""
    parts = module.split(".")
    if len(parts) > 1:
        return [parts[1]]
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_one_way(layer):
    bad = []
    for path in _modules(layer):
        for module, names, line in _imports(path):
            hit = set(_target(module, names)) & set(FORBIDDEN[layer])
            if hit:
                bad.append(f"{path.relative_to(SRC)}:{line} imports {module} {sorted(hit)}")
    assert bad == []


def test_no_private_name_crosses_modules():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        for module, names, line in _imports(path):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    bad.append(f"{path.relative_to(SRC)}:{line} takes {module}.{name}")
    assert bad == []


def _private_attributes(path: Path) -> list[str]:
    """``module._name`` where ``module`` is an efihandoff module this file imported (enum's
    ``_sunder_`` names are the enum's API, not a module's private name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "efihandoff":
                modules |= {a.asname or a.name for a in node.names if a.name[:1].islower()}
        elif isinstance(node, ast.Import):
            modules |= {
                a.asname or a.name.split(".")[0]
                for a in node.names
                if a.name.split(".")[0] == "efihandoff"
            }
    return [
        f"{node.lineno}: {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (node.attr.endswith("_") and len(node.attr) > 2)
    ]


def test_no_private_attribute_of_another_module():
    bad = [
        f"{path.relative_to(SRC)}:{hit}"
        for path in sorted(SRC.rglob("*.py"))
        for hit in _private_attributes(path)
    ]
    assert bad == []


def test_the_checks_see_a_violation(tmp_path):
    """The scan itself: a private name and a reader importing a path are found."""
    f = tmp_path / "m.py"
    f.write_text("from efihandoff.paths.linux import _x, y\nimport efihandoff.paths\n")
    found = _imports(f)
    assert found == [("efihandoff.paths.linux", ["_x", "y"], 1), ("efihandoff.paths", [], 2)]
    assert _target("efihandoff.paths.linux", ["_x"]) == ["paths"]
    assert _target("efihandoff", ["explain"]) == ["explain"]
    g = tmp_path / "g.py"
    g.write_text("from efihandoff.sources import sysfs\nx = sysfs._Tree\ny = sysfs.Tree\n")
    assert _private_attributes(g) == ["2: sysfs._Tree"]
