"""Rollouts: a student takes a route's traffic by shadow and canary steps, gated on live numbers."""
