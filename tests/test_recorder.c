/*
 * test_recorder.c — the HDF5 recorder (spiral/recorder.h), checked by reading
 * the files back with the HDF5 C API: exact round trips across chunk
 * boundaries for every column type, the DESIGN §3 attributes (units,
 * long_name, CF flags, status), dimension scales, text datasets, attribute
 * overwrite, failure paths (unwritable path, sticky errors, a full disk
 * simulated with RLIMIT_FSIZE) and the flat-memory bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spiral/error.h"
#include "spiral/recorder.h"

#define TMP(name) SP_BINARY_DIR "/test_recorder_" name ".h5"

/* ---- read-back helpers -------------------------------------------------- */

static hid_t open_ro(const char *path)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

/* Close the test's file and check nothing of it (or the recorder) is open. */
static void close_ro(hid_t f)
{
    assert_int_equal(H5Fget_obj_count(f, H5F_OBJ_ALL), 1);
    assert_true(H5Fclose(f) >= 0);
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Read a variable-length UTF-8 string attribute into a malloc'd string. */
static char *attr_str(hid_t loc, const char *obj, const char *name)
{
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t ft = H5Aget_type(a);
    assert_int_equal(H5Tget_class(ft), H5T_STRING);
    assert_true(H5Tis_variable_str(ft) > 0);
    assert_int_equal(H5Tget_cset(ft), H5T_CSET_UTF8);
    hid_t space = H5Aget_space(a);
    assert_int_equal(H5Sget_simple_extent_type(space), H5S_SCALAR);
    char *v = NULL;
    assert_true(H5Aread(a, ft, &v) >= 0);
    assert_non_null(v);
    char *copy = strdup(v);
    H5free_memory(v);
    H5Sclose(space);
    H5Tclose(ft);
    H5Aclose(a);
    return copy;
}

static void assert_attr_str(hid_t loc, const char *obj, const char *name, const char *want)
{
    char *v = attr_str(loc, obj, name);
    assert_string_equal(v, want);
    free(v);
}

static char *read_status(const char *path)
{
    hid_t f = open_ro(path);
    char *s = attr_str(f, "/", "status");
    close_ro(f);
    return s;
}

static double attr_f64(hid_t loc, const char *obj, const char *name)
{
    double v = 0;
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t ft = H5Aget_type(a);
    assert_true(H5Tequal(ft, H5T_IEEE_F64LE) > 0);
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Tclose(ft);
    H5Aclose(a);
    return v;
}

static int64_t attr_i64(hid_t loc, const char *obj, const char *name)
{
    int64_t v = 0;
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t ft = H5Aget_type(a);
    assert_true(H5Tequal(ft, H5T_STD_I64LE) > 0);
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Tclose(ft);
    H5Aclose(a);
    return v;
}

/* Read the 1-D dataset `path` as `mtype` into a malloc'd array; *n = length. */
static void *read_col(hid_t f, const char *path, hid_t want_ftype, hid_t mtype, size_t elem,
                      size_t *n)
{
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t ft = H5Dget_type(ds);
    assert_true(H5Tequal(ft, want_ftype) > 0);
    hid_t space = H5Dget_space(ds);
    assert_int_equal(H5Sget_simple_extent_ndims(space), 1);
    hsize_t dim, maxdim;
    H5Sget_simple_extent_dims(space, &dim, &maxdim);
    assert_true(maxdim == H5S_UNLIMITED);
    *n = (size_t)dim;
    void *buf = malloc(dim ? dim * elem : 1);
    assert_non_null(buf);
    if (dim)
        assert_true(H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    H5Sclose(space);
    H5Tclose(ft);
    H5Dclose(ds);
    return buf;
}

/* Chunk length and whether shuffle+deflate are on for dataset `path`. */
static void col_layout(hid_t f, const char *path, hsize_t *chunk, int *shuffle, int *deflate)
{
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t dcpl = H5Dget_create_plist(ds);
    assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
    assert_int_equal(H5Pget_chunk(dcpl, 1, chunk), 1);
    *shuffle = *deflate = 0;
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags;
        size_t nelem = 0;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, 0, NULL,
                                         NULL);
        if (id == H5Z_FILTER_SHUFFLE)
            *shuffle = 1;
        if (id == H5Z_FILTER_DEFLATE)
            *deflate = 1;
    }
    H5Pclose(dcpl);
    H5Dclose(ds);
}

/* ---- a table with every column type --------------------------------------- */

static const char *const SIDES[] = { "buy", "sell", "no trade", NULL };

