"""Run scaler from a checkout: `python cli.py flops b4` is `scaler flops b4`."""

from scaler.entry import run

if __name__ == "__main__":
    run()
