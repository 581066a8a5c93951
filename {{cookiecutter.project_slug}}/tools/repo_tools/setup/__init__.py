"""Set up, and check, everything CI needs outside this repository: service principals, their workspaces,
OIDC federation policies or OAuth secrets, catalogs and the grants the bundle does not make itself, GitHub
Environments with their variables, secrets, branch rules and reviewers, and the required checks.

    scripts/setup-environments plan --offline   # the desired state; no credentials, no network
    scripts/setup-environments plan             # the same, compared with what exists
    scripts/setup-environments apply            # create what is missing, fix what differs; never deletes
    scripts/setup-environments check            # read-only; exits 1 naming each missing or wrong piece

The desired state is read from the project itself: the bundle (databricks.yml, targets/, resources/) for
workspaces, catalogs, principals and grants; .github/workflows/ for the Environments, what their jobs read
and which target each deploys; tools/setup-environments.toml for the repository, branches and reviewers.
Databricks calls go through databricks-sdk; GitHub calls through its REST API (token from GH_TOKEN,
GITHUB_TOKEN or `gh auth token`; GITHUB_API_URL for GitHub Enterprise Server). docs/setup.md has the roles
each side needs.
"""
