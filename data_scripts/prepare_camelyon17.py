"""Camelyon17-WILDS v1.0 folder -> datalist JSON (same as ``medattn prepare camelyon17``).

Usage: python data_scripts/prepare_camelyon17.py DATASET_DIR OUT_JSON [--test_ratio 0.15] [--seed 0]
       [--max_samples_per_split N] [--check_files]
"""

import sys

from medattn_monai.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "camelyon17", *sys.argv[1:]]))
