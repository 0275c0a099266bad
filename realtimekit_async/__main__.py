"""``python -m realtimekit_async`` runs the ``realtimekit`` command line."""

from ._cli import main

raise SystemExit(main())
