"""`python -m repo_tools.switch`, which scripts/switch-pattern runs."""

from repo_tools.switch.cli import main

raise SystemExit(main())
