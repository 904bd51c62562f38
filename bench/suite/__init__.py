"""The performance suite: every figure of issue 10 measured side by side in one run."""
