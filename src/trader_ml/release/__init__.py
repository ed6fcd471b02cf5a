"""The monthly release: train both models, judge them against baseline and champion, publish."""
