"""The gateway (and curation, registry, rollouts) must run without the `train` extra."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["torch", "transformers", "peft", "accelerate", "matplotlib", "sacrebleu", "vllm"]


def test_gateway_imports_without_training_dependencies() -> None:
    code = (
        "import sys\n"
        f"for name in {HEAVY!r}: sys.modules[name] = None  # any import of them now fails\n"
        "import gateway.app, gateway.serve_cli, gateway.rollout.cli, distill_demo.teacher.cli\n"
        "import trainer.registry.registry, trainer.dataset.cli\n"
        "from gateway.cli import main\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
