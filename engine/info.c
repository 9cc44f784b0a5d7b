/*
 * info.c — a short human summary of a run's HDF5 file: root attributes, each
 * table with its row count, time span and columns, and /summary metrics.
 * Read-only; it relies only on the documented layout (docs/output.md).
 */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include "spiral/error.h"
#include "info.h"

static void print_attr(hid_t obj, const char *name, FILE *out, const char *label)
{
    if (H5Aexists(obj, name) <= 0) return;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ty = H5Aget_type(a);
    fprintf(out, "  %-14s ", label ? label : name);
    if (H5Tget_class(ty) == H5T_STRING) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5T_CSET_UTF8);
        char *s = NULL;
        if (H5Tis_variable_str(ty) > 0 && H5Aread(a, mt, &s) >= 0 && s) {
            fprintf(out, "%s\n", s);
            H5free_memory(s);
        } else {
            fprintf(out, "?\n");
        }
        H5Tclose(mt);
    } else if (H5Tget_class(ty) == H5T_INTEGER) {
        long long v = 0;
        H5Aread(a, H5T_NATIVE_LLONG, &v);
        fprintf(out, "%lld\n", v);
    } else {
        double v = 0;
        H5Aread(a, H5T_NATIVE_DOUBLE, &v);
        fprintf(out, "%.10g\n", v);
    }
    H5Tclose(ty);
    H5Aclose(a);
}

struct visit {
    FILE *out;
    hid_t file;
};

static hsize_t dataset_len(hid_t ds)
{
    hid_t sp = H5Dget_space(ds);
    hsize_t n = 0;
    if (H5Sget_simple_extent_ndims(sp) == 1) H5Sget_simple_extent_dims(sp, &n, NULL);
    H5Sclose(sp);
    return n;
}

static herr_t on_link(hid_t g, const char *name, const H5L_info_t *info, void *arg)
{
    struct visit *v = arg;
    (void)info;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET)
        return 0;
    fprintf(v->out, " %s", name);
    return 0;
}

static herr_t on_object(hid_t root, const char *name, const H5O_info_t *info, void *arg)
{
    struct visit *v = arg;
    if (info->type != H5O_TYPE_GROUP || !strcmp(name, ".")) return 0;
    hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
    if (g < 0) return 0;
    /* A table's index column: its time `t`, an auction's `t_start`, or `id`. */
    const char *first = H5Lexists(g, "t", H5P_DEFAULT) > 0         ? "t"
                        : H5Lexists(g, "t_start", H5P_DEFAULT) > 0 ? "t_start"
                        : H5Lexists(g, "id", H5P_DEFAULT) > 0      ? "id"
                                                                   : NULL;
    if (first) {
        hid_t ds = H5Dopen2(g, first, H5P_DEFAULT);
        hsize_t n = dataset_len(ds);
        fprintf(v->out, "  /%-32s %10llu rows", name, (unsigned long long)n);
        if (n > 0 && strcmp(first, "id")) {
            double t0 = 0, t1 = 0;
            hid_t sp = H5Dget_space(ds), ms = H5Screate_simple(1, (hsize_t[]){ 1 }, NULL);
            hsize_t off = 0, cnt = 1;
            H5Sselect_hyperslab(sp, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
            H5Dread(ds, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, &t0);
            off = n - 1;
            H5Sselect_hyperslab(sp, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
            H5Dread(ds, H5T_NATIVE_DOUBLE, ms, sp, H5P_DEFAULT, &t1);
            H5Sclose(ms);
            H5Sclose(sp);
            fprintf(v->out, "  %s %.6g .. %.6g s", first, t0, t1);
        }
        H5Dclose(ds);
        fprintf(v->out, "\n    columns:");
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, on_link, v);
        fprintf(v->out, "\n");
    }
    H5Gclose(g);
    return 0;
}

static herr_t on_summary_attr(hid_t loc, const char *name, const H5A_info_t *ai, void *arg)
{
    (void)ai;
    print_attr(loc, name, arg, NULL);
    return 0;
}

int sp_info_print(const char *path, FILE *out, FILE *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(path) <= 0) {
        fprintf(err, "spiral info: '%s' is not a readable HDF5 file\n", path);
        return SP_EIO;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(err, "spiral info: cannot open '%s'\n", path);
        return SP_EIO;
    }
    fprintf(out, "%s\n", path);
    static const char *const root_attrs[] = {
        "status", "name", "scenario", "seed", "software", "created_utc", "command_line",
        "horizon", "t_end", "n_events", "wall_seconds",
    };
    for (size_t i = 0; i < sizeof root_attrs / sizeof root_attrs[0]; i++)
        print_attr(f, root_attrs[i], out, NULL);
    fprintf(out, "tables:\n");
    struct visit v = { out, f };
    H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, on_object, &v);
    if (H5Lexists(f, "summary", H5P_DEFAULT) > 0) {
        fprintf(out, "summary:\n");
        hid_t g = H5Gopen2(f, "summary", H5P_DEFAULT);
        H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, NULL, on_summary_attr, out);
        H5Gclose(g);
    }
    H5Fclose(f);
    return SP_OK;
}
