#!/usr/bin/env python3
"""Copies a tlsweep results file as a tlsweep of results schema 1 wrote it: /curves without
the data_wait_s and computed_by columns, /trials without phase1_trial, the schema attribute
"tlsweep-results-1". The resume and plot tests
check that such a file is still read, resumed and drawn.

usage: make_schema1.py NEW.h5 OLD.h5"""
import sys

import h5py
import numpy as np
from numpy.lib import recfunctions


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with h5py.File(src, "r", libver="latest", swmr=True) as f, \
            h5py.File(dst, "w", libver="latest") as g:
        # fixed-length strings, as tlsweep writes and reads them (h5py's str would be variable)
        for key in f.attrs:
            g.attrs.create(key, f.attrs[key], dtype=f.attrs.get_id(key).dtype)
        g.attrs["schema"] = np.bytes_(b"tlsweep-results-1")
        for table in ("trials", "curves", "lr"):
            rows = f[table][:]
            if table == "curves":
                rows = recfunctions.drop_fields(rows, ["data_wait_s", "computed_by"], usemask=False)
            if table == "trials":
                rows = recfunctions.drop_fields(rows, "phase1_trial", usemask=False)
            g.create_dataset(table, data=rows, maxshape=(None,), chunks=(64,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
