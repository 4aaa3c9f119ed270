"""The ``mlsel`` command line: parse, call the packages, render with Rich. Nothing else."""
