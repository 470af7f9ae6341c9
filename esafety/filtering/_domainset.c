/* A set of domain names as one flat buffer: 64-bit name hashes -> 32-bit values.
 *
 * Why C: deciding for a host walks its parent domains (a.b.example.com, b.example.com,
 * example.com, com). In Python that costs a slice, a hash and a dict look-up per label,
 * most of the decision engine's time (issue 4: >= 1,000,000 decisions/s). Here one call
 * hashes every parent in one pass over the bytes and probes the table without making a
 * Python string per label.
 *
 * Why a stable hash: Python's hash() is keyed per process, so a table keyed by it
 * cannot be written to a file and loaded by the DNS worker processes. The name hash is
 * FNV-1a 64 over the name's UTF-8 bytes taken from the LAST byte to the first, so the
 * hash of every suffix falls out of one backwards pass, then a MurmurHash3 finaliser so
 * the low bits index the table well. 0 marks an empty slot, so a hash of 0 becomes 1.
 * esafety/filtering/domainset.py holds the same algorithm in pure Python (the fallback,
 * and the reference the tests compare this file against).
 *
 * Buffer layout (little-endian; see domainset.py for the same in Python):
 *   header, 64 bytes: magic "ESDOMSET", u32 version, u32 hash id, u64 capacity
 *   (a power of two), u64 count, u64 checksum of the slots, u32 max value + 1 (0 when
 *   empty), 20 bytes zero;
 *   keys:   u64[capacity]   (0 = empty; linear probing from key & (capacity - 1))
 *   values: u32[capacity]
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if PY_BIG_ENDIAN
#error "the domain set file format is little-endian; this build is for little-endian machines"
#endif

#define MAGIC "ESDOMSET"
#define VERSION 1u
#define HASH_ID 1u /* FNV-1a 64, bytes last to first, MurmurHash3 fmix64 */
#define HEADER 64
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t
fnv_step(uint64_t h, unsigned char byte)
{
    return (h ^ byte) * FNV_PRIME;
}

static inline uint64_t
finish(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static uint64_t
hash_bytes(const unsigned char *data, Py_ssize_t size)
{
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t i = size; i > 0; i--)
        h = fnv_step(h, data[i - 1]);
    return finish(h);
}

static uint64_t
checksum(const unsigned char *data, Py_ssize_t size)
{
    /* Catches a truncated or scribbled file at load; not a security measure. */
    uint64_t h = FNV_OFFSET ^ (uint64_t)size, word;
    Py_ssize_t i = 0;
    for (; i + 8 <= size; i += 8) {
        memcpy(&word, data + i, 8);
        h = (h ^ word) * FNV_PRIME;
        h ^= h >> 29;
    }
    for (; i < size; i++)
        h = fnv_step(h, data[i]);
    return finish(h);
}

static inline uint64_t
get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t
get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

typedef struct {
    PyObject_HEAD
    Py_buffer view;   /* the whole buffer, header included; held while the set lives */
    const unsigned char *keys;
    const unsigned char *values;
    uint64_t mask;    /* capacity - 1 */
    uint64_t count;
} DomainSetObject;

static PyTypeObject DomainSetType;

/* The slot holding key, or -1. */
static inline int64_t
find(const DomainSetObject *self, uint64_t key)
{
    uint64_t slot = key & self->mask;
    for (;;) {
        uint64_t here = get64(self->keys + slot * 8);
        if (here == key)
            return (int64_t)slot;
        if (here == 0)
            return -1;
        slot = (slot + 1) & self->mask;
    }
}

/* Name bytes of a str (UTF-8), with the length in code points for offsets. */
static const unsigned char *
name_bytes(PyObject *name, Py_ssize_t *size)
{
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "a domain name must be str, not %.100s",
                     Py_TYPE(name)->tp_name);
        return NULL;
    }
    if (PyUnicode_IS_ASCII(name)) {
        *size = PyUnicode_GET_LENGTH(name);
        return (const unsigned char *)PyUnicode_DATA(name);
    }
    return (const unsigned char *)PyUnicode_AsUTF8AndSize(name, size);
}

static PyObject *
hash_name(PyObject *module, PyObject *name)
{
    Py_ssize_t size;
    const unsigned char *data = name_bytes(name, &size);
    if (data == NULL)
        return NULL;
    return PyLong_FromUnsignedLongLong(hash_bytes(data, size));
}

