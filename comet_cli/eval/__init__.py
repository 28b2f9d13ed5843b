"""Evaluation on long-document sets: tasks (loaders), metrics, and scoring."""
