"""`python -m trainer.training` = `distill train`, so accelerate/torchrun can launch it with -m."""

from trainer.training.cli import train

if __name__ == "__main__":
    train(prog_name="python -m trainer.training")
