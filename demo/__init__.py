"""The demo: a local HQ, its registry and one branded sub-site on this machine.

Used by `make demo` (through `python -m demo up`) and by the
top-level end-to-end test, so the demo a person runs is the loop CI proves.
Everything listens on 127.0.0.1 only.
"""
