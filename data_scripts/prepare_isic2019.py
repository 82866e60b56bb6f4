"""ISIC 2019 training folder -> datalist JSON (same as ``medattn prepare isic2019``).

Usage: python data_scripts/prepare_isic2019.py DATASET_DIR OUT_JSON [--val_ratio 0.15] [--test_ratio 0.15] [--seed 0]
       [--annotations CSV] [--check_files] [--allow_missing_metadata]
"""

import sys

from medattn_monai.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "isic2019", *sys.argv[1:]]))
