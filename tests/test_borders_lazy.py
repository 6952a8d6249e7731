import subprocess
import sys


def test_importing_the_package_reads_nothing():
    code = (
        "import sys; import geoguess_utils.cells.square, geoguess_utils.cells.context;"
        "from geoguess_utils.geo import borders, distance, projection;"
        "assert borders.croatia.cache_info().currsize == 0;"
        "assert 'geopandas' not in sys.modules, 'geopandas imported at import time';"
        "assert 'torch' not in sys.modules, 'torch imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
