"""``python -m runtime.batch ...``: the same as ``au-edge batch``."""
import sys

from runtime.batch.command import main

sys.exit(main(prog="python -m runtime.batch"))
