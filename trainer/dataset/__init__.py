"""Curate logged gateway traffic into a fine-tuning dataset (`distill dataset build`)."""
