"""The streaming pipeline: the Faust app and thin agents, and the plain logic they call.

``app.py`` declares the app, topics and table; ``agents.py`` wires them. Everything that decides
is a plain module that never imports Faust: ``ingress`` (decode or dead-letter), ``preprocess``,
``batching`` (the one bounded inference executor), ``inference``, ``reconstruction_policy``,
``points`` (InfluxDB schema), ``sink`` (async InfluxDB writer), ``health`` and ``pipeline``
(the order of the steps for one window). The alert engine lives in ``alerts``; its RR evidence,
shared with the classifier's record features, in ``ecgmon.rr``.
"""
