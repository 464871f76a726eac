"""The fault harness of the crash tests (issue 16): run a real command with a planned fault, check the
invariants after every kill, restart it until it finishes, and prove that every planned site was reached.

`faults.harness` runs the processes; `faults.invariants` holds the checks of a training run's `model_dir`,
an export root and a search's `project_dir`. Test modules import them as `from faults.harness import ...`
(pytest puts `tests/` on `sys.path`).
"""
