"""Train the health model alone, as the training guide documents:

    python training/train_health.py --data features.parquet --output models/health.pkl --model-type autoencoder

A thin wrapper over ``trader-ml train-health``; the model is written as ONNX.
"""

import sys

from trader_ml.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-health", *sys.argv[1:]], script="training/train_health.py"))
