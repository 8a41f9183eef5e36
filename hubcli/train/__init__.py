"""The training side: datasets, splits, the feature cache, the head and the training core."""
