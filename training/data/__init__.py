"""Datasets: generators and readers that turn data into frames + ground-truth boxes."""