static const struct sp_rec_col ALL_COLS[] = {
    { "t",      SP_REC_F64, "s",   "simulated time", NULL },
    { "big",    SP_REC_I64, "1",   "64-bit value",   NULL },
    { "mid",    SP_REC_I32, "1",   "32-bit value",   NULL },
    { "small",  SP_REC_I16, "1",   "16-bit value",   NULL },
    { "side",   SP_REC_I8,  "1",   "trade side",     SIDES },
    { "price",  SP_REC_F64, "USD", "price",          NULL },
};
#define N_ALL (sizeof ALL_COLS / sizeof ALL_COLS[0])

/* Row i's values: distinct per row, covering each type's extremes and signs. */
static void all_row(uint64_t i, union sp_rec_val row[N_ALL])
{
    row[0].f = (double)i * 0.25;
    row[1].i = i % 7 == 0 ? INT64_MIN + (int64_t)i : INT64_MAX - (int64_t)i * 977;
    row[2].i = i % 5 == 0 ? INT32_MIN : (int32_t)(i * 2654435761u) ;
    row[3].i = (int16_t)(i % 3 == 0 ? INT16_MAX - (int64_t)(i % 1000) : -(int64_t)(i % 30000));
    row[4].i = (int64_t)(i % 3);
    row[5].f = i % 11 == 0 ? -1e300 / (double)(i + 1) : 1.0 / 3.0 + (double)i;
}

static void check_all_cols(hid_t f, const char *group, uint64_t rows)
{
    char p[256];
    size_t n;
    union sp_rec_val want[N_ALL];

    snprintf(p, sizeof p, "%s/t", group);
    double *t = read_col(f, p, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sizeof(double), &n);
    assert_int_equal(n, rows);
    snprintf(p, sizeof p, "%s/big", group);
    int64_t *big = read_col(f, p, H5T_STD_I64LE, H5T_NATIVE_INT64, sizeof(int64_t), &n);
    assert_int_equal(n, rows);
    snprintf(p, sizeof p, "%s/mid", group);
    int32_t *mid = read_col(f, p, H5T_STD_I32LE, H5T_NATIVE_INT32, sizeof(int32_t), &n);
    assert_int_equal(n, rows);
    snprintf(p, sizeof p, "%s/small", group);
    int16_t *small = read_col(f, p, H5T_STD_I16LE, H5T_NATIVE_INT16, sizeof(int16_t), &n);
    assert_int_equal(n, rows);
    snprintf(p, sizeof p, "%s/side", group);
    int8_t *side = read_col(f, p, H5T_STD_I8LE, H5T_NATIVE_INT8, sizeof(int8_t), &n);
    assert_int_equal(n, rows);
    snprintf(p, sizeof p, "%s/price", group);
    double *price = read_col(f, p, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sizeof(double), &n);
    assert_int_equal(n, rows);

    for (uint64_t i = 0; i < rows; i++) {
        all_row(i, want);
        if (memcmp(&t[i], &want[0].f, sizeof(double)) != 0 || big[i] != want[1].i
            || mid[i] != (int32_t)want[2].i || small[i] != (int16_t)want[3].i
            || side[i] != (int8_t)want[4].i
            || memcmp(&price[i], &want[5].f, sizeof(double)) != 0)
            fail_msg("row %llu differs", (unsigned long long)i);
    }
    free(t);
    free(big);
    free(mid);
    free(small);
    free(side);
    free(price);
}

static void write_all_table(struct sp_rec *r, const char *group, uint64_t rows,
                            struct sp_rec_table **out)
{
    struct sp_rec_table *t = NULL;
    assert_int_equal(sp_rec_table_create(r, group, ALL_COLS, N_ALL, &t), SP_OK);
    assert_non_null(t);
    union sp_rec_val row[N_ALL];
    for (uint64_t i = 0; i < rows; i++) {
        all_row(i, row);
        sp_rec_append(t, row);
    }
    assert_int_equal(sp_rec_table_rows(t), rows);
    if (out)
        *out = t;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_rec_all_types_round_trip_across_chunks_and_tail(void **state)
{
    (void)state;
    const char *path = TMP("roundtrip");
    struct sp_rec *r = NULL;
    struct sp_rec_opts o = { .compression = 1, .chunk_rows = 1000 };
    assert_int_equal(sp_rec_create(&r, path, &o), SP_OK);
    write_all_table(r, "/events/trades", 3 * 1000 + 457, NULL);
    assert_int_equal(sp_rec_error(r), 0);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);

