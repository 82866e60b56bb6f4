"""Convert a derm7pt release_v0 folder into a datalist JSON: the same as `medattn prepare derm7pt DATASET_DIR OUT_JSON`.

Usage: python data_scripts/prepare_derm7pt.py DATASET_DIR OUT_JSON [--check_files] [--help]
"""

import sys

from medattn_monai.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "derm7pt", *sys.argv[1:]]))