static DomainSetObject *
wrap(PyObject *buffer)
{
    /* Checks the header and the checksum; the set keeps the buffer exported. */
    DomainSetObject *self = PyObject_New(DomainSetObject, &DomainSetType);
    if (self == NULL)
        return NULL;
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_SIMPLE) < 0) {
        self->view.obj = NULL;
        Py_DECREF(self);
        return NULL;
    }
    const unsigned char *data = self->view.buf;
    Py_ssize_t size = self->view.len;
    const char *fault = NULL;
    uint64_t capacity = 0, count = 0;
    if (size < HEADER || memcmp(data, MAGIC, 8) != 0) {
        fault = "it does not start with the domain-set header (not a domain-set file, "
                "or an empty or truncated one)";
    }
    else if (get32(data + 8) != VERSION) {
        fault = "it is written in another format version; compile the lists again";
    }
    else if (get32(data + 12) != HASH_ID) {
        fault = "it uses another name hash; compile the lists again";
    }
    else {
        capacity = get64(data + 16);
        count = get64(data + 24);
        if (capacity < 8 || capacity > ((uint64_t)1 << 40) ||
            (capacity & (capacity - 1)) != 0 || count >= capacity) {
            fault = "its header gives an impossible table size";
        }
        else if ((uint64_t)size != HEADER + capacity * 12) {
            fault = "its length does not match its header (truncated or padded)";
        }
        else if (checksum(data + HEADER, size - HEADER) != get64(data + 32)) {
            fault = "its checksum does not match (the file is damaged)";
        }
    }
    if (fault != NULL) {
        PyErr_Format(PyExc_ValueError, "cannot load the domain set: %s", fault);
        Py_DECREF(self);
        return NULL;
    }
    self->keys = data + HEADER;
    self->values = data + HEADER + capacity * 8;
    self->mask = capacity - 1;
    self->count = count;
    return self;
}

static PyObject *
DomainSet_from_buffer(PyObject *cls, PyObject *buffer)
{
    return (PyObject *)wrap(buffer);
}

/* Puts key -> value in an empty-initialised table; 1 if the key was new. */
static int
put(unsigned char *keys, unsigned char *values, uint64_t mask, PyObject *key_object,
    PyObject *value_object, uint32_t *limit)
{
    uint64_t key = PyLong_AsUnsignedLongLong(key_object);
    if (key == (uint64_t)-1 && PyErr_Occurred())
        return -1;
    unsigned long value = PyLong_AsUnsignedLong(value_object);
    if (value == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (key == 0 || value >= 0xFFFFFFFFUL) {
        PyErr_Format(PyExc_ValueError,
                     "build(): key must be a non-zero name hash and value below 2**32 - 1 "
                     "(got key %llu, value %lu)", (unsigned long long)key, value);
        return -1;
    }
    int added = 0;
    uint64_t slot = key & mask;
    for (;;) {
        uint64_t here = get64(keys + slot * 8);
        if (here == 0) {
            memcpy(keys + slot * 8, &key, 8);
            added = 1;
            break;
        }
        if (here == key)
            break; /* a repeated key keeps its last value, as a dict would */
        slot = (slot + 1) & mask;
    }
    uint32_t value32 = (uint32_t)value;
    memcpy(values + slot * 4, &value32, 4);
    if (value32 + 1 > *limit)
        *limit = value32 + 1;
    return added;
}

static PyObject *
DomainSet_build(PyObject *cls, PyObject *items)
{
    /* items: a dict {key: value} (walked in place: no copy of 2 million pairs) or an
     * iterable of (key, value); keys come from hash_name. */
    PyObject *seq = NULL;
    Py_ssize_t n;
    if (PyDict_Check(items)) {
        n = PyDict_GET_SIZE(items);
    }
    else {
        seq = PySequence_Fast(items, "build() needs a dict or an iterable of (key, value) pairs");
        if (seq == NULL)
            return NULL;
        n = PySequence_Fast_GET_SIZE(seq);
    }
    uint64_t capacity = 8;
    while (capacity * 5 < (uint64_t)n * 8) /* load factor at most 5/8 */
        capacity <<= 1;
    PyObject *buffer = PyBytes_FromStringAndSize(NULL, HEADER + capacity * 12);
    if (buffer == NULL) {
        Py_XDECREF(seq);
        return NULL;
    }
    unsigned char *data = (unsigned char *)PyBytes_AS_STRING(buffer);
    memset(data, 0, HEADER + capacity * 12);
    unsigned char *keys = data + HEADER, *values = keys + capacity * 8;
    uint64_t mask = capacity - 1, count = 0;
    uint32_t limit = 0;
    int added;
    if (seq == NULL) {
        Py_ssize_t position = 0;
        PyObject *key, *value;
        while (PyDict_Next(items, &position, &key, &value)) {
            if ((added = put(keys, values, mask, key, value, &limit)) < 0)
                goto fail;
            count += added;
        }
    }
    else {
        PyObject **pairs = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *pair = pairs[i];
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "build() needs (key, value) pairs");
                goto fail;
            }
            added = put(keys, values, mask, PyTuple_GET_ITEM(pair, 0),
                        PyTuple_GET_ITEM(pair, 1), &limit);
            if (added < 0)
                goto fail;
            count += added;
        }
        Py_DECREF(seq);
    }
    memcpy(data, MAGIC, 8);
    uint32_t version = VERSION, hash_id = HASH_ID;
    memcpy(data + 8, &version, 4);
    memcpy(data + 12, &hash_id, 4);
    memcpy(data + 16, &capacity, 8);
    memcpy(data + 24, &count, 8);
    uint64_t sum = checksum(keys, capacity * 12);
    memcpy(data + 32, &sum, 8);
    memcpy(data + 40, &limit, 4);
    PyObject *result = (PyObject *)wrap(buffer);
    Py_DECREF(buffer);
    return result;
