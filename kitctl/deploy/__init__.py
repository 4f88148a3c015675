"""Deploy and operate the rendered stack on a Docker engine (local or over SSH).

One concern per module: `compose` reads the supported compose subset,
`order` sorts services by dependency, `hashing` fingerprints a service's
config, `spec` turns a service into Engine API arguments, `state` reads what
runs, `plan` diffs the two into steps, `steps` are the Kamal-style actions,
`runner` executes them health-gated with rollback.
"""
