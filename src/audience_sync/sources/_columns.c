/* audience_sync.sources._columns: a SQLite query's result as Arrow columns, for member reads.
 *
 * Why it exists: a sync reads every member of a segment. Through Python's sqlite3 module every
 * value of every row becomes a Python object, and at a million members that cost several times
 * SQLite's own work (measured: the identifiers of a million members, 2.4 million rows, take
 * ~0.9 s for SQLite to step through and ~5 s to reach Polars as rows or JSON texts). Here the
 * rows are stepped without the GIL and written straight into Arrow buffers, which Polars takes
 * through the Arrow C data interface (`__arrow_c_array__`): no Python object per value.
 *
 * Why not a library: the readers that produce Arrow from SQLite (ADBC's SQLite driver,
 * connectorx, DuckDB's scanner) each link their own copy of SQLite. Two SQLite libraries in one
 * process break each other's POSIX locks (sqlite.org, "How To Corrupt An SQLite Database File",
 * 2.2.1), and the convergence tests failed with ADBC's. This module links the system's
 * libsqlite3 and is used only when Python's own sqlite3 module uses that same library
 * (`same_library`); then it is simply one more connection of the one SQLite in the process.
 *
 * Optional: without a C compiler or SQLite's headers (Debian: libsqlite3-dev) setup.py skips
 * it, and members are read through Python's sqlite3 module as before.
 * https://arrow.apache.org/docs/format/CDataInterface.html
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../_arrow.h" /* the Arrow C data interface's structures */


/* --- one column being filled ------------------------------------------------------------ */

/* kind 'i': int64 ("l"); kind 't': large UTF-8 text ("U": int64 offsets). */
typedef struct {
    char kind;
    int64_t rows, capacity;
    int64_t *ints;      /* 'i': the values */
    int64_t *offsets;   /* 't': rows + 1 offsets into data */
    char *data;         /* 't': the bytes */
    int64_t size, room; /* 't': bytes used, bytes allocated */
    uint8_t *valid;     /* validity bitmap (bit set: not null) */
    int64_t nulls;
} Column;

static void column_free(Column *c) {
    free(c->ints);
    free(c->offsets);
    free(c->data);
    free(c->valid);
    memset(c, 0, sizeof(*c));
}

static int grow_rows(Column *c) {
    int64_t capacity = c->capacity ? c->capacity * 2 : 4096;
    uint8_t *valid = realloc(c->valid, (size_t)(capacity + 7) / 8);
    if (!valid) return -1;
    memset(valid + (c->capacity + 7) / 8, 0, (size_t)((capacity + 7) / 8 - (c->capacity + 7) / 8));
    c->valid = valid;
    if (c->kind == 'i') {
        int64_t *ints = realloc(c->ints, (size_t)capacity * sizeof(int64_t));
        if (!ints) return -1;
        c->ints = ints;
    } else {
        int64_t *offsets = realloc(c->offsets, (size_t)(capacity + 1) * sizeof(int64_t));
        if (!offsets) return -1;
        if (!c->offsets) offsets[0] = 0;
        c->offsets = offsets;
    }
    c->capacity = capacity;
    return 0;
}

/* Append the statement's column `k` of the current row; -1 when out of memory, -2 when a
 * value does not fit the column's kind (text in an int column, a blob anywhere). */
static int column_add(Column *c, sqlite3_stmt *stmt, int k) {
    if (c->rows == c->capacity && grow_rows(c)) return -1;
    int type = sqlite3_column_type(stmt, k);
    int64_t row = c->rows;
    if (type == SQLITE_NULL) {
        c->nulls++;
        if (c->kind == 'i') c->ints[row] = 0;
        else c->offsets[row + 1] = c->size;
    } else if (c->kind == 'i') {
        if (type != SQLITE_INTEGER) return -2;
        c->ints[row] = sqlite3_column_int64(stmt, k);
        c->valid[row / 8] |= (uint8_t)(1u << (row % 8));
    } else {
        /* A number in a text column (SQLite's typing allows it) is read as its text. */
        if (type == SQLITE_BLOB) return -2;
        const unsigned char *text = sqlite3_column_text(stmt, k);
        int64_t length = sqlite3_column_bytes(stmt, k);
        if (!text && length) return -1;
        if (c->size + length > c->room) {
            int64_t room = c->room ? c->room * 2 : 65536;
            while (room < c->size + length) room *= 2;
            char *data = realloc(c->data, (size_t)room);
            if (!data) return -1;
            c->data = data;
            c->room = room;
        }
        memcpy(c->data + c->size, text, (size_t)length);
        c->size += length;
        c->offsets[row + 1] = c->size;
        c->valid[row / 8] |= (uint8_t)(1u << (row % 8));
    }
    c->rows++;
    return 0;
}

/* --- handing a column to Arrow ---------------------------------------------------------- */

