"""Convert a Camelyon17-WILDS v1.0 folder into a datalist JSON: the same as `medattn prepare camelyon17 DATASET_DIR OUT_JSON`.

Usage: python data_scripts/prepare_camelyon17.py DATASET_DIR OUT_JSON [--check_files] [--help]
"""

import sys

from medattn_monai.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "camelyon17", *sys.argv[1:]]))
