"""Write the synthetic demo datasets (same as ``medattn demo-data``).

Usage: python data_scripts/make_demo_data.py [--out_dir demo_data] [--seed 0] [--datasets isic2019,camelyon17,derm7pt]
       [--shuffle_labels] [--artefact_class NV] [--artefact_rate 0.9] [--artefact_noise_rate 0.05]
       [--artefact_eval_rate 0.3]
"""

import sys

from medattn_monai.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo-data", *sys.argv[1:]]))
