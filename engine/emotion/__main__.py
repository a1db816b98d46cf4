"""``python -m engine.emotion train|evaluate|predict|average`` (see engine/emotion/cli.py)."""

from ..cli.common import exit_process
from .cli import main

exit_process(main())