fail:
    Py_XDECREF(seq);
    Py_DECREF(buffer);
    return NULL;
}

static PyObject *
DomainSet_get(DomainSetObject *self, PyObject *key_object)
{
    uint64_t key = PyLong_AsUnsignedLongLong(key_object);
    if (key == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    int64_t slot = key ? find(self, key) : -1;
    if (slot < 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(get32(self->values + slot * 4));
}

#define MAX_PARENTS 128

/* Appends (offset, value) for each key of keys[] (walked last to first) found in self. */
static PyObject *
probe(const DomainSetObject *self, const uint64_t *keys, const Py_ssize_t *offsets,
      int parents)
{
    PyObject *found = NULL;
    for (int p = parents - 1; p >= 0; p--) {
        int64_t slot = find(self, keys[p]);
        if (slot < 0)
            continue;
        if (found == NULL && (found = PyList_New(0)) == NULL)
            return NULL;
        PyObject *pair = Py_BuildValue("(nk)", offsets[p],
                                       (unsigned long)get32(self->values + slot * 4));
        if (pair == NULL || PyList_Append(found, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(found);
            return NULL;
        }
        Py_DECREF(pair);
    }
    if (found == NULL)
        return PyTuple_New(0);
    PyObject *result = PyList_AsTuple(found);
    Py_DECREF(found);
    return result;
}

/* Every parent of host at a label boundary, as keys and offsets (code points); -1 on
 * error. An IP address (last character a digit or ']', or any ':') is looked up whole. */
static int
parents_of(PyObject *host, uint64_t *keys, Py_ssize_t *offsets)
{
    Py_ssize_t size;
    const unsigned char *data = name_bytes(host, &size);
    if (data == NULL)
        return -1;
    if (size == 0)
        return 0;
    int ascii = PyUnicode_IS_ASCII(host);
    Py_ssize_t chars = PyUnicode_GET_LENGTH(host);
    unsigned char last = data[size - 1];
    int whole_only = (last >= '0' && last <= '9') || last == ']' ||
                     memchr(data, ':', size) != NULL;
    int parents = 0;
    uint64_t h = FNV_OFFSET;
    Py_ssize_t seen = 0; /* code points passed, walking backwards */
    for (Py_ssize_t i = size; i >= 0; i--) {
        if (i == 0 || (!whole_only && data[i - 1] == '.')) {
            if (parents == MAX_PARENTS) {
                /* No valid name has this many labels (253 octets at most). */
                PyErr_SetString(PyExc_ValueError,
                                "cannot look up a host with more than 127 labels");
                return -1;
            }
            keys[parents] = finish(h);
            offsets[parents] = ascii ? i : chars - seen;
            parents++;
        }
        if (i > 0) {
            h = fnv_step(h, data[i - 1]);
            if ((data[i - 1] & 0xC0) != 0x80)
                seen++;
        }
    }
    return parents;
}

static inline void
prefetch(const DomainSetObject *self, const uint64_t *keys, int parents)
{
    /* Start every probe's cache miss at once, so they overlap. */
    for (int p = 0; p < parents; p++)
        __builtin_prefetch(self->keys + (keys[p] & self->mask) * 8);
}

static PyObject *
DomainSet_match(DomainSetObject *self, PyObject *host)
{
    /* ((offset, value), ...) for host[offset:] at each label boundary that the set holds,
     * most specific (smallest offset) first; () when none (the common case). */
    uint64_t keys[MAX_PARENTS];
    Py_ssize_t offsets[MAX_PARENTS];
    int parents = parents_of(host, keys, offsets);
    if (parents < 0)
        return NULL;
    prefetch(self, keys, parents);
    return probe(self, keys, offsets, parents);
}

static PyObject *
match_both(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* match_both(first, second, host): None when neither set holds a parent of host,
     * else (first.match(host), second.match(host)); one pass over the name. */
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "match_both(first, second, host) takes 3 arguments");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &DomainSetType) ||
        !PyObject_TypeCheck(args[1], &DomainSetType)) {
        PyErr_SetString(PyExc_TypeError, "match_both() needs two DomainSet objects");
        return NULL;
    }
    const DomainSetObject *first = (DomainSetObject *)args[0];
    const DomainSetObject *second = (DomainSetObject *)args[1];
    uint64_t keys[MAX_PARENTS];
    Py_ssize_t offsets[MAX_PARENTS];
    int parents = parents_of(args[2], keys, offsets);
    if (parents < 0)
        return NULL;
    prefetch(first, keys, parents);
    int any = 0;
    for (int p = 0; p < parents && !any; p++)
        any = find(first, keys[p]) >= 0 || find(second, keys[p]) >= 0;
    if (!any)
        Py_RETURN_NONE;
    PyObject *a = probe(first, keys, offsets, parents);
    if (a == NULL)
        return NULL;
    PyObject *b = probe(second, keys, offsets, parents);
    if (b == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, a, b);
    Py_DECREF(a);
    Py_DECREF(b);
    return result;
}