typedef struct {
    Column column;
    const void *buffers[3];
} Exported;

static void release_array(struct ArrowArray *array) {
    Exported *exported = array->private_data;
    column_free(&exported->column);
    free(exported);
    array->release = NULL;
}

static void release_schema(struct ArrowSchema *schema) {
    schema->release = NULL;
}

static void array_capsule_free(PyObject *capsule) {
    struct ArrowArray *array = PyCapsule_GetPointer(capsule, "arrow_array");
    if (array && array->release) array->release(array);
    free(array);
}

static void schema_capsule_free(PyObject *capsule) {
    struct ArrowSchema *schema = PyCapsule_GetPointer(capsule, "arrow_schema");
    if (schema && schema->release) schema->release(schema);
    free(schema);
}

/* The column as (schema capsule, array capsule); it is moved out of `c` either way. */
static PyObject *export_column(Column *c) {
    Exported *exported = calloc(1, sizeof(Exported));
    struct ArrowArray *array = calloc(1, sizeof(struct ArrowArray));
    struct ArrowSchema *schema = calloc(1, sizeof(struct ArrowSchema));
    if (!exported || !array || !schema) {
        free(exported), free(array), free(schema), column_free(c);
        return PyErr_NoMemory();
    }
    if (c->kind == 't' && !c->offsets) { /* no row: Arrow still wants one offset */
        c->offsets = calloc(1, sizeof(int64_t));
        if (!c->offsets) {
            free(exported), free(array), free(schema), column_free(c);
            return PyErr_NoMemory();
        }
    }
    exported->column = *c;
    memset(c, 0, sizeof(*c));
    Column *mine = &exported->column;
    exported->buffers[0] = mine->nulls ? mine->valid : NULL;
    if (mine->kind == 'i') {
        exported->buffers[1] = mine->ints;
        array->n_buffers = 2;
    } else {
        exported->buffers[1] = mine->offsets;
        exported->buffers[2] = mine->data ? mine->data : (const void *)"";
        array->n_buffers = 3;
    }
    array->length = mine->rows;
    array->null_count = mine->nulls;
    array->buffers = exported->buffers;
    array->release = release_array;
    array->private_data = exported;
    schema->format = mine->kind == 'i' ? "l" : "U";
    schema->name = "";
    schema->flags = ARROW_FLAG_NULLABLE;
    schema->release = release_schema;
    PyObject *schema_capsule = PyCapsule_New(schema, "arrow_schema", schema_capsule_free);
    if (!schema_capsule) {
        release_array(array), free(array), free(schema);
        return NULL;
    }
    PyObject *array_capsule = PyCapsule_New(array, "arrow_array", array_capsule_free);
    if (!array_capsule) {
        Py_DECREF(schema_capsule);
        release_array(array), free(array);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, schema_capsule, array_capsule);
    Py_DECREF(schema_capsule);
    Py_DECREF(array_capsule);
    return pair;
}

/* --- connections ------------------------------------------------------------------------ */

static void db_capsule_free(PyObject *capsule) {
    sqlite3 *db = PyCapsule_GetPointer(capsule, "audience_sync.sqlite3");
    if (db) sqlite3_close_v2(db);
}

static PyObject *open_db(PyObject *Py_UNUSED(self), PyObject *args) {
    const char *path;
    int busy_ms;
    if (!PyArg_ParseTuple(args, "si", &path, &busy_ms)) return NULL;
    sqlite3 *db = NULL;
    int code;
    Py_BEGIN_ALLOW_THREADS
    code = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (code == SQLITE_OK) code = sqlite3_busy_timeout(db, busy_ms);
    Py_END_ALLOW_THREADS
    if (code != SQLITE_OK) {
        PyErr_Format(PyExc_OSError, "cannot open the SQLite database: %s",
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(code));
        sqlite3_close_v2(db);
        return NULL;
    }
    PyObject *capsule = PyCapsule_New(db, "audience_sync.sqlite3", db_capsule_free);
    if (!capsule) sqlite3_close_v2(db);
    return capsule;
}

static PyObject *close_db(PyObject *Py_UNUSED(self), PyObject *capsule) {
    sqlite3 *db = PyCapsule_GetPointer(capsule, "audience_sync.sqlite3");
    if (!db) return NULL;
    if (PyCapsule_SetPointer(capsule, (void *)1) < 0) return NULL; /* never closed twice */
    PyCapsule_SetDestructor(capsule, NULL);
    sqlite3_close_v2(db);
    Py_RETURN_NONE;
}

/* --- the query -------------------------------------------------------------------------- */

