#!/usr/bin/env python3
"""Rewrite hard-coded build-machine include dirs in the ROS 2 wheels' CMake export files.

WHY: the PyPI ROS 2 wheels were built under ``/opt/python/cp311-cp311`` and their
``share/*/cmake/export_*__rosidl_generator_pyExport.cmake`` files list that prefix's Python and
numpy include dirs in INTERFACE_INCLUDE_DIRECTORIES. CMake refuses to configure a package that
depends on them ("includes non-existent path"). We point them at this interpreter's own include
dir and ``numpy.get_include()``. Idempotent: files already patched are left untouched.

Run with the venv's python:  .venv/bin/python scripts/patch_ros_cmake_exports.py [--prefix DIR]
"""
from __future__ import annotations

import argparse
import re
import sys
import sysconfig
from pathlib import Path

_LINE = re.compile(r'(INTERFACE_INCLUDE_DIRECTORIES\s+")([^"]*)(")')


def _fix_dirs(value: str, py_inc: str, np_inc: str) -> str:
    """Replace any foreign python3.x include dir and foreign numpy include dir, keep the rest."""
    out = []
    for item in value.split(';'):
        if item.endswith('/numpy/_core/include') or item.endswith('/numpy/core/include'):
            item = np_inc
        elif re.search(r'/include/python3\.\d+$', item) and not Path(item).is_dir():
            item = py_inc
        if item not in out:
            out.append(item)
    return ';'.join(out)


def patch(prefix: Path) -> tuple[int, int]:
    """Patch all export files below ``prefix/share``; return (files seen, files changed)."""
    import numpy  # imported here so --help works without numpy

    py_inc = sysconfig.get_paths()['include']
    np_inc = numpy.get_include()
    seen = changed = 0
    for f in sorted(prefix.glob('share/*/cmake/export_*__rosidl_generator_pyExport*.cmake')):
        seen += 1
        text = f.read_text()
        new = _LINE.sub(lambda m: m.group(1) + _fix_dirs(m.group(2), py_inc, np_inc) + m.group(3), text)
        if new != text:
            f.write_text(new)
            changed += 1
    return seen, changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--prefix', type=Path, default=Path(sys.prefix),
                    help='install prefix holding share/*/cmake (default: this venv, %(default)s)')
    args = ap.parse_args(argv)
    py_inc = Path(sysconfig.get_paths()['include'])
    if not (py_inc / 'Python.h').is_file():
        print(f'error: {py_inc}/Python.h missing: install the Python development headers '
              '(Debian: python3-dev)', file=sys.stderr)
        return 2
    seen, changed = patch(args.prefix)
    if seen == 0:
        print(f'error: no rosidl_generator_py export files under {args.prefix}/share: '
              'are the ros-kilted-* wheels installed?', file=sys.stderr)
        return 2
    print(f'patched {changed} of {seen} ROS cmake export files')
    return 0


if __name__ == '__main__':
    sys.exit(main())
