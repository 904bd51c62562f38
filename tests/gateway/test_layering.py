"""`gateway` never imports `trainer` (the gateway image ships without it; trainer may import
gateway). Checked on the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

GATEWAY = Path(gateway.__file__).parent


def trainer_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n == "trainer" or n.startswith("trainer.")]
    return found


def test_the_check_sees_every_import_form() -> None:
    code = (
        "import trainer\nfrom trainer.registry import x\n"
        "def f():\n    import trainer.dataset.query as q\n"
        "import trainerx\nfrom gateway import trainer_like\n"
    )
    assert trainer_imports(code) == ["trainer", "trainer.registry", "trainer.dataset.query"]


def test_no_gateway_module_imports_trainer() -> None:
    offenders = {
        str(path.relative_to(GATEWAY.parent)): found
        for path in sorted(GATEWAY.rglob("*.py"))
        if (found := trainer_imports(path.read_text()))
    }
    assert offenders == {}
