"""A fuzzing harness for efihandoff: a target per reader and per output, seeded mutators of the
repository's valid inputs, resource limits per case, minimal reproducers per distinct escape.

Run ``python -m fuzz --help`` from the repository root; ``fuzz/README.md`` says more."""
