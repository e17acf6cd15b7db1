"""The engine worker (``manage.py runengine``): feeds → core → store → bridge, one way.

``engine`` follows the desired state and runs the feed's bars through the core,
``config`` reads what a run uses, ``publish`` and ``bridge`` carry the stored events up to
Daphne, ``lock`` keeps it to one worker per database. See docs/architecture.md.
"""
