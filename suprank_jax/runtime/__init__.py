"""What the trainer, the evaluation and the index commands share about the process they run in.

* ``parallel``: the device mesh and global batches.
* ``reporting``: log lines, progress, metric files and tables.
* ``cli``: one-line errors and exit statuses of the command lines.
* ``run_dir``: a run's folder (``RunDir``): the layout of its files, its ``config.yaml`` read and written.
"""