    hid_t f = open_ro(path);
    check_all_cols(f, "/events/trades", 3457);
    hsize_t chunk;
    int shuffle, deflate;
    col_layout(f, "/events/trades/price", &chunk, &shuffle, &deflate);
    assert_int_equal(chunk, 1000);
    assert_true(shuffle && deflate);
    close_ro(f);
    remove(path);
}

static void test_rec_exact_multiple_of_chunk_has_no_tail(void **state)
{
    (void)state;
    const char *path = TMP("exact");
    struct sp_rec *r = NULL;
    struct sp_rec_opts o = { .compression = 0, .chunk_rows = 64 };
    assert_int_equal(sp_rec_create(&r, path, &o), SP_OK);
    write_all_table(r, "tab", 5 * 64, NULL);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);
    hid_t f = open_ro(path);
    check_all_cols(f, "/tab", 5 * 64);
    close_ro(f);
    remove(path);
}

static void test_rec_compression_off_and_on_both_round_trip(void **state)
{
    (void)state;
    static const int levels[] = { 0, 1, 9 };
    for (size_t k = 0; k < sizeof levels / sizeof levels[0]; k++) {
        int level = levels[k];
        const char *path = TMP("compression");
        struct sp_rec *r = NULL;
        struct sp_rec_opts o = { .compression = level, .chunk_rows = 512 };
        assert_int_equal(sp_rec_create(&r, path, &o), SP_OK);
        write_all_table(r, "/m", 2000, NULL);
        assert_int_equal(sp_rec_close(r, "complete"), SP_OK);

        hid_t f = open_ro(path);
        check_all_cols(f, "/m", 2000);
        hsize_t chunk;
        int shuffle, deflate;
        col_layout(f, "/m/big", &chunk, &shuffle, &deflate);
        assert_int_equal(chunk, 512);
        assert_int_equal(shuffle, level > 0);
        assert_int_equal(deflate, level > 0);
        close_ro(f);
        remove(path);
    }
}

static void test_rec_default_options(void **state)
{
    (void)state;
    const char *path = TMP("defaults");
    struct sp_rec *r = NULL;
    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    write_all_table(r, "/d", 16384 + 3, NULL);
    assert_int_equal(sp_rec_close(r, NULL), SP_OK);   /* NULL status: "complete" */

    hid_t f = open_ro(path);
    check_all_cols(f, "/d", 16384 + 3);
    hsize_t chunk;
    int shuffle, deflate;
    col_layout(f, "/d/t", &chunk, &shuffle, &deflate);
    assert_int_equal(chunk, 16384);
    assert_true(shuffle && deflate);   /* default level 1 */
    assert_attr_str(f, "/", "status", "complete");
    close_ro(f);
    remove(path);
}

static void test_rec_status_running_until_close(void **state)
{
    (void)state;
    const char *path = TMP("status");
    struct sp_rec *r = NULL;
    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    /* A second, read-only open in the same process shares the file. */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_attr_str(f, "/", "status", "running");
    /* The reader's id does not count as a recorder leak at close. */
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);
    H5Fclose(f);
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
    char *s = read_status(path);
    assert_string_equal(s, "complete");
    free(s);

    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    write_all_table(r, "/x", 10, NULL);
    assert_int_equal(sp_rec_close(r, "interrupted"), SP_OK);
    s = read_status(path);
    assert_string_equal(s, "interrupted");
    free(s);
    hid_t g = open_ro(path);
    check_all_cols(g, "/x", 10);   /* an interrupted run keeps its buffered rows */
    close_ro(g);
    remove(path);
}

/* After sp_rec_flush, another process (h5dump) reads "running" and every full
 * chunk; the partial chunk stays in memory until close. */
static void test_rec_flush_makes_full_chunks_visible_to_another_process(void **state)
{
    (void)state;
    if (system("command -v h5dump >/dev/null 2>&1") != 0)
        skip();
    const char *path = TMP("flush");
    const char *out = SP_BINARY_DIR "/test_recorder_flush.txt";
    struct sp_rec *r = NULL;
    struct sp_rec_opts o = { .compression = 1, .chunk_rows = 100 };
    assert_int_equal(sp_rec_create(&r, path, &o), SP_OK);
    write_all_table(r, "/tab", 250, NULL);
    assert_int_equal(sp_rec_flush(r), SP_OK);

    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "HDF5_USE_FILE_LOCKING=FALSE h5dump -a /status %s > %s 2>&1 && "
             "HDF5_USE_FILE_LOCKING=FALSE h5dump -H -d /tab/t %s >> %s 2>&1",
             path, out, path, out);
    assert_int_equal(system(cmd), 0);
    FILE *fp = fopen(out, "r");
    assert_non_null(fp);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    remove(out);
    if (!strstr(text, "\"running\""))
        fail_msg("status not running:\n%s", text);
    if (!strstr(text, "( 200 ) / ( H5S_UNLIMITED )"))
        fail_msg("expected 200 rows on disk:\n%s", text);

    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);
    hid_t f = open_ro(path);
    check_all_cols(f, "/tab", 250);
    close_ro(f);
    remove(path);
}

