/* audience_sync.identifiers._digest: `hash_many`'s compiled parts (bulk.py uses them).
 *
 * 1. `sha256_digests` + `hex_list`: the lowercase hex SHA-256 of every row of a Polars String
 *    column, as a list of Python strings (None for a null row). The first hashes without the
 *    GIL (bulk.py runs it on a thread beside the one making strings), the second makes them.
 * 2. `emails` and `mobile_ids`: the rules of rules.py for the ASCII rows of a Python list,
 *    normalized and hashed in one pass on every core (see their section below).
 *
 * Why it exists: `hash_many` must hand back a list of Python strings, and issue 3 asks for it
 * at 3x the spec's naive loop. Through Polars that is the polars-hash plugin (~140 ns a row on
 * one core: Rust `sha2` and hex formatting) and `Series.to_list` (~70 ns a row); OpenSSL hashes
 * a short row in ~50 ns with the CPU's SHA extensions. Measured by `make bench` on a million
 * messy emails (2 cores): 3.4-4.4 M/s through Polars and the plugin, 6.5-6.8 M/s with `emails`.
 *
 * Optional: without a C compiler or OpenSSL's headers setup.py skips it, and bulk.py hashes
 * with the polars-hash plugin instead. The tests run every bulk case both ways and hold both
 * equal to the per-item reference.
 *
 * The column arrives through the Arrow C stream interface (`Series.__arrow_c_stream__`), with
 * no copy: Polars exports String columns as Arrow `string_view` ("vu"), the only layout taken.
 * https://arrow.apache.org/docs/format/CDataInterface.html
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 but kept: the EVP interface measured
 * ~75 ns a short row against ~50 (it dispatches through a provider on every call). */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include "../_arrow.h" /* the Arrow C data interface's structures */

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

static void
sha256(const unsigned char *text, size_t size, unsigned char *digest)
{
    SHA256_CTX context;
    SHA256_Init(&context);
    SHA256_Update(&context, text, size);
    SHA256_Final(digest, &context);
}

/* A new str of the digest in lowercase hex. */
static PyObject *
hex_str(const unsigned char *digest)
{
    PyObject *item = PyUnicode_New(64, 127);
    if (item != NULL) {
        Py_UCS1 *hex = PyUnicode_1BYTE_DATA(item);
        for (int k = 0; k < 32; k++)
            memcpy(hex + 2 * k, HEX_PAIRS + 2 * digest[k], 2);
    }
    return item;
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
        view_text(array, row, &text, &size);
        sha256(text, size, record + 1);
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
        PyObject *item = record[0] ? hex_str(record + 1) : Py_NewRef(Py_None);
        if (item == NULL) {
            Py_CLEAR(out); /* rows not yet filled are NULL: fine for a list being freed */
            break;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

/* --- ASCII emails and mobile ids: `rules.py`, normalized and hashed in one pass ---------------
 *
 * `hash_many` hands the Python list of values to `emails` or `mobile_ids`. A row that is a str
 * of ASCII text (nearly every row of a real export) is done here as `rules.normalize` does it:
 * for ASCII text NFC changes nothing and Unicode's whitespace is ASCII_WHITESPACE. Any other
 * row (non-ASCII, not a str, longer than MAX_TEXT) is "deferred": its index is returned and
 * `bulk.py` settles it on the Polars path. The property tests hold both equal to the reference.
 * The rows are decided (trim, lowercase, check, SHA-256) without the GIL on up to one thread a
 * core, then the strings are made: ~110 ms a million messy emails on 2 cores, against ~150 ms
 * for the Polars path's CPU alone before its strings are made. */

enum { MAX_TEXT = 1024 }; /* longer rows are deferred: no email or mobile id is this long */
enum { LOCAL_AS_IS = 0, LOCAL_GMAIL = 1, LOCAL_PLUS_TAG = 2 }; /* emails' `local_rule` */

static int
is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r'); /* ASCII_WHITESPACE: \t \n \v \f \r space */
}

static int
is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* A new str of text[:size], lowercased. */
static PyObject *
lowercased(const unsigned char *text, size_t size)
{
    PyObject *item = PyUnicode_New((Py_ssize_t)size, 127);
    if (item != NULL) {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(item);
        for (size_t i = 0; i < size; i++)
            out[i] = lower(text[i]);
    }
    return item;
}

/* The row's ASCII text, trimmed: 1; 0 when it is to be deferred. */
static int
ascii_text(PyObject *value, const unsigned char **text, size_t *size)
{
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value))
        return 0;
    const unsigned char *start = PyUnicode_1BYTE_DATA(value);
    size_t length = (size_t)PyUnicode_GET_LENGTH(value);
    while (length > 0 && is_space(start[0]))
        start++, length--;
    while (length > 0 && is_space(start[length - 1]))
        length--;
    *text = start;
    *size = length;
    return length <= MAX_TEXT;
}

static int
is_prehashed(const unsigned char *text, size_t size)
{
    if (size != 64)
        return 0;
    for (size_t i = 0; i < size; i++)
        if (!is_hex(text[i]))
            return 0;
    return 1;
}

