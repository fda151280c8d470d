"""`sr-keras` command line: one module per subcommand, each with `add_parser` and `run`."""

import argparse
import importlib
import sys

# subcommand name -> module under sr_keras.cli
SUBCOMMANDS = {
    "import-pirm": "import_pirm",
    "evaluate": "evaluate",
    "upscale": "upscale",
    "export": "export",
    "models": "models",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sr-keras",
        description="Perception-distortion controllable super-resolution (G-MGBP) in Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        mod = importlib.import_module(f"sr_keras.cli.{module}")
        p = mod.add_parser(sub, name)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args._run(args) or 0


if __name__ == "__main__":
    sys.exit(main())