static void test_rec_column_attributes_units_long_name_and_cf_flags(void **state)
{
    (void)state;
    const char *path = TMP("attrs");
    static const char *const kinds[] = { "lender", "market maker", "arb\tbot", "", NULL };
    const struct sp_rec_col cols[] = {
        { "t", SP_REC_F64, "s", "simulated time", NULL },
        { "kind", SP_REC_I16, "1", "agent kind", kinds },
        { "n", SP_REC_I32, NULL, NULL, NULL },   /* defaults: units "", long_name = name */
    };
    struct sp_rec *r = NULL;
    struct sp_rec_table *t = NULL;
    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    assert_int_equal(sp_rec_table_create(r, "/agents", cols, 3, &t), SP_OK);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);

    hid_t f = open_ro(path);
    assert_attr_str(f, "/agents/t", "units", "s");
    assert_attr_str(f, "/agents/t", "long_name", "simulated time");
    assert_attr_str(f, "/agents/kind", "units", "1");
    assert_attr_str(f, "/agents/kind", "long_name", "agent kind");
    assert_attr_str(f, "/agents/n", "units", "");
    assert_attr_str(f, "/agents/n", "long_name", "n");
    assert_attr_str(f, "/agents/kind", "flag_meanings", "lender market_maker arb_bot _");
    assert_true(H5Aexists_by_name(f, "/agents/n", "flag_values", H5P_DEFAULT) == 0);
    assert_true(H5Aexists_by_name(f, "/agents/t", "flag_meanings", H5P_DEFAULT) == 0);

    hid_t a = H5Aopen_by_name(f, "/agents/kind", "flag_values", H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t ft = H5Aget_type(a);
    assert_true(H5Tequal(ft, H5T_STD_I16LE) > 0);   /* the column's own type */
    hid_t sp = H5Aget_space(a);
    hsize_t dim;
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 1);
    H5Sget_simple_extent_dims(sp, &dim, NULL);
    assert_int_equal(dim, 4);
    int16_t v[4];
    assert_true(H5Aread(a, H5T_NATIVE_INT16, v) >= 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(v[i], i);
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
    close_ro(f);
    remove(path);
}

static void test_rec_column_zero_is_scale_attached_to_every_other_column(void **state)
{
    (void)state;
    const char *path = TMP("scale");
    struct sp_rec *r = NULL;
    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    write_all_table(r, "/markets/amm_eth_usdc", 5, NULL);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);

    hid_t f = open_ro(path);
    hid_t scale = H5Dopen2(f, "/markets/amm_eth_usdc/t", H5P_DEFAULT);
    assert_true(H5DSis_scale(scale) > 0);
    char name[16] = "";
    assert_true(H5DSget_scale_name(scale, name, sizeof name) > 0);
    assert_string_equal(name, "t");
    for (size_t c = 1; c < N_ALL; c++) {
        char p[128];
        snprintf(p, sizeof p, "/markets/amm_eth_usdc/%s", ALL_COLS[c].name);
        hid_t ds = H5Dopen2(f, p, H5P_DEFAULT);
        assert_true(ds >= 0);
        assert_true(H5DSis_scale(ds) == 0);
        assert_true(H5DSis_attached(ds, scale, 0) > 0);
        assert_int_equal(H5DSget_num_scales(ds, 0), 1);
        H5Dclose(ds);
    }
    H5Dclose(scale);
    close_ro(f);
    remove(path);
}

