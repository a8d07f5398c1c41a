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
 *
 * Non-ASCII emails (accented names, IDN domains written in Unicode) are not deferred as a rule
 * (a fifth of the rows of some exports: the Polars path and the reference made such a mix ~1.1x
 * the naive loop). The reference's Unicode steps are CPython's own here: while the list is read,
 * with the GIL, `read_item` takes `unicodedata.normalize("NFC")` of the row (skipped for a
 * Latin-1 str, which NFC leaves as it is), then, without the GIL, `decide` trims Unicode's
 * White_Space (text.py's WHITESPACE) and lowercases with Py_UNICODE_TOLOWER, the mapping
 * `str.lower` uses for every character but two: İ (U+0130, lowercased to two code points) and Σ
 * (U+03A3, final sigma), for which the row is lowercased by `str.lower` itself, with the GIL.
 * The lowercased text is UTF-8 whose only bytes that matter to the email rules are ASCII ones
 * (`@`, `.`, `+`, whitespace: UTF-8 never puts an ASCII byte inside a multi-byte character),
 * so it is checked and hashed as the ASCII rows are. A row still holding Unicode whitespace
 * inside (Google removes it, the others refuse it), or a lone surrogate (not UTF-8), is deferred.
 * The tests hold every assigned code point, and random Unicode addresses, to the reference.
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

/* Unicode's White_Space (text.py's WHITESPACE): the ASCII ones and these. */
static int
is_unicode_space(Py_UCS4 c)
{
    if (c < 128)
        return is_space((unsigned char)c);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
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

static PyObject *NORMALIZE; /* unicodedata.normalize (PyInit__digest sets these) */
static PyObject *NFC;       /* "NFC" */
static PyObject *LOWER;     /* "lower" */

/* What `read_item` finds in a non-ASCII email's NFC text (see `scan`). */
enum { PLAIN = 0, ALL_ASCII = 1, SPACE_INSIDE = 2, SURROGATE = 4, CASE_BY_PYTHON = 8 };

/* text[*start:*stop] trimmed of Unicode whitespace, and what is in that part (a PLAIN or of
 * the other flags). CASE_BY_PYTHON: İ (U+0130, two code points lowercased) or Σ (U+03A3,
 * final sigma or not by its neighbours), the only characters whose `str.lower` is not
 * Py_UNICODE_TOLOWER's one-to-one mapping. */
static int
scan(PyObject *text, Py_ssize_t *start, Py_ssize_t *stop)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t first = 0, last = PyUnicode_GET_LENGTH(text);
    while (first < last && is_unicode_space(PyUnicode_READ(kind, data, first)))
        first++;
    while (last > first && is_unicode_space(PyUnicode_READ(kind, data, last - 1)))
        last--;
    int found = ALL_ASCII;
    for (Py_ssize_t i = first; i < last; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128)
            continue;
        found &= ~ALL_ASCII;
        if (is_unicode_space(c))
            found |= SPACE_INSIDE;
        else if (c >= 0xD800 && c <= 0xDFFF)
            found |= SURROGATE;
        else if (c == 0x130 || c == 0x3A3)
            found |= CASE_BY_PYTHON;
    }
    *start = first;
    *stop = last;
    return found;
}

/* `str.lower` of text[start:stop] as UTF-8 into `out` (MAX_TEXT bytes): its size, or 0 when
 * it does not fit. No GIL needed: Py_UNICODE_TOLOWER reads CPython's static tables only, and
 * `scan` has ruled out the characters it maps otherwise than `str.lower`. */
