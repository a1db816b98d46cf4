"""``python -m engine.emotion train|evaluate|predict|average`` (see engine/emotion/cli.py)."""
from ..cli import exit_process
from .cli import main

exit_process(main())
