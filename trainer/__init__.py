"""Distill trainer: curate logged traffic, distill LoRA adapters, evaluate and register them."""
