"""The ``ferbench`` command: thin wrappers that parse arguments, call the library and print.

:mod:`.common` holds the typer app, the one place that turns a user's mistake into one line
(``error: ...``, exit status 2) and the option parsing the commands share; the commands live in
:mod:`.data` (synth, validate, inspect, protocols), :mod:`.train` (run, plan, models, speed) and
:mod:`.outputs` (leaderboard, results, evaluate, export, predict).
"""

from ferbench.cli import data, outputs, train  # noqa: F401  (importing registers the commands)
from ferbench.cli.common import app

__all__ = ["app"]

if __name__ == "__main__":
    app()
