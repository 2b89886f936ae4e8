"""The wake activator: holds requests for models at zero and wakes them (activator.py)."""
