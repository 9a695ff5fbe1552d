"""Evaluation of the alerts and models on real recordings: what the worker does, judged."""
