"""Student base models built offline: the real SmolLM2-135M-Instruct and the tiny stand-in."""
