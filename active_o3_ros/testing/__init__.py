"""Tiny, randomly initialised real models for tests, demos and benchmarks (no downloads).

They exercise the same loading code as real checkpoints (``from_pretrained``, state-dict
files) with the real model classes.  Runtime code (core, backends, ros) never imports this
package; tests check that.
"""
