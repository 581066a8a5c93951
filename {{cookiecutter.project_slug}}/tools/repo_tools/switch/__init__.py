"""scripts/switch-pattern: `check` proves a repository is consistently one pattern, `update` runs the switch
through cruft with the pinned tools, `cli` is the command."""
