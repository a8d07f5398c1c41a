/* audience_sync.identifiers._digest: the lowercase hex SHA-256 of every string of a Polars
 * String column, as a Python list (None for a null row), in two steps: `sha256_digests` (no
 * GIL: it can run on a thread beside the one making strings) and `hex_list`.
 *
 * Why it exists: `hash_many` must hand back a list of Python strings. Through Polars that is
 * the polars-hash plugin (~140 ns a row on one core, Rust `sha2` and hex formatting) and then
 * `Series.to_list` (~70 ns a row). Here OpenSSL hashes the rows (~50 ns a row with the CPU's
 * SHA extensions, the GIL released) and the hex is written straight into the new strings.
 * `bulk.py` uses it when it is built; without a C compiler or OpenSSL's headers the build skips
 * it (setup.py: optional) and the plugin is used instead. The tests hold the two equal.
 *
 * The column arrives through the Arrow C stream interface (`Series.__arrow_c_stream__`), with
 * no copy: Polars exports String columns as Arrow `string_view` ("vu"), the only layout taken.
 * https://arrow.apache.org/docs/format/CDataInterface.html
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 but kept: the EVP interface measured
 * ~75 ns a short row against ~50 (it dispatches through a provider on every call). */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* The Arrow C data interface's structures, as the specification gives them. */
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};

struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};

struct ArrowArrayStream {
    int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *out);
    int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *out);
    const char *(*get_last_error)(struct ArrowArrayStream *);
    void (*release)(struct ArrowArrayStream *);
    void *private_data;
};

static const char HEX[] = "0123456789abcdef";
static char HEX_PAIRS[2 * 256]; /* the two hex digits of each byte (PyInit__digest fills it):
                                   one copy a byte measured 7 ms a million rows, two 12 */
enum { RECORD = 33 }; /* a row of sha256_digests: 1 if the row is not null, its digest */

static int
is_valid(const struct ArrowArray *array, int64_t row)
{
    const uint8_t *bits = array->buffers[0];
    if (bits == NULL || array->null_count == 0)
        return 1;
    return (bits[row >> 3] >> (row & 7)) & 1;
}

/* A string_view row: 16 bytes, the length first; up to 12 bytes of text inline after it,
 * else a 4-byte prefix, the data buffer's index and the offset in it. */
static void
view_text(const struct ArrowArray *array, int64_t row, const uint8_t **text, size_t *size)
{
    const uint8_t *view = (const uint8_t *)array->buffers[1] + 16 * row;
    int32_t length, buffer, offset;
    memcpy(&length, view, 4);
    if (length <= 12) {
        *text = view + 4;
    }
    else {
        memcpy(&buffer, view + 8, 4);
        memcpy(&offset, view + 12, 4);
        *text = (const uint8_t *)array->buffers[2 + buffer] + offset;
    }
    *size = (size_t)length;
}

/* The chunk's rows into `records` (RECORD bytes a row), without the GIL. */
static void
digest_chunk(unsigned char *records, const struct ArrowArray *array)
{
    Py_BEGIN_ALLOW_THREADS
    for (int64_t i = 0; i < array->length; i++) {
        unsigned char *record = records + RECORD * i;
        int64_t row = i + array->offset;
        record[0] = (unsigned char)is_valid(array, row);
        if (!record[0])
            continue;
        const uint8_t *text;
        size_t size;
        SHA256_CTX context;
        view_text(array, row, &text, &size);
        SHA256_Init(&context);
        SHA256_Update(&context, text, size);
        SHA256_Final(record + 1, &context);
    }
    Py_END_ALLOW_THREADS
}

static int
stream_error(struct ArrowArrayStream *stream, const char *what)
{
    const char *detail = stream->get_last_error ? stream->get_last_error(stream) : NULL;
    PyErr_Format(PyExc_RuntimeError, "Arrow stream: %s failed (%s)", what,
                 detail ? detail : "no detail");
    return -1;
}

