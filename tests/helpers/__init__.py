"""Support code for the tests: toy data, fake caches, media writers, tiny trained models, DDP scripts.

Imported as ``helpers.<module>`` (pytest puts ``tests/`` on ``sys.path``); the two DDP scripts are also
run as files, with ``tests/`` on ``PYTHONPATH``.
"""
