import sys

from transcriber.cli import main

sys.exit(main())
