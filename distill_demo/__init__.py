"""The offline demo and its stand-ins: deterministic teachers in place of a paid API, and the demo.

`distill demo` runs the whole loop (traffic, curate, distill, evaluate, roll out) in one command.
Nothing here is on the product's serving or training path: `gateway` never imports it (except
`distill serve --demo-teacher`, lazily); `trainer` uses only its task for the tiny model.
`heldout/` serves two more tasks (routing, JSON extraction) for bench/heldout.py.
"""
