"""Serving students: start and supervise a real vLLM OpenAI server process."""

from trainer.serving.vllm_process import VLLMServer, VLLMStartError, start_vllm, vllm_command

__all__ = ["VLLMServer", "VLLMStartError", "start_vllm", "vllm_command"]
