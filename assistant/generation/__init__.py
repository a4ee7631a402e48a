"""Generation: turning retrieved passages into the driver-facing answer."""
