"""The data sets' readers, one module per data set (or family of data sets sharing a layout).

Every reader has the signature ``reader(data_dir, split, **kwargs) -> sources.Source`` and is named
in ``datasets.DATASETS``; its module holds the on-disk layout it expects (``*_LAYOUT``), quoted in the
error that a missing file raises.

* ``digits``: the embedded 8x8 digits (the default data set, no download).
* ``sop``, ``cub``, ``cars``, ``inshop``: Stanford Online Products, CUB-200-2011, Cars196, In-Shop.
* ``inaturalist``: iNaturalist 2018 (retrieval splits, taxonomy levels).
* ``dyml``: DyML-Vehicle, -Animal and -Product.
* ``gldv2``: Google Landmarks v2 (clean, or with the hierarchical labels).
* ``sfm120k``: retrieval-SfM-120k.
* ``revisited``: Revisited Oxford and Paris, their 1M distractors, and the evaluation's folder of them.
* ``tfds_format``: any of these once converted (``to_array_record.py``), or an official TFDS data set
  (``config.input.source_format = 'tfds'``).
* ``common``: what the raw-folder readers share (file checks, split names, text rows, joint labels).
"""