/* `rules._email` of trimmed, non-empty ASCII text into `out`: its size, or 0 when invalid. */
static size_t
normalize_email(const unsigned char *text, size_t size, int local_rule, unsigned char *out)
{
    size_t n = 0, at = 0, ats = 0;
    for (size_t i = 0; i < size; i++) {
        unsigned char c = lower(text[i]);
        if (is_space(c)) {
            if (local_rule == LOCAL_GMAIL)
                continue; /* Google removes whitespace, inside too */
            return 0;
        }
        if (c == '@')
            at = n, ats++;
        out[n++] = c;
    }
    if (ats != 1 || at == 0)
        return 0;
    const unsigned char *domain = out + at + 1;
    size_t domain_size = n - at - 1, dots = 0;
    for (size_t i = 0; i < domain_size; i++) {
        if (domain[i] != '.')
            continue;
        if (i == 0 || i + 1 == domain_size || domain[i - 1] == '.')
            return 0; /* an empty label */
        dots++;
    }
    if (dots == 0)
        return 0;
    int gmail = (domain_size == 9 && memcmp(domain, "gmail.com", 9) == 0) ||
                (domain_size == 14 && memcmp(domain, "googlemail.com", 14) == 0);
    size_t local = at;
    if (local_rule == LOCAL_GMAIL && gmail) { /* no dots, no +tag */
        local = 0;
        for (size_t i = 0; i < at && out[i] != '+'; i++)
            if (out[i] != '.')
                out[local++] = out[i];
    }
    else if (local_rule == LOCAL_PLUS_TAG) { /* no +tag */
        const unsigned char *plus = memchr(out, '+', at);
        local = plus ? (size_t)(plus - out) : at;
    }
    if (local == 0)
        return 0;
    memmove(out + local, out + at, domain_size + 1);
    return local + domain_size + 1;
}

/* `rules._mobile_id` of trimmed, non-empty ASCII text: 1 when it is a usable UUID. */
static int
is_mobile_id(const unsigned char *text, size_t size)
{
    if (size != 36)
        return 0;
    int zero = 1;
    for (size_t i = 0; i < size; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? text[i] != '-' : !is_hex(text[i]))
            return 0;
        zero &= dash || text[i] == '0';
    }
    return !zero;
}

enum { EMAIL = 0, MOBILE_ID = 1 };

struct Rule {
    int field;      /* EMAIL or MOBILE_ID */
    int local_rule; /* emails: LOCAL_AS_IS, LOCAL_GMAIL or LOCAL_PLUS_TAG */
};

/* How a row ends (a Row's `status`), decided without the GIL. */
enum { DROP = 0, DIGEST = 1, DEFER = 2, PREHASHED = 3 };

struct Row {
    unsigned char status;
    unsigned char digest[32]; /* when DIGEST */
};

/* The row's status (and digest). Reads the str's own bytes only: no GIL needed while the
 * caller holds a reference to it. PREHASHED: the trimmed text is sent, lowercased. */
static void
decide(PyObject *value, const struct Rule *rule, struct Row *row)
{
    const unsigned char *text;
    size_t size;
    unsigned char buffer[MAX_TEXT];
    row->status = DROP;
    if (value == Py_None)
        return;
    if (!ascii_text(value, &text, &size)) {
        row->status = DEFER;
        return;
    }
    if (size == 0)
        return;
    if (is_prehashed(text, size)) {
        row->status = PREHASHED; /* already a digest: never hashed twice */
        return;
    }
    if (rule->field == EMAIL) {
        size_t n = normalize_email(text, size, rule->local_rule, buffer);
        if (n > 0) {
            sha256(buffer, n, row->digest);
            row->status = DIGEST;
        }
        return;
    }
    if (!is_mobile_id(text, size))
        return;
    for (size_t i = 0; i < size; i++)
        buffer[i] = lower(text[i]);
    sha256(buffer, size, row->digest);
    row->status = DIGEST;
}

struct Share { /* one thread's part of the rows */
    PyObject **items;
    struct Row *rows;
    Py_ssize_t start, stop;
    const struct Rule *rule;
};

static void *
decide_share(void *argument)
{
    struct Share *share = argument;
    for (Py_ssize_t i = share->start; i < share->stop; i++)
        decide(share->items[i], share->rule, &share->rows[i]);
    return NULL;
}

enum { MAX_THREADS = 4, ROWS_A_THREAD = 8192 };

