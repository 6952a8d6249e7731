"""Sub-commands of the ``geoguess`` command line, one module each."""