static void test_rec_text_dataset_round_trips_a_large_config(void **state)
{
    (void)state;
    const char *path = TMP("text");
    size_t len = 200 * 1024;   /* fixed-length string attributes fail over 64 KB */
    char *text = malloc(len + 1);
    assert_non_null(text);
    for (size_t i = 0; i < len; i++)
        text[i] = (char)(i % 80 == 79 ? '\n' : 'a' + (char)(i % 26));
    text[len] = '\0';
    static const char utf8[] = "name: \xc3\xa9t\xc3\xa9 \xe2\x82\xac\n";   /* "été €" */

    struct sp_rec *r = NULL;
    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    assert_int_equal(sp_rec_text(r, "/config.yaml", "first version"), SP_OK);
    assert_int_equal(sp_rec_text(r, "/config.yaml", text), SP_OK);   /* replaces */
    assert_int_equal(sp_rec_text(r, "/meta/deep/utf8.txt", utf8), SP_OK);
    assert_int_equal(sp_rec_text(r, "/", "x"), SP_EINVAL);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);

    hid_t f = open_ro(path);
    const char *names[] = { "/config.yaml", "/meta/deep/utf8.txt" };
    const char *wants[] = { text, utf8 };
    for (int k = 0; k < 2; k++) {
        hid_t ds = H5Dopen2(f, names[k], H5P_DEFAULT);
        assert_true(ds >= 0);
        hid_t ft = H5Dget_type(ds);
        assert_true(H5Tis_variable_str(ft) > 0);
        assert_int_equal(H5Tget_cset(ft), H5T_CSET_UTF8);
        hid_t sp = H5Dget_space(ds);
        assert_int_equal(H5Sget_simple_extent_type(sp), H5S_SCALAR);
        char *v = NULL;
        assert_true(H5Dread(ds, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0);
        assert_non_null(v);
        assert_int_equal(strlen(v), strlen(wants[k]));
        assert_true(strcmp(v, wants[k]) == 0);
        H5free_memory(v);
        H5Sclose(sp);
        H5Tclose(ft);
        H5Dclose(ds);
    }
    close_ro(f);
    free(text);
    remove(path);
}

static herr_t count_attr(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)loc;
    (void)name;
    (void)info;
    ++*(int *)data;
    return 0;
}

static void test_rec_attributes_overwrite_and_create_groups(void **state)
{
    (void)state;
    const char *path = TMP("attr_overwrite");
    struct sp_rec *r = NULL;
    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    assert_int_equal(sp_rec_attr_str(r, "/", "scenario", "first"), SP_OK);
    assert_int_equal(sp_rec_attr_str(r, "/", "scenario", "second, longer value"), SP_OK);
    assert_int_equal(sp_rec_attr_i64(r, "/", "seed", 42), SP_OK);
    assert_int_equal(sp_rec_attr_i64(r, "/", "seed", INT64_MIN), SP_OK);
    assert_int_equal(sp_rec_attr_f64(r, "/summary", "bad_debt_total", 1.5), SP_OK);
    assert_int_equal(sp_rec_attr_f64(r, "/summary", "bad_debt_total", -2.25), SP_OK);
    assert_int_equal(sp_rec_attr_i64(r, "/summary", "n_liquidations", 7), SP_OK);
    /* A different type under the same name replaces too. */
    assert_int_equal(sp_rec_attr_str(r, "/summary", "n_liquidations", "seven"), SP_OK);
    assert_int_equal(sp_rec_attr_f64(r, "a/b//c/", "x", 3.0), SP_OK);   /* normalized */
    /* The group made for an attribute can then hold a table, and a column can
     * carry extra attributes. */
    assert_int_equal(sp_rec_attr_str(r, "/markets/m", "kind", "cpmm"), SP_OK);
    write_all_table(r, "/markets/m", 3, NULL);
    assert_int_equal(sp_rec_attr_str(r, "/markets/m/price", "units", "EUR"), SP_OK);
    assert_int_equal(sp_rec_attr_str(r, "/", "", "x"), SP_EINVAL);
    assert_int_equal(sp_rec_attr_str(r, "/", "k", NULL), SP_EINVAL);
    assert_int_equal(sp_rec_attr_str(NULL, "/", "k", "v"), SP_EINVAL);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);

    hid_t f = open_ro(path);
    assert_attr_str(f, "/", "scenario", "second, longer value");
    assert_int_equal(attr_i64(f, "/", "seed"), INT64_MIN);
    assert_true(attr_f64(f, "/summary", "bad_debt_total") == -2.25);
    assert_attr_str(f, "/summary", "n_liquidations", "seven");
    assert_true(attr_f64(f, "/a/b/c", "x") == 3.0);
    assert_attr_str(f, "/markets/m", "kind", "cpmm");
    assert_attr_str(f, "/markets/m/price", "units", "EUR");
    check_all_cols(f, "/markets/m", 3);
    hid_t g = H5Oopen(f, "/summary", H5P_DEFAULT);
    assert_int_equal(H5Iget_type(g), H5I_GROUP);
    int n_attrs = 0;
    assert_true(H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, count_attr, &n_attrs) >= 0);
    assert_int_equal(n_attrs, 2);   /* replaced, not duplicated */
    H5Oclose(g);
    close_ro(f);
    remove(path);
}

