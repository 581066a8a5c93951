"""The tools of this repository, behind scripts/setup-environments and scripts/switch-pattern.

- `project`: the one reader of the project's configuration (bundle, workflows, scripts/patterns.json);
- `shell`: the `databricks bundle` commands of a workflow step, read as bash reads the script;
- `dependencies`: the versions this interpreter has against those the project asks for;
- `setup/`: plan, apply and check what CI needs outside the repository (docs/setup.md);
- `switch/`: switch the deployment pattern through the template, and check it (docs/switching-patterns.md).
"""
