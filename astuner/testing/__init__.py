"""Tools to test agents and astuner itself under faults (see ``astuner.testing.faults``)."""
