"""`python -m broker_cli`: the same as the `broker` command."""

from broker_cli.main import main

raise SystemExit(main())
