"""``--backbone=trinity``: astuner workflows trained by Trinity-RFT 0.6.0 through its public workflow extension point.

``config`` translates the experiment into Trinity's config, ``workflow`` is the adapter Trinity's
workflow runners instantiate by dotted path, ``run`` writes Trinity's inputs and launches
``trinity run --config``. Nothing here subclasses a Trinity trainer or patches Trinity. Importing
this package imports nothing from Trinity.
"""
