"""`python -m sr_keras.data IMAGES... --output PATTERN --shards N`: pack images into TFRecord shards."""

import sys

from sr_keras.data.tfrecords import main

sys.exit(main())
