"""`python -m broker_local`: run the broker locally (see runner.py).

`make dev` puts the layer on PYTHONPATH; run directly (`.venv/bin/python -m broker_local --help`), the
layer is found next to this package instead, so both ways work.
"""

import sys
from importlib.util import find_spec
from pathlib import Path

if find_spec("zoho_broker") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "layers" / "broker"))

from broker_local.runner import main

main()
