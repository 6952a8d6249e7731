"""The cell-scheme comparison of notebook 03: the table and the figure."""

from __future__ import annotations

import numpy as np
import pytest

from geoguess_utils.course import schemes
from geoguess_utils.errors import DataError
from geoguess_utils.geo import borders
from geoguess_utils.viz import scheme_maps


def test_comparison_counts_classes_and_floors():
    lat, lon = borders.sample_points(500, np.random.default_rng(0), "mainland")
    contexts = schemes.fit_schemes(lat[:400], lon[:400], ("square", "balanced", "county"))
    table = schemes.compare_schemes(contexts, lat[:400], lon[:400], lat[400:], lon[400:]).set_index("scheme")
    assert list(table.index) == ["square", "balanced", "county"]
    assert table.loc["county", "classes"] == 21
    assert 8 <= table.loc["balanced", "median_per_class"] <= 24 and table.loc["balanced", "max_per_class"] <= 36
    for name, context in contexts.items():
        assert table.loc[name, "classes"] == context.num_classes
        assert context.class_table["n_train"].sum() == 400
    # whole counties are much coarser than a 0.3-degree grid
    assert table.loc["county", "floor_held_out_km"] > 1.5 * table.loc["square", "floor_held_out_km"]
    assert (table["floor_train_km"] > 0).all()
    figure = scheme_maps.plot_schemes(contexts, lat[:400], lon[:400])
    assert len(figure.axes) == 3 and figure.axes[2].get_title() == "county: 21 classes"
    with pytest.raises(DataError, match="at least one"):
        schemes.fit_schemes(lat, lon, ())
