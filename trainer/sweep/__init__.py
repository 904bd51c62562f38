"""One-parameter-at-a-time sweeps and data-size ablations over LoRA distillation runs."""
