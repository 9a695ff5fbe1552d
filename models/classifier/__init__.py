"""Rhythm classifiers (teacher, student, baseline); importing this package registers their builders."""

from models.classifier import builders as builders

__all__ = ["builders"]
