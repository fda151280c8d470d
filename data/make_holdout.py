"""Copy the images `--val_holdout=COUNT --val_holdout_from=SOURCE` holds out into a folder for `sr-keras evaluate`.

    python data/make_holdout.py SOURCE COUNT OUTPUT_DIR
    sr-keras evaluate --dataset OUTPUT_DIR --scale 4 ...   # LR made with MATLAB-exact bicubic imresize

The same selection as training's (sr_keras.data.holdout), so checkpoints and settings are scored on
exactly the images the run never trained on.
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sr_keras.data.holdout import held_out_files  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    source, count, output = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(output, exist_ok=True)
    for path in held_out_files(source, count):
        shutil.copyfile(path, os.path.join(output, os.path.basename(path)))
    print(f"{count} held-out images of {source} in {output}")
