/*
 * testutil.h — small helpers shared by the integration tests: temporary
 * directories, running the spiral binary, reading datasets and attributes.
 * Header-only (static functions) so each test stays one file.
 */
#ifndef SPIRAL_TESTUTIL_H
#define SPIRAL_TESTUTIL_H

#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A fresh directory under the build tree for this test binary. */
static inline const char *tu_tmpdir(const char *name)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/tmp-%s-%d", SP_BINARY_DIR, name, (int)getpid());
    mkdir(dir, 0777);
    return dir;
}

static inline void tu_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); abort(); }
    fputs(text, f);
    fclose(f);
}

static inline char *tu_read(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

/* Start the spiral binary with argv (NULL-terminated, argv[0] ignored);
 * stdout+stderr go to `log`.  Returns the pid. */
static inline pid_t tu_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        execv(SP_SPIRAL_EXE, argv);
        _exit(127);
    }
    return pid;
}

static inline int tu_wait(pid_t pid)
{
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run and wait; returns the exit code. */
static inline int tu_run(char *const argv[], const char *log)
{
    return tu_wait(tu_spawn(argv, log));
}

/* The root `status` attribute of an HDF5 file, or "" when absent/unreadable. */
static inline const char *tu_status(const char *path, char *buf, size_t size)
{
    buf[0] = 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, F_OK) != 0 || H5Fis_hdf5(path) <= 0) return buf;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return buf;
    if (H5Aexists(f, "status") > 0) {
        hid_t a = H5Aopen(f, "status", H5P_DEFAULT);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        char *s = NULL;
        if (H5Aread(a, t, &s) >= 0 && s) {
            snprintf(buf, size, "%s", s);
            H5free_memory(s);
        }
        H5Tclose(t);
        H5Aclose(a);
    }
    H5Fclose(f);
    return buf;
}

static inline double tu_attr_f64(const char *path, const char *obj, const char *name)
{
    double v = -1;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return v;
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) { H5Aread(a, H5T_NATIVE_DOUBLE, &v); H5Aclose(a); }
    H5Fclose(f);
    return v;
}

/* Read a whole 1-D dataset as raw bytes in its file type's native size;
 * returns a malloc'd buffer and sets *n (elements) and *elem (bytes). */
static inline void *tu_read_raw(const char *path, const char *ds_path, size_t *n, size_t *elem)
{
    *n = 0;
    *elem = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return NULL;
    hid_t d = H5Dopen2(f, ds_path, H5P_DEFAULT);
    if (d < 0) { H5Fclose(f); return NULL; }
    hid_t sp = H5Dget_space(d);
    hsize_t dims[1] = { 0 };
    H5Sget_simple_extent_dims(sp, dims, NULL);
    hid_t ft = H5Dget_type(d);
    hid_t mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
    *elem = H5Tget_size(mt);
    *n = (size_t)dims[0];
    void *buf = malloc(*n * *elem + 1);
    if (*n) H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return buf;
}

static inline double *tu_read_f64(const char *path, const char *ds_path, size_t *n)
{
    size_t elem;
    return tu_read_raw(path, ds_path, n, &elem);
}

#endif
