"""The template's rules as modules, imported by the hooks, scripts/bake.py and the tests alike.

- `answers`: every answer's checks (`RULES`), what the pre-gen hook and scripts/bake refuse;
- `files`: the conditional files (`KEEP_WHEN`), which the post-gen hook prunes, the tests expect and
  scripts/patterns.json (the switch tool's manifest) is written from;
- `jinja`: the Jinja extension cookiecutter loads (`tojson`, `template_root`).

The pattern facts themselves are data in cookiecutter.json (`_patterns`), read under the same names by the templates
(templates/pattern.j2), `files.manifest` and the generated switch tool.
"""
