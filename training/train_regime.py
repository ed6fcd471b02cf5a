"""Train the regime model alone, as the training guide documents:

    python training/train_regime.py --data context.parquet --output models/regime.pkl --model-type gru

A thin wrapper over ``trader-ml train-regime``; the model is written as ONNX.
"""

import sys

from trader_ml.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-regime", *sys.argv[1:]], script="training/train_regime.py"))
