"""Characterization in ngspice and fitted behavioural models (Binas et al. 2016: measure, fit, train).

| module | what |
|---|---|
| `families` | behavioural model families per primitive kind (`FAMILIES`), vectorized `predict` |
| `benches` | the characterized design of each kind, its sweep and held-out points, one chip's deck |
| `mismatch` | device errors for op-amp and crossbar blocks (resistors, capacitors, NPNs, offsets, PCM) |
| `sweeps` | nominal + Monte Carlo jobs (seeded per instance) and running them with resume |
| `store` | npz results with provenance, one file per chip; resume and mismatch checks |
| `fit` | `least_squares` per chip, population mean/covariance, held-out fidelity, model JSON |
| `cli_hooks` | `characterize(...)` and `fit(...)` for the CLI, and their text summaries |

Regenerate the shipped models: ``kelvin characterize --all -o out/char && kelvin fit out/char -o models/fits``.
"""
