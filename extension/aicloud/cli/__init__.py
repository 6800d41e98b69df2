"""The ``aicloud`` command line: for terminals, scripts and papermill batch runs."""
