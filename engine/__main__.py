"""``python -m engine ...`` (see engine/cli/)."""
from .cli import exit_process
from .cli import main

exit_process(main())
