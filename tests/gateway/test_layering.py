"""`gateway` never imports `trainer` (the gateway image ships without it; trainer may import
gateway). Checked on the source, so an import inside a function counts too."""

from __future__ import annotations

from pathlib import Path

import gateway
from tests.fixtures.imports import imported_modules

GATEWAY = Path(gateway.__file__).parent


def trainer_imports(source: str) -> list[str]:
    return [n for n in imported_modules(source) if n == "trainer" or n.startswith("trainer.")]


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
