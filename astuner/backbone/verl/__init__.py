"""``--backbone=verl``: astuner workflows trained by verl 0.9.1 through its public agent-loop extension point.

``config`` translates the experiment into verl's Hydra config, ``tasks`` writes tasks as verl rows,
``agent_loop`` is the adapter verl instantiates in its workers, ``run`` launches verl's own trainer.
Nothing here subclasses a verl trainer or patches verl. Importing this package imports nothing from verl.
"""
