"""`python -m repo_tools.setup`, which scripts/setup-environments runs."""

import os
import sys

from repo_tools.setup.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # The reader left early (`plan --offline | head`): stop quietly, with the status of a shell tool killed by
    # SIGPIPE. Python would otherwise print a traceback, and another one when it flushes stdout at exit.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 128 + 13
raise SystemExit(code)
