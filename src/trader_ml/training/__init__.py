"""Training: labels, the generic loop, the two models' recipes, export, metrics, the gate, the report (needs the train extra)."""
