import sys

from astuner.logview.cli import main

sys.exit(main())
