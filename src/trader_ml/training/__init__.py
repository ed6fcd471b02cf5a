"""Training: one generic loop, the two models' recipes, the orchestrator (needs the train extra)."""
