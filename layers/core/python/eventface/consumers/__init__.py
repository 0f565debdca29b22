"""Event consumers: the logic behind the Lambda handlers in ``functions/<consumer>/handler.py``."""
