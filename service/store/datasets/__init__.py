"""Redis records of datasets: file records and reports (`files`), and the
reference-counted upstream copies (`copies`)."""