static PyObject *
DomainSet_to_bytes(DomainSetObject *self, PyObject *unused)
{
    if (PyBytes_CheckExact(self->view.obj)) {
        Py_INCREF(self->view.obj);
        return self->view.obj;
    }
    return PyBytes_FromStringAndSize(self->view.buf, self->view.len);
}

static Py_ssize_t
DomainSet_len(DomainSetObject *self)
{
    return (Py_ssize_t)self->count;
}

static PyObject *
DomainSet_capacity(DomainSetObject *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->mask + 1);
}

static PyObject *
DomainSet_nbytes(DomainSetObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->view.len);
}

static PyObject *
DomainSet_value_limit(DomainSetObject *self, void *closure)
{
    return PyLong_FromUnsignedLong(get32((const unsigned char *)self->view.buf + 40));
}

static void
DomainSet_dealloc(DomainSetObject *self)
{
    if (self->view.obj != NULL)
        PyBuffer_Release(&self->view);
    PyObject_Free(self);
}

static PyMethodDef DomainSet_methods[] = {
    {"build", (PyCFunction)DomainSet_build, METH_O | METH_CLASS,
     "build(pairs) -> DomainSet: a set from a dict or (key, value) pairs of name hashes."},
    {"from_buffer", (PyCFunction)DomainSet_from_buffer, METH_O | METH_CLASS,
     "from_buffer(buffer) -> DomainSet: a set over a buffer from to_bytes() (checked)."},
    {"get", (PyCFunction)DomainSet_get, METH_O, "get(key) -> value or None."},
    {"match", (PyCFunction)DomainSet_match, METH_O,
     "match(host) -> ((offset, value), ...) for each listed parent, most specific first."},
    {"to_bytes", (PyCFunction)DomainSet_to_bytes, METH_NOARGS,
     "to_bytes() -> bytes: the whole set, header included."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef DomainSet_getset[] = {
    {"capacity", (getter)DomainSet_capacity, NULL, "slots in the table", NULL},
    {"nbytes", (getter)DomainSet_nbytes, NULL, "size of the buffer", NULL},
    {"value_limit", (getter)DomainSet_value_limit, NULL, "largest value + 1 (0 if empty)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods DomainSet_as_sequence = {
    .sq_length = (lenfunc)DomainSet_len,
};

static PyTypeObject DomainSetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "esafety.filtering._domainset.DomainSet",
    .tp_basicsize = sizeof(DomainSetObject),
    .tp_dealloc = (destructor)DomainSet_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Domain-name hashes mapped to list-set ids, in one flat buffer.",
    .tp_methods = DomainSet_methods,
    .tp_getset = DomainSet_getset,
    .tp_as_sequence = &DomainSet_as_sequence,
};

static PyMethodDef module_methods[] = {
    {"hash_name", (PyCFunction)hash_name, METH_O,
     "hash_name(name) -> int: the stable 64-bit key of a normalised name."},
    {"match_both", (PyCFunction)(void (*)(void))match_both, METH_FASTCALL,
     "match_both(first, second, host) -> None or (first.match(host), second.match(host))."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_domainset",
    "Domain-name hash table in one flat buffer (see domainset.py).", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__domainset(void)
{
    if (PyType_Ready(&DomainSetType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&DomainSetType);
    if (PyModule_AddObject(m, "DomainSet", (PyObject *)&DomainSetType) < 0) {
        Py_DECREF(&DomainSetType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "HASH_ID", HASH_ID) < 0 ||
        PyModule_AddIntConstant(m, "VERSION", VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
