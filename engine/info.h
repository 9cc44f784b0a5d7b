/*
 * info.h — `spiral info FILE.h5`: a short human summary of a run.
 */
#ifndef SPIRAL_INFO_H
#define SPIRAL_INFO_H

#include <stdio.h>

/* Print the summary of `path` to out; errors to err.  Returns 0, or
 * SP_EIO when the file cannot be opened as an HDF5 file. */
int sp_info_print(const char *path, FILE *out, FILE *err);

#endif