static int
check_format(struct ArrowArrayStream *stream)
{
    struct ArrowSchema schema;
    if (stream->get_schema(stream, &schema) != 0)
        return stream_error(stream, "get_schema");
    int fits = strcmp(schema.format, "vu") == 0;
    if (!fits)
        PyErr_Format(PyExc_TypeError,
                     "sha256_digests takes a Polars String column (Arrow string_view), "
                     "not Arrow format '%s'",
                     schema.format);
    schema.release(&schema);
    return fits ? 0 : -1;
}

/* Every chunk of the stream, in order, into the `size` records. */
static int
fill(unsigned char *records, Py_ssize_t size, struct ArrowArrayStream *stream)
{
    Py_ssize_t done = 0;
    for (;;) {
        struct ArrowArray array;
        if (stream->get_next(stream, &array) != 0)
            return stream_error(stream, "get_next");
        if (array.release == NULL)
            break; /* the end of the stream */
        int fits = array.length <= size - done;
        if (fits) {
            digest_chunk(records + RECORD * done, &array);
            done += (Py_ssize_t)array.length;
        }
        array.release(&array);
        if (!fits) {
            PyErr_SetString(PyExc_ValueError, "the column has more rows than its length");
            return -1;
        }
    }
    if (done != size) {
        PyErr_SetString(PyExc_ValueError, "the column has fewer rows than its length");
        return -1;
    }
    return 0;
}

static PyObject *
sha256_digests(PyObject *module, PyObject *column)
{
    Py_ssize_t size = PyObject_Length(column);
    if (size < 0)
        return NULL;
    if (size > PY_SSIZE_T_MAX / RECORD)
        return PyErr_NoMemory();
    PyObject *capsule = PyObject_CallMethod(column, "__arrow_c_stream__", NULL);
    if (capsule == NULL)
        return NULL;
    struct ArrowArrayStream *stream = PyCapsule_GetPointer(capsule, "arrow_array_stream");
    PyObject *out = NULL;
    if (stream != NULL && check_format(stream) == 0) {
        out = PyBytes_FromStringAndSize(NULL, size * RECORD);
        if (out != NULL && fill((unsigned char *)PyBytes_AS_STRING(out), size, stream) < 0)
            Py_CLEAR(out);
    }
    Py_DECREF(capsule); /* the capsule's destructor releases the stream */
    return out;
}

static PyObject *
hex_list(PyObject *module, PyObject *records)
{
    if (!PyBytes_Check(records) || PyBytes_GET_SIZE(records) % RECORD != 0) {
        PyErr_SetString(PyExc_TypeError, "hex_list takes the bytes sha256_digests returns");
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(records) / RECORD;
    const unsigned char *record = (const unsigned char *)PyBytes_AS_STRING(records);
    PyObject *out = PyList_New(size);
    for (Py_ssize_t i = 0; out != NULL && i < size; i++, record += RECORD) {
        PyObject *item = record[0] ? PyUnicode_New(64, 127) : Py_NewRef(Py_None);
        if (item == NULL) {
            Py_CLEAR(out); /* rows not yet filled are NULL: fine for a list being freed */
            break;
        }
        if (record[0]) {
            Py_UCS1 *hex = PyUnicode_1BYTE_DATA(item);
            for (int k = 0; k < 32; k++)
                memcpy(hex + 2 * k, HEX_PAIRS + 2 * record[1 + k], 2);
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"sha256_digests", sha256_digests, METH_O,
     "sha256_digests(column) -> bytes: for each row of a Polars String column, 33 bytes: 1 "
     "when the row is not null (else 0, and 32 bytes of no meaning), then the SHA-256 of its "
     "UTF-8 text. The hashing runs without the GIL."},
    {"hex_list", hex_list, METH_O,
     "hex_list(digests) -> list[str | None]: sha256_digests' rows as lowercase hex, None for "
     "a null row."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_digest", "SHA-256 of a Polars String column, by OpenSSL.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__digest(void)
{
    for (int byte = 0; byte < 256; byte++) {
        HEX_PAIRS[2 * byte] = HEX[byte >> 4];
        HEX_PAIRS[2 * byte + 1] = HEX[byte & 15];
    }
    return PyModule_Create(&module);
}
