"""`distill demo`: the whole loop (traffic, curate, distill, evaluate, roll out) in one command."""