static void test_rec_unwritable_path_fails_cleanly(void **state)
{
    (void)state;
    struct sp_rec *r = (struct sp_rec *)&r;   /* must be reset to NULL */
    assert_int_equal(sp_rec_create(&r, "/nonexistent-dir/x.h5", NULL), SP_EIO);
    assert_null(r);
    assert_false(file_exists("/nonexistent-dir/x.h5"));
    /* A directory is not a file either. */
    assert_int_equal(sp_rec_create(&r, SP_BINARY_DIR, NULL), SP_EIO);
    assert_null(r);
    assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

static void test_rec_invalid_arguments_are_rejected_without_poisoning(void **state)
{
    (void)state;
    const char *path = TMP("invalid");
    remove(path);   /* a leftover of an earlier failed run */
    struct sp_rec *r = NULL;
    struct sp_rec_opts bad = { .compression = 10, .chunk_rows = 0 };
    assert_int_equal(sp_rec_create(&r, path, &bad), SP_EINVAL);
    bad.compression = -1;
    assert_int_equal(sp_rec_create(&r, path, &bad), SP_EINVAL);
    assert_int_equal(sp_rec_create(NULL, path, NULL), SP_EINVAL);
    assert_int_equal(sp_rec_create(&r, NULL, NULL), SP_EINVAL);
    assert_false(file_exists(path));

    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    struct sp_rec_table *t = NULL;
    const struct sp_rec_col dup[] = { { "t", SP_REC_F64, "s", "t", NULL },
                                      { "t", SP_REC_F64, "s", "t", NULL } };
    assert_int_equal(sp_rec_table_create(r, "/g", dup, 2, &t), SP_EINVAL);
    assert_null(t);
    const struct sp_rec_col slash[] = { { "a/b", SP_REC_F64, "s", "t", NULL } };
    assert_int_equal(sp_rec_table_create(r, "/g", slash, 1, &t), SP_EINVAL);
    const struct sp_rec_col fcodes[] = { { "t", SP_REC_F64, "s", "t", NULL },
                                         { "c", SP_REC_F64, "1", "c", SIDES } };
    assert_int_equal(sp_rec_table_create(r, "/g", fcodes, 2, &t), SP_EINVAL);
    assert_int_equal(sp_rec_table_create(r, "/g", dup, 0, &t), SP_EINVAL);

    /* 129 codes do not fit an int8 column; 128 do. */
    const char *many[130];
    for (int i = 0; i < 129; i++)
        many[i] = "x";
    many[129] = NULL;
    const struct sp_rec_col wide[] = { { "t", SP_REC_F64, "s", "t", NULL },
                                       { "c", SP_REC_I8, "1", "c", many } };
    assert_int_equal(sp_rec_table_create(r, "/g", wide, 2, &t), SP_ERANGE);
    many[128] = NULL;
    assert_int_equal(sp_rec_table_create(r, "/g", wide, 2, &t), SP_OK);
    assert_non_null(t);
    /* The same table twice, or a table over a text dataset, is refused. */
    struct sp_rec_table *t2 = NULL;
    assert_int_equal(sp_rec_table_create(r, "/g", wide, 2, &t2), SP_EEXISTS);
    assert_int_equal(sp_rec_text(r, "/notes", "hi"), SP_OK);
    assert_int_equal(sp_rec_table_create(r, "/notes", wide, 2, &t2), SP_EEXISTS);
    /* sp_rec_text does not unlink a group or a table column. */
    assert_int_equal(sp_rec_text(r, "/g", "hi"), SP_EEXISTS);
    assert_int_equal(sp_rec_text(r, "/g/t", "hi"), SP_EEXISTS);
    assert_null(t2);

    assert_int_equal(sp_rec_error(r), 0);   /* argument errors are not sticky */
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);
    assert_int_equal(sp_rec_close(NULL, "complete"), SP_OK);
    char *s = read_status(path);
    assert_string_equal(s, "complete");
    free(s);
    remove(path);
}

static void test_rec_sticky_error_drops_rows_and_marks_failed(void **state)
{
    (void)state;
    const char *path = TMP("sticky");
    struct sp_rec *r = NULL;
    struct sp_rec_table *t = NULL;
    struct sp_rec_opts o = { .compression = 0, .chunk_rows = 4 };
    assert_int_equal(sp_rec_create(&r, path, &o), SP_OK);
    write_all_table(r, "/tab", 6, &t);
    sp_rec_append(t, NULL);   /* a caller bug: recorded, not a crash */
    assert_int_equal(sp_rec_error(r), SP_EINVAL);
    union sp_rec_val row[N_ALL];
    all_row(6, row);
    sp_rec_append(t, row);   /* dropped */
    assert_int_equal(sp_rec_table_rows(t), 6);
    assert_int_equal(sp_rec_close(r, "complete"), SP_EINVAL);

    hid_t f = open_ro(path);
    assert_attr_str(f, "/", "status", "failed");   /* never "complete" after an error */
    check_all_cols(f, "/tab", 6);                  /* rows before the error are kept */
    close_ro(f);
    remove(path);
}

