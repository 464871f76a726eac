"""Input pipelines: tf.data sources (TFDS, image folders and archives, TFRecord shards) and the paper's augmentation."""