static int bind_params(sqlite3_stmt *stmt, PyObject *params) {
    Py_ssize_t n = PyTuple_GET_SIZE(params);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyTuple_GET_ITEM(params, i);
        int code;
        if (p == Py_None) {
            code = sqlite3_bind_null(stmt, (int)i + 1);
        } else if (PyLong_Check(p)) {
            long long value = PyLong_AsLongLong(p);
            if (value == -1 && PyErr_Occurred()) return -1;
            code = sqlite3_bind_int64(stmt, (int)i + 1, value);
        } else if (PyUnicode_Check(p)) {
            Py_ssize_t length;
            const char *text = PyUnicode_AsUTF8AndSize(p, &length);
            if (!text) return -1;
            code = sqlite3_bind_text64(stmt, (int)i + 1, text, (sqlite3_uint64)length,
                                       SQLITE_TRANSIENT, SQLITE_UTF8);
        } else {
            PyErr_Format(PyExc_TypeError, "parameter %zd: int, str or None, not %.100s", i + 1,
                         Py_TYPE(p)->tp_name);
            return -1;
        }
        if (code != SQLITE_OK) {
            PyErr_Format(PyExc_ValueError, "parameter %zd: %s", i + 1, sqlite3_errstr(code));
            return -1;
        }
    }
    return 0;
}

/* query(db, sql, params, kinds) -> [(schema capsule, array capsule)] per column: kinds has one
 * letter a column, 'i' (int64) or 't' (text). Steps every row without the GIL. */
static PyObject *query(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *capsule, *params;
    const char *sql, *kinds;
    if (!PyArg_ParseTuple(args, "OsO!s", &capsule, &sql, &PyTuple_Type, &params, &kinds))
        return NULL;
    sqlite3 *db = PyCapsule_GetPointer(capsule, "audience_sync.sqlite3");
    if (!db) return NULL;
    if (db == (void *)1) {
        PyErr_SetString(PyExc_ValueError, "the connection is closed");
        return NULL;
    }
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        PyErr_Format(PyExc_ValueError, "cannot prepare the query: %s", sqlite3_errmsg(db));
        return NULL;
    }
    int width = (int)strlen(kinds);
    int count = sqlite3_column_count(stmt); /* read before any finalize */
    if (count != width || strspn(kinds, "it") != (size_t)width) {
        sqlite3_finalize(stmt);
        PyErr_Format(PyExc_ValueError, "kinds %R: one 'i' or 't' for each of the %d columns",
                     PyTuple_GET_ITEM(args, 3), count);
        return NULL;
    }
    if (bind_params(stmt, params)) {
        sqlite3_finalize(stmt);
        return NULL;
    }
    Column *columns = calloc((size_t)width ? (size_t)width : 1, sizeof(Column));
    if (!columns) {
        sqlite3_finalize(stmt);
        return PyErr_NoMemory();
    }
    for (int k = 0; k < width; k++) columns[k].kind = kinds[k];
    int code, failed = 0, bad_column = -1;
    Py_BEGIN_ALLOW_THREADS
    while (!failed && (code = sqlite3_step(stmt)) == SQLITE_ROW) {
        for (int k = 0; k < width && !failed; k++) {
            failed = column_add(&columns[k], stmt, k);
            if (failed) bad_column = k;
        }
    }
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (failed == -1) {
        PyErr_NoMemory();
    } else if (failed == -2) {
        PyErr_Format(PyExc_TypeError, "column %d (%s): a value is not of kind '%c'",
                     bad_column + 1, sqlite3_column_name(stmt, bad_column), kinds[bad_column]);
    } else if (code != SQLITE_DONE) {
        PyErr_Format(PyExc_OSError, "the query failed: %s", sqlite3_errmsg(db));
    } else if ((result = PyList_New(width))) {
        for (int k = 0; k < width; k++) {
            PyObject *pair = export_column(&columns[k]);
            if (!pair) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, k, pair);
        }
    }
    for (int k = 0; k < width; k++) column_free(&columns[k]);
    free(columns);
    sqlite3_finalize(stmt);
    return result;
}

/* same_library(path of Python's _sqlite3 module) -> bool: whether that module calls the very
 * SQLite library this one is linked with (one copy in the process, so its locks are shared). */
static PyObject *same_library(PyObject *Py_UNUSED(self), PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    void *handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
    if (!handle) Py_RETURN_FALSE;
    void *theirs = dlsym(handle, "sqlite3_libversion");
    dlclose(handle);
    return PyBool_FromLong(theirs != NULL && theirs == (void *)sqlite3_libversion);
}

static PyMethodDef methods[] = {
    {"open", open_db, METH_VARARGS, "open(path, busy_ms) -> connection capsule (read-only)"},
    {"close", close_db, METH_O, "close(connection)"},
    {"query", query, METH_VARARGS,
     "query(connection, sql, params, kinds) -> [(schema, array) capsules] per column"},
    {"same_library", same_library, METH_VARARGS,
     "same_library(path) -> whether the module at path uses this SQLite library"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_columns", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__columns(void) { return PyModule_Create(&module); }
