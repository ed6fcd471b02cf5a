"""The served models' live record: their stored answers scored against what happened, and input drift."""
