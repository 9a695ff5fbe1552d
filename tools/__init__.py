"""The top layer: the ecgmon command line and everything that joins several packages.

The worker lives in ``streams``, the models in ``models``, the simulators in ``simulators``,
the dashboards in ``dashboards`` and the core they all share in ``ecgmon``. What ties them
together lives here: the command line (``tools.cli``), the demo, soak and chaos runs, the
benchmark (``tools.bench``) and the evaluation of alerts and models on real recordings
(``tools.evaluation``).
"""
