"""``python -m engine.emotion train|evaluate|predict`` (see engine/emotion/cli.py)."""
from .cli import main

raise SystemExit(main())
