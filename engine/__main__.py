"""``python -m engine ...`` (see engine/cli/)."""

from .cli import main
from .cli.common import exit_process

exit_process(main())
