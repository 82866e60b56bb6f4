"""derm7pt folder -> datalist JSON over the ISIC 2019 classes (same as ``medattn prepare derm7pt``).

Usage: python data_scripts/prepare_derm7pt.py DATASET_DIR OUT_JSON [--image derm|clinic]
       [--diagnosis_map '{"lentigo": None}'] [--check_files]
"""

import sys

from medattn_monai.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "derm7pt", *sys.argv[1:]]))