static size_t
lowered_utf8(PyObject *text, Py_ssize_t start, Py_ssize_t stop, unsigned char *out)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    size_t n = 0;
    for (Py_ssize_t i = start; i < stop; i++) {
        Py_UCS4 c = Py_UNICODE_TOLOWER(PyUnicode_READ(kind, data, i));
        if (n + 4 > MAX_TEXT)
            return 0;
        if (c < 0x80)
            out[n++] = (unsigned char)c;
        else if (c < 0x800) {
            out[n++] = (unsigned char)(0xC0 | (c >> 6));
            out[n++] = (unsigned char)(0x80 | (c & 0x3F));
        }
        else if (c < 0x10000) {
            out[n++] = (unsigned char)(0xE0 | (c >> 12));
            out[n++] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            out[n++] = (unsigned char)(0x80 | (c & 0x3F));
        }
        else {
            out[n++] = (unsigned char)(0xF0 | (c >> 18));
            out[n++] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
            out[n++] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            out[n++] = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    return n;
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
enum { DROP = 0, DIGEST = 1, DEFER = 2, PREHASHED = 3, PREPARED = 4 };

struct Row {
    unsigned char status;
    unsigned char digest[32]; /* when DIGEST */
};

/* Where a PREPARED row's text is in its (NFC) str: the part left by the trim. */
struct Text {
    Py_ssize_t start, stop;
};

/* The row's status (and digest). Reads the str's own bytes only: no GIL needed while the
 * caller holds a reference to it. PREHASHED: the trimmed text is sent, lowercased. A PREPARED
 * row (a non-ASCII email, see `prepare`) is its UTF-8 `prepared`, cleaned and lowercased. */
static void
decide(PyObject *value, const struct Rule *rule, struct Row *row, const struct Text *prepared)
{
    const unsigned char *text;
    size_t size;
    unsigned char buffer[MAX_TEXT];
    if (row->status == PREPARED) {
        /* Never empty nor pre-hashed: it holds non-ASCII text. */
        unsigned char utf8[MAX_TEXT];
        size_t n = lowered_utf8(value, prepared->start, prepared->stop, utf8);
        row->status = n == 0 ? DEFER : DROP; /* too long for the buffer: the reference */
        n = n == 0 ? 0 : normalize_email(utf8, n, rule->local_rule, buffer);
        if (n > 0) {
            sha256(buffer, n, row->digest);
            row->status = DIGEST;
        }
        return;
    }
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
    const struct Text *texts;
    Py_ssize_t start, stop;
    const struct Rule *rule;
};

static void *
decide_share(void *argument)
{
    struct Share *share = argument;
    for (Py_ssize_t i = share->start; i < share->stop; i++)
        decide(share->items[i], share->rule, &share->rows[i], &share->texts[i]);
    return NULL;
}

enum { MAX_THREADS = 4, ROWS_A_THREAD = 8192 };

/* Every row decided, the GIL released, on up to MAX_THREADS threads (one per core). */
static void
decide_all(PyObject **items, struct Row *rows, const struct Text *texts, Py_ssize_t size,
           const struct Rule *rule)
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
        shares[t] = (struct Share){items, rows, texts, size * t / threads,
                                   size * (t + 1) / threads, rule};
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

/* `read_item` for a non-ASCII email: a new reference, or NULL to defer the row. */
static PyObject *
prepared(PyObject *value, struct Row *row, struct Text *text)
{
    PyObject *args[2] = {NFC, value};
    /* Text of Latin-1 alone (a 1-byte str) is NFC as it is: every character below U+0300 is a
     * starter that NFC keeps and that composes with nothing before it. */
    PyObject *nfc = PyUnicode_KIND(value) == PyUnicode_1BYTE_KIND
                        ? Py_NewRef(value)
                        : PyObject_Vectorcall(NORMALIZE, args, 2, NULL);
    if (nfc == NULL)
        return NULL;
    int found = scan(nfc, &text->start, &text->stop);
    if (found & ALL_ASCII) {
        Py_SETREF(nfc, PyUnicode_Substring(nfc, text->start, text->stop));
        return nfc;
    }
    if (found & (SPACE_INSIDE | SURROGATE)) {
        Py_DECREF(nfc);
        return NULL;
    }
    if (found & CASE_BY_PYTHON) {
        Py_SETREF(nfc, PyUnicode_Substring(nfc, text->start, text->stop));
        if (nfc != NULL)
            Py_SETREF(nfc, PyObject_CallMethodNoArgs(nfc, LOWER));
        if (nfc == NULL)
            return NULL;
        /* Already lowercased: Py_UNICODE_TOLOWER leaves it as it is (a lowercase letter
         * maps to itself), so `decide` does it as any PREPARED row. */
        text->start = 0;
        text->stop = PyUnicode_GET_LENGTH(nfc);
    }
    row->status = PREPARED;
    return nfc;
}

/* A value of the list into `item` (a new reference) and its row's status before `decide`.
 * A non-ASCII email is made ready here, with the GIL (see the section's comment): its NFC text
 * by `unicodedata.normalize` (the value itself when already NFC), trimmed, is then either
 * - ASCII: `item` is that trimmed text, decided as any ASCII row;
 * - PREPARED (nearly all): `item` is the NFC text, `text` its trimmed part, lowercased and
 *   checked by `decide`, without the GIL;
 * - lowercased here by `str.lower` (İ, Σ, see `scan`): `item` is that, PREPARED whole;
 * - else (Unicode whitespace inside, lone surrogates, an error): `item` is the value, deferred
 *   (`decide` finds it non-ASCII). */
static void
read_item(PyObject *value, const struct Rule *rule, PyObject **item, struct Row *row,
          struct Text *text)
{
    row->status = DROP;
    *item = NULL;
    if (rule->field == EMAIL && PyUnicode_CheckExact(value) && !PyUnicode_IS_ASCII(value))
        *item = prepared(value, row, text);
    if (*item == NULL) {
        PyErr_Clear(); /* a failure defers the row: the reference settles it */
        *item = Py_NewRef(value);
    }
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
    struct Text *texts = PyMem_Malloc((size > 0 ? size : 1) * sizeof(struct Text));
    PyObject *sent = NULL, *deferred = NULL, *result = NULL;
    if (items == NULL || rows == NULL || texts == NULL) {
        PyErr_NoMemory();
        goto free_buffers;
    }
    for (Py_ssize_t i = 0; i < size; i++)
        read_item(PySequence_Fast_GET_ITEM(values, i), rule, &items[i], &rows[i], &texts[i]);
    decide_all(items, rows, texts, size, rule);
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
    PyMem_Free(texts);
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
    if (NORMALIZE == NULL) {
        PyObject *unicodedata = PyImport_ImportModule("unicodedata");
        if (unicodedata == NULL)
            return NULL;
        NORMALIZE = PyObject_GetAttrString(unicodedata, "normalize");
        Py_DECREF(unicodedata);
        NFC = PyUnicode_InternFromString("NFC");
        LOWER = PyUnicode_InternFromString("lower");
        if (NORMALIZE == NULL || NFC == NULL || LOWER == NULL)
            return NULL;
    }
    return PyModule_Create(&module);
}
