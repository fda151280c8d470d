import sys

from sr_keras.cli import main

sys.exit(main())
