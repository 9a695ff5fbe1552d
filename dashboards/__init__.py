"""Grafana for ecgmon: the dashboards and alert rules (generated from Python), push, live view, report.

``dashboards.definitions`` is the one source of truth for every InfluxQL query a monitoring
centre sees; ``dashboards.generate`` writes them as Grafana provisioning files under
``dashboards/provisioning/``; tests run every query found in those files against a real InfluxDB.
"""
