"""A dataset root the page can draw random locations from ("a random synthetic location").

Only folders listed once at start-up, with plain uuid names and all four view files,
are offered; a file is served only if its uuid is in that list and its name is one of
the four view files, so no request can name another path. A view must also be a regular
file inside the root, checked at start-up and again on every request (links change): a
link of the file or of its folder that leads out of the root, a FIFO or a link loop is
never opened (:func:`geoguess_utils.data.view_files.view_file_problem`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from geoguess_utils.data.layout import CSV_NAME, HEADINGS, VIEW_FILES
from geoguess_utils.data.reader import find_image_dir, is_safe_uuid, read_data_csv, view_paths
from geoguess_utils.data.view_files import view_file_problem
from geoguess_utils.errors import DataError


class SampleRoot:
    """The locations of one LUMEN dataset root, for the page's random-location button.

    Args:
        root: Dataset root holding ``data/`` or ``images/`` (and optionally ``data.csv``).

    Raises:
        DataError: The root has no image folder or no complete location.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.image_dir = find_image_dir(self.root)
        self.uuids = sorted(
            entry.name
            for entry in self.image_dir.iterdir()
            if is_safe_uuid(entry.name) and all(self._servable(path) for path in view_paths(self.image_dir, entry.name))
        )
        if not self.uuids:
            raise DataError(f"sample root {self.root} has no location with all of {', '.join(VIEW_FILES)}")
        self._known = set(self.uuids)
        self.truth: dict[str, tuple[float, float]] = {}
        csv = self.root / CSV_NAME
        if csv.is_file():
            table = read_data_csv(csv)
            for uuid, lat, lon in zip(table["uuid"], table["latitude"], table["longitude"], strict=True):
                if uuid in self._known and lat == lat and lon == lon:  # NaN != NaN: skip unlabelled rows
                    self.truth[uuid] = (float(lat), float(lon))

    def _servable(self, path: Path) -> bool:
        return view_file_problem(path, self.image_dir) is None and path.is_file()

    def __len__(self) -> int:
        return len(self.uuids)

    def pick(self, rng: random.Random | None = None) -> str:
        """A random uuid of the sample."""
        return (rng or random).choice(self.uuids)

    def view_file(self, uuid: str, heading: int) -> Path:
        """The image file of one view.

        Raises:
            DataError: The uuid is not in the sample, the heading is not one of 0/90/180/270, or
                the file is no longer a regular file inside the root.
        """
        if uuid not in self._known or heading not in HEADINGS:
            raise DataError(f"no view {heading} of location {uuid!r} in the sample")
        path = view_paths(self.image_dir, uuid)[HEADINGS.index(heading)]
        if not self._servable(path):  # changed since start-up: a link out of the root, a FIFO, a loop, gone
            raise DataError(f"no view {heading} of location {uuid!r} in the sample")
        return path
