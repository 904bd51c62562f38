"""The review console: traffic, comparisons, corrections, datasets and rollouts under /ui/."""
