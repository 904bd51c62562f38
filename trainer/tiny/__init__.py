"""The tiny local student model: a random-weight Llama and a BPE tokenizer built offline."""

from trainer.tiny.build import TinyModelSpec, build_tiny_model, default_corpus

__all__ = ["TinyModelSpec", "build_tiny_model", "default_corpus"]
