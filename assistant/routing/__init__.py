"""Routing: deciding between answering and handing the driver to a human."""
