"""Imported at start-up by every Python subprocess the test suite starts.

``tests/conftest.py`` puts this folder and the repository on ``PYTHONPATH`` and
names a drift file in ``RTK_SCHEMA_DRIFT_FILE``; emulators started in such a
subprocess then check their answers against the schema like those in the test
process (see ``tests/_schema_check.py``). Anywhere else it does nothing.
"""

import os

_path = os.environ.get("RTK_SCHEMA_DRIFT_FILE")
if _path:
    try:
        from tests._schema_check import install_in_subprocess
    except ImportError:  # a process without the project (an isolated build env)
        pass
    else:
        install_in_subprocess(_path)
