"""`python -m repo_tools.setup`, which scripts/setup-environments runs."""

from repo_tools.setup.cli import main

raise SystemExit(main())
