"""The technician's console (``ecgmon console``): triage, act on and escalate alerts, in a browser.

``state`` folds alert events and actions (pure), ``bus`` reads and writes Kafka and InfluxDB,
``auth`` holds users, roles, sessions and CSRF, ``escalation`` the notification criteria and the
webhook, ``strip`` the InfluxDB reads and SVG drawing, ``app`` the pages, ``server`` runs it.
Workflow and screenshots: docs/console.md.
"""