/* A full disk, simulated with RLIMIT_FSIZE in a child process: the write
 * error becomes sticky SP_EIO, later rows are dropped, close reports it. */
static void test_rec_write_failure_is_sticky_eio(void **state)
{
    (void)state;
    const char *path = TMP("efbig");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = { 256 * 1024, 256 * 1024 };
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(10);
        struct sp_rec *r = NULL;
        struct sp_rec_table *t = NULL;
        struct sp_rec_opts o = { .compression = 0, .chunk_rows = 1024 };
        if (sp_rec_create(&r, path, &o) != SP_OK)
            _exit(11);
        if (sp_rec_table_create(r, "/tab", ALL_COLS, N_ALL, &t) != SP_OK)
            _exit(12);
        union sp_rec_val row[N_ALL];
        uint64_t i;
        for (i = 0; i < 100000 && sp_rec_error(r) == 0; i++) {
            all_row(i, row);
            sp_rec_append(t, row);
        }
        if (sp_rec_error(r) == 0) {
            /* HDF5 may hold the last chunks in its caches until the flush. */
            if (sp_rec_flush(r) == SP_OK)
                _exit(13);
        }
        int err = sp_rec_error(r);
        if (err != SP_EIO)
            _exit(14);
        uint64_t rows = sp_rec_table_rows(t);
        sp_rec_append(t, row);
        if (sp_rec_table_rows(t) != rows)
            _exit(15);
        if (sp_rec_close(r, "complete") != err)
            _exit(16);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    remove(path);
}

static void test_rec_buffer_bytes_constant_while_appending(void **state)
{
    (void)state;
    const char *path = TMP("memory");
    struct sp_rec *r = NULL;
    struct sp_rec_table *t = NULL;
    size_t chunk = 2048;
    struct sp_rec_opts o = { .compression = 1, .chunk_rows = chunk };
    assert_int_equal(sp_rec_create(&r, path, &o), SP_OK);
    assert_int_equal(sp_rec_buffer_bytes(r), 0);
    assert_int_equal(sp_rec_table_create(r, "/tab", ALL_COLS, N_ALL, &t), SP_OK);
    size_t row_bytes = 8 + 8 + 4 + 2 + 1 + 8;
    size_t bytes = sp_rec_buffer_bytes(r);
    /* One chunk of rows being filled plus two queued to the writer thread. */
    assert_int_equal(bytes, 3 * chunk * row_bytes);
    union sp_rec_val row[N_ALL];
    for (uint64_t i = 0; i < 10 * chunk + 17; i++) {
        all_row(i, row);
        sp_rec_append(t, row);
        if (sp_rec_buffer_bytes(r) != bytes)
            fail_msg("buffer bytes changed at row %llu", (unsigned long long)i);
    }
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);
    hid_t f = open_ro(path);
    check_all_cols(f, "/tab", 10 * chunk + 17);
    close_ro(f);
    remove(path);
}

static void test_rec_two_recorders_open_at_once(void **state)
{
    (void)state;
    const char *pa = TMP("two_a"), *pb = TMP("two_b");
    struct sp_rec *a = NULL, *b = NULL;
    struct sp_rec_table *ta = NULL, *tb = NULL, *tb2 = NULL;
    struct sp_rec_opts oa = { .compression = 1, .chunk_rows = 300 };
    struct sp_rec_opts ob = { .compression = 0, .chunk_rows = 7 };
    assert_int_equal(sp_rec_create(&a, pa, &oa), SP_OK);
    assert_int_equal(sp_rec_create(&b, pb, &ob), SP_OK);
    assert_int_equal(sp_rec_table_create(a, "/same", ALL_COLS, N_ALL, &ta), SP_OK);
    assert_int_equal(sp_rec_table_create(b, "/same", ALL_COLS, N_ALL, &tb), SP_OK);
    assert_int_equal(sp_rec_table_create(b, "/other", ALL_COLS, N_ALL, &tb2), SP_OK);
    union sp_rec_val row[N_ALL];
    for (uint64_t i = 0; i < 1000; i++) {
        all_row(i, row);
        sp_rec_append(ta, row);
        if (i < 500)
            sp_rec_append(tb, row);
        if (i < 123)
            sp_rec_append(tb2, row);
    }
    assert_int_equal(sp_rec_attr_str(a, "/", "who", "a"), SP_OK);
    assert_int_equal(sp_rec_attr_str(b, "/", "who", "b"), SP_OK);
    assert_int_equal(sp_rec_flush(a), SP_OK);
    assert_int_equal(sp_rec_close(b, "interrupted"), SP_OK);
    assert_int_equal(sp_rec_close(a, "complete"), SP_OK);

    hid_t f = open_ro(pa);
    check_all_cols(f, "/same", 1000);
    assert_attr_str(f, "/", "who", "a");
    assert_attr_str(f, "/", "status", "complete");
    close_ro(f);
    f = open_ro(pb);
    check_all_cols(f, "/same", 500);
    check_all_cols(f, "/other", 123);
    assert_attr_str(f, "/", "who", "b");
    assert_attr_str(f, "/", "status", "interrupted");
    close_ro(f);
    remove(pa);
    remove(pb);
}

