"""Example parsers for fw: ``--tool-call-parser example_xml`` and
``--reasoning-parser example_reasoning``."""