/* Every row decided, the GIL released, on up to MAX_THREADS threads (one per core). */
static void
decide_all(PyObject **items, struct Row *rows, Py_ssize_t size, const struct Rule *rule)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN); /* -1 when it cannot tell */
    Py_ssize_t threads = size / ROWS_A_THREAD;
    threads = threads > cores ? cores : threads;
    threads = threads > MAX_THREADS ? MAX_THREADS : threads;
    threads = threads < 1 ? 1 : threads;
    struct Share shares[MAX_THREADS];
    pthread_t helpers[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t t = 0; t < threads; t++) {
        shares[t] = (struct Share){items, rows, size * t / threads, size * (t + 1) / threads,
                                   rule};
        /* Share 0 is this thread's; a helper that cannot start is done here too. */
        if (t > 0)
            started[t] = pthread_create(&helpers[t], NULL, decide_share, &shares[t]) == 0;
    }
    decide_share(&shares[0]);
    for (Py_ssize_t t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(helpers[t], NULL);
        else
            decide_share(&shares[t]);
    }
    Py_END_ALLOW_THREADS
}

/* What is sent for a decided row: a new str, or a new reference to None. */
static PyObject *
sent_for(PyObject *value, const struct Row *row, const struct Rule *rule)
{
    const unsigned char *text;
    size_t size;
    if (row->status == DIGEST)
        return hex_str(row->digest);
    if (row->status == PREHASHED) {
        ascii_text(value, &text, &size);
        return lowercased(text, size);
    }
    return Py_NewRef(Py_None);
}

static int
append_index(PyObject *list, Py_ssize_t index)
{
    PyObject *number = PyLong_FromSsize_t(index);
    int failed = number == NULL || PyList_Append(list, number) < 0;
    Py_XDECREF(number);
    return failed ? -1 : 0;
}

/* The list of what is sent for each value (None where dropped or deferred) and the list of
 * the deferred rows' indices. The values are held (a copy of the list's items, each with a
 * reference) while the rows are decided without the GIL. */
static PyObject *
normalize_all(PyObject *values, const struct Rule *rule)
{
    if (!PyList_CheckExact(values) && !PyTuple_CheckExact(values))
        return PyErr_Format(PyExc_TypeError, "the values must be a list or a tuple");
    Py_ssize_t size = PySequence_Fast_GET_SIZE(values);
    PyObject **items = PyMem_Malloc((size > 0 ? size : 1) * sizeof(PyObject *));
    struct Row *rows = PyMem_Malloc((size > 0 ? size : 1) * sizeof(struct Row));
    PyObject *sent = NULL, *deferred = NULL, *result = NULL;
    if (items == NULL || rows == NULL) {
        PyErr_NoMemory();
        goto free_buffers;
    }
    for (Py_ssize_t i = 0; i < size; i++)
        items[i] = Py_NewRef(PySequence_Fast_GET_ITEM(values, i));
    decide_all(items, rows, size, rule);
    sent = PyList_New(size);
    deferred = PyList_New(0);
    for (Py_ssize_t i = 0; sent != NULL && deferred != NULL && i < size; i++) {
        if (rows[i].status == DEFER && append_index(deferred, i) < 0)
            break;
        PyObject *item = sent_for(items[i], &rows[i], rule);
        if (item == NULL)
            break;
        PyList_SET_ITEM(sent, i, item);
    }
    if (!PyErr_Occurred())
        result = PyTuple_Pack(2, sent, deferred);
    Py_XDECREF(sent); /* rows not yet filled are NULL: fine for a list being freed */
    Py_XDECREF(deferred);
    for (Py_ssize_t i = 0; i < size; i++)
        Py_DECREF(items[i]);
free_buffers:
    PyMem_Free(items);
    PyMem_Free(rows);
    return result;
}

static PyObject *
emails(PyObject *module, PyObject *args)
{
    PyObject *values;
    struct Rule rule = {EMAIL, LOCAL_AS_IS};
    if (!PyArg_ParseTuple(args, "Oi:emails", &values, &rule.local_rule))
        return NULL;
    if (rule.local_rule < LOCAL_AS_IS || rule.local_rule > LOCAL_PLUS_TAG)
        return PyErr_Format(PyExc_ValueError, "unknown local_rule %d", rule.local_rule);
    return normalize_all(values, &rule);
}

static PyObject *
mobile_ids(PyObject *module, PyObject *values)
{
    struct Rule rule = {MOBILE_ID, LOCAL_AS_IS};
    return normalize_all(values, &rule);
}

static PyMethodDef methods[] = {
    {"sha256_digests", sha256_digests, METH_O,
     "sha256_digests(column) -> bytes: for each row of a Polars String column, 33 bytes: 1 "
     "when the row is not null (else 0, and 32 bytes of no meaning), then the SHA-256 of its "
     "UTF-8 text. The hashing runs without the GIL."},
    {"hex_list", hex_list, METH_O,
     "hex_list(digests) -> list[str | None]: sha256_digests' rows as lowercase hex, None for "
     "a null row."},
    {"emails", emails, METH_VARARGS,
     "emails(values, local_rule) -> (sent, deferred): rules._email and SHA-256 for the ASCII "
     "rows; local_rule 0 = as is, 1 = Google's gmail rewrite, 2 = TikTok's +tag."},
    {"mobile_ids", mobile_ids, METH_O,
     "mobile_ids(values) -> (sent, deferred): rules._mobile_id and SHA-256 for the ASCII rows "
     "(for the platforms that hash mobile ids)."},
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
