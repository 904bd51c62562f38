"""Evaluate a distilled adapter against the teacher's held-out answers."""