static void test_rec_zero_row_table_closes_fine(void **state)
{
    (void)state;
    const char *path = TMP("empty");
    struct sp_rec *r = NULL;
    struct sp_rec_table *t = NULL;
    assert_int_equal(sp_rec_create(&r, path, NULL), SP_OK);
    assert_int_equal(sp_rec_table_create(r, "/events/liquidations", ALL_COLS, N_ALL, &t),
                     SP_OK);
    assert_int_equal(sp_rec_table_rows(t), 0);
    const struct sp_rec_col one[] = { { "t", SP_REC_F64, "s", "time", NULL } };
    assert_int_equal(sp_rec_table_create(r, "/events/blocks", one, 1, &t), SP_OK);
    assert_int_equal(sp_rec_flush(r), SP_OK);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);

    hid_t f = open_ro(path);
    check_all_cols(f, "/events/liquidations", 0);
    hid_t scale = H5Dopen2(f, "/events/liquidations/t", H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/events/liquidations/side", H5P_DEFAULT);
    assert_true(H5DSis_scale(scale) > 0);
    assert_true(H5DSis_attached(ds, scale, 0) > 0);
    H5Dclose(ds);
    H5Dclose(scale);
    hid_t one_t = H5Dopen2(f, "/events/blocks/t", H5P_DEFAULT);
    assert_true(H5DSis_scale(one_t) > 0);
    H5Dclose(one_t);
    close_ro(f);
    remove(path);
}

static void test_rec_chunk_of_one_row(void **state)
{
    (void)state;
    const char *path = TMP("chunk1");
    struct sp_rec *r = NULL;
    struct sp_rec_opts o = { .compression = 1, .chunk_rows = 1 };
    assert_int_equal(sp_rec_create(&r, path, &o), SP_OK);
    write_all_table(r, "/tab", 37, NULL);
    assert_int_equal(sp_rec_close(r, "complete"), SP_OK);
    hid_t f = open_ro(path);
    check_all_cols(f, "/tab", 37);
    close_ro(f);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rec_all_types_round_trip_across_chunks_and_tail),
        cmocka_unit_test(test_rec_exact_multiple_of_chunk_has_no_tail),
        cmocka_unit_test(test_rec_compression_off_and_on_both_round_trip),
        cmocka_unit_test(test_rec_default_options),
        cmocka_unit_test(test_rec_status_running_until_close),
        cmocka_unit_test(test_rec_flush_makes_full_chunks_visible_to_another_process),
        cmocka_unit_test(test_rec_column_attributes_units_long_name_and_cf_flags),
        cmocka_unit_test(test_rec_column_zero_is_scale_attached_to_every_other_column),
        cmocka_unit_test(test_rec_text_dataset_round_trips_a_large_config),
        cmocka_unit_test(test_rec_attributes_overwrite_and_create_groups),
        cmocka_unit_test(test_rec_unwritable_path_fails_cleanly),
        cmocka_unit_test(test_rec_invalid_arguments_are_rejected_without_poisoning),
        cmocka_unit_test(test_rec_sticky_error_drops_rows_and_marks_failed),
        cmocka_unit_test(test_rec_write_failure_is_sticky_eio),
        cmocka_unit_test(test_rec_buffer_bytes_constant_while_appending),
        cmocka_unit_test(test_rec_two_recorders_open_at_once),
        cmocka_unit_test(test_rec_zero_row_table_closes_fine),
        cmocka_unit_test(test_rec_chunk_of_one_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
