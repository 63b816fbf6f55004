"""``python -m au_edge_cli COMMAND ...``: the same as the ``au-edge`` console script."""
import sys

from au_edge_cli import main

sys.exit(main())
