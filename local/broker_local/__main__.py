"""`python -m broker_local`: run the broker locally (see runner.py)."""

from broker_local.runner import main

main()
