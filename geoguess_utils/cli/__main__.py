"""``python -m geoguess_utils.cli``: the same as the ``geoguess`` command."""

from geoguess_utils.cli import main

raise SystemExit(main())
