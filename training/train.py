"""Train both models and register them, as the training guide documents:

    python training/train.py --bucket investment-system-data --region us-east-1
    python training/train.py --bucket investment-system-data --skip-upload

A thin wrapper over ``trader-ml train`` with the guide's defaults: the store is
s3://investment-system-data in us-east-1 unless --bucket, --store or --region say otherwise.
"""

import sys

from trader_ml.cli import main

if __name__ == "__main__":
    defaults = {"bucket": "investment-system-data", "region": "us-east-1"}
    sys.exit(main(["train", *sys.argv[1:]], script="training/train.py", defaults=defaults))
