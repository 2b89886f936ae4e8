"""Dataset files for training modules: :mod:`modelops.storage.fetch`, under its old name.

Training modules call ``fetch_data_file(uri, work_dir)`` from their
``load_dataset``; the code lives with the other storage code, which the
fetch-reference init container (``modelops pull-file``) shares.
"""

from modelops.storage.fetch import DataFileNotFoundError, fetch_data_file

__all__ = ["DataFileNotFoundError", "fetch_data_file"]
