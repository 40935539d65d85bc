"""`python -m scaler`: the command line where the console script is not installed (a
checkout run in place, as on a machine without network)."""

from scaler.entry import run

run()
