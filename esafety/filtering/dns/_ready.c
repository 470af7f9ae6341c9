/* The DNS filter's UDP fast path: ready answers given without running Python per datagram.
 *
 * Why C: a question asked again (the same name, type and options from a client whose
 * asker has not changed) is answered from the ready answers that the Python handler keeps
 * (esafety/filtering/dns/handler.py, "Ready answers"): the kept octets behind the new ID.
 * In Python that still costs an event-loop wakeup, a recvfrom and a sendto each making
 * Python objects, a dict look-up per client and per question, and a log entry turned into
 * columns later: about 24 microseconds of CPU an answer, where unbound spends about 10
 * (issue 4 "Figures"). Here one call reads up to 64 datagrams with recvmmsg, answers the
 * ready ones with sendmmsg, and only hands the rest to Python.
 *
 * The tables stay Python's: this file reads, never writes them, so there is one source of
 * truth and the Python path decides exactly as before. They are
 *   clients: dict, raw client address (4 or 16 octets) -> (until, replies, scope)
 *            until: float, time.time() clock, when this client's asker may change;
 *            replies: dict, the query without its ID -> a Ready tuple (handler.py):
 *              (records until [monotonic], answer without ID, notes, blocked, _, steady until
 *               [time.time()], TTL countdown or None);
 *            scope: the client's ClientScope, logged with each answer.
 * Once the kept octets' TTLs are due to tick down, an upstream answer is sent with its TTLs
 * counted down here (the countdown: stored at, expires at [monotonic], uint32 pairs of
 * place and stored TTL), byte for byte as CachedAnswer.body_at would, until it expires.
 * Each answer given here logs one (time, scope, note) record per note in a LogBuffer;
 * the decision log's thread takes them all at once and turns them into columns with
 * pyarrow (esafety/filtering/log.py), so no Python object is made per answer.
 *
 * Everything runs holding the GIL (the tables are plain dicts), so LogBuffer.take() in
 * another thread sees either all of a batch or none of it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64
#define ID_OCTETS 2
#define HEADER_OCTETS 12

/* -- LogBuffer ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t capacity;
    Py_ssize_t count;
    double *times;
    PyObject **scopes; /* strong references */
    PyObject **notes;  /* strong references */
    unsigned long long dropped;
} LogBuffer;

static void
LogBuffer_release(LogBuffer *self)
{
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Py_CLEAR(self->scopes[i]);
        Py_CLEAR(self->notes[i]);
    }
    self->count = 0;
}

static int
LogBuffer_traverse(LogBuffer *self, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < self->count; i++) {
        Py_VISIT(self->scopes[i]);
        Py_VISIT(self->notes[i]);
    }
    return 0;
}

static int
LogBuffer_clear(LogBuffer *self)
{
    LogBuffer_release(self);
    return 0;
}

static void
LogBuffer_dealloc(LogBuffer *self)
{
    PyObject_GC_UnTrack(self);
    LogBuffer_release(self);
    PyMem_Free(self->times);
    PyMem_Free(self->scopes);
    PyMem_Free(self->notes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
LogBuffer_init(LogBuffer *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"capacity", NULL};
    Py_ssize_t capacity;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n", keywords, &capacity))
        return -1;
    if (capacity < 1 || capacity > (Py_ssize_t)1 << 28) {
        PyErr_SetString(PyExc_ValueError, "LogBuffer capacity must be 1 to 268435456");
        return -1;
    }
    if (self->times != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "LogBuffer is already initialised");
        return -1;
    }
    self->times = PyMem_Calloc((size_t)capacity, sizeof(double));
    self->scopes = PyMem_Calloc((size_t)capacity, sizeof(PyObject *));
    self->notes = PyMem_Calloc((size_t)capacity, sizeof(PyObject *));
    if (self->times == NULL || self->scopes == NULL || self->notes == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->capacity = capacity;
    return 0;
}

/* One record; a full buffer counts the loss (issue 4 §8: never silent). */
static inline void
LogBuffer_add(LogBuffer *self, double when, PyObject *scope, PyObject *note)
{
    if (self->count >= self->capacity) {
        self->dropped++;
        return;
    }
    Py_ssize_t i = self->count++;
    self->times[i] = when;
    Py_INCREF(scope);
    self->scopes[i] = scope;
    Py_INCREF(note);
    self->notes[i] = note;
}

/* Distinct objects in order of first use, and each record's number among them: the
 * decision log builds each column once per distinct scope or note and repeats it. */
static int
number_objects(PyObject **objects, Py_ssize_t count, int32_t *numbers, PyObject **distinct)
{
    size_t size = 16;
    while (size < (size_t)count * 2)
        size <<= 1;
    PyObject **keys = PyMem_Calloc(size, sizeof(PyObject *));
    int32_t *values = PyMem_Calloc(size, sizeof(int32_t));
    PyObject *list = PyList_New(0);
    if (keys == NULL || values == NULL || list == NULL) {
        PyMem_Free(keys);
        PyMem_Free(values);
        Py_XDECREF(list);
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = size - 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *object = objects[i];
        size_t slot = ((uintptr_t)object >> 4) * 0x9E3779B97F4A7C15ULL & mask;
        while (keys[slot] != NULL && keys[slot] != object)
            slot = (slot + 1) & mask;
        if (keys[slot] == NULL) {
            keys[slot] = object;
            values[slot] = (int32_t)PyList_GET_SIZE(list);
            if (PyList_Append(list, object) < 0) {
                PyMem_Free(keys);
                PyMem_Free(values);
                Py_DECREF(list);
                return -1;
            }
        }
        numbers[i] = values[slot];
    }
    PyMem_Free(keys);
    PyMem_Free(values);
    *distinct = list;
    return 0;
}

PyDoc_STRVAR(LogBuffer_take_doc,
"take() -> (times, scope_numbers, scopes, note_numbers, notes) | None\n\n"
"Everything recorded so far, emptying the buffer: float64 and int32 arrays as bytes\n"
"(native order), and the distinct scopes and notes they number. None when empty.");

static PyObject *
LogBuffer_take(LogBuffer *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t count = self->count;
    if (count == 0)
        Py_RETURN_NONE;
    PyObject *times = PyBytes_FromStringAndSize((const char *)self->times,
                                                count * (Py_ssize_t)sizeof(double));
    PyObject *scope_numbers = PyBytes_FromStringAndSize(NULL, count * 4);
    PyObject *note_numbers = PyBytes_FromStringAndSize(NULL, count * 4);
    PyObject *scopes = NULL, *notes = NULL, *result = NULL;
    if (times == NULL || scope_numbers == NULL || note_numbers == NULL)
        goto done;
    if (number_objects(self->scopes, count, (int32_t *)PyBytes_AS_STRING(scope_numbers),
                       &scopes) < 0)
        goto done;
    if (number_objects(self->notes, count, (int32_t *)PyBytes_AS_STRING(note_numbers),
                       &notes) < 0)
        goto done;
    result = PyTuple_Pack(5, times, scope_numbers, scopes, note_numbers, notes);
    if (result != NULL)
        LogBuffer_release(self);
done:
    Py_XDECREF(times);
    Py_XDECREF(scope_numbers);
    Py_XDECREF(note_numbers);
    Py_XDECREF(scopes);
    Py_XDECREF(notes);
    return result;
}

PyDoc_STRVAR(LogBuffer_discard_doc, "discard() -> int: empty the buffer unwritten (a crash).");

static PyObject *
LogBuffer_discard(LogBuffer *self, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t count = self->count;
    LogBuffer_release(self);
    return PyLong_FromSsize_t(count);
}

static PyObject *
LogBuffer_get_pending(LogBuffer *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->count);
}

static PyObject *
LogBuffer_get_dropped(LogBuffer *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->dropped);
}

static PyObject *
LogBuffer_get_capacity(LogBuffer *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->capacity);
}

static PyMethodDef LogBuffer_methods[] = {
    {"take", (PyCFunction)LogBuffer_take, METH_NOARGS, LogBuffer_take_doc},
    {"discard", (PyCFunction)LogBuffer_discard, METH_NOARGS, LogBuffer_discard_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef LogBuffer_getset[] = {
    {"pending", (getter)LogBuffer_get_pending, NULL, "records waiting to be taken", NULL},
    {"dropped", (getter)LogBuffer_get_dropped, NULL, "records refused: the buffer was full",
     NULL},
    {"capacity", (getter)LogBuffer_get_capacity, NULL, "records it holds at most", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LogBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "esafety.filtering.dns._ready.LogBuffer",
    .tp_doc = PyDoc_STR("LogBuffer(capacity): decisions of ready answers waiting for the log"),
    .tp_basicsize = sizeof(LogBuffer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LogBuffer_init,
    .tp_dealloc = (destructor)LogBuffer_dealloc,
    .tp_traverse = (traverseproc)LogBuffer_traverse,
    .tp_clear = (inquiry)LogBuffer_clear,
    .tp_methods = LogBuffer_methods,
    .tp_getset = LogBuffer_getset,
};

/* -- UdpFastPath --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int fd;
    Py_ssize_t message_size;
    char *buffers; /* BATCH * message_size */
    struct mmsghdr received[BATCH];
    struct iovec receive_iov[BATCH];
    struct sockaddr_storage addresses[BATCH];
    struct mmsghdr replies[BATCH];
    struct iovec reply_iov[BATCH][2];
    PyObject *tails[BATCH]; /* strong references while a batch is sent */
} UdpFastPath;

static void
UdpFastPath_dealloc(UdpFastPath *self)
{
    PyMem_Free(self->buffers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
UdpFastPath_init(UdpFastPath *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"fd", "message_size", NULL};
    int fd;
    Py_ssize_t message_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "in", keywords, &fd, &message_size))
        return -1;
    if (fd < 0 || message_size < HEADER_OCTETS || message_size > 65535) {
        PyErr_SetString(PyExc_ValueError, "UdpFastPath needs a socket and a size of 12 to 65535");
        return -1;
    }
    if (self->buffers != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "UdpFastPath is already initialised");
        return -1;
    }
    self->buffers = PyMem_Malloc((size_t)(BATCH * message_size));
    if (self->buffers == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->fd = fd;
    self->message_size = message_size;
    for (int i = 0; i < BATCH; i++) {
        self->receive_iov[i].iov_base = self->buffers + (size_t)i * (size_t)message_size;
        self->receive_iov[i].iov_len = (size_t)message_size;
    }
    return 0;
}

static double
clock_seconds(clockid_t which)
{
    struct timespec now;
    clock_gettime(which, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* The address as Python's socket module gives it: ("1.2.3.4", port) or
 * ("::1", port, flowinfo, scope_id), with "%interface" for a scoped IPv6 address. */
static PyObject *
address_tuple(const struct sockaddr_storage *address)
{
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
        return Py_BuildValue("(si)", text, ntohs(v4->sin_port));
    }
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    if (v6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE];
        size_t used = strlen(text);
        if (if_indextoname(v6->sin6_scope_id, name) != NULL)
            snprintf(text + used, sizeof(text) - used, "%%%s", name);
        else
            snprintf(text + used, sizeof(text) - used, "%%%u", v6->sin6_scope_id);
    }
    return Py_BuildValue("(siII)", text, ntohs(v6->sin6_port), ntohl(v6->sin6_flowinfo),
                         v6->sin6_scope_id);
}

static PyObject *
raw_address(const struct sockaddr_storage *address)
{
    if (address->ss_family == AF_INET)
        return PyBytes_FromStringAndSize(
            (const char *)&((const struct sockaddr_in *)address)->sin_addr, 4);
    return PyBytes_FromStringAndSize(
        (const char *)&((const struct sockaddr_in6 *)address)->sin6_addr, 16);
}

/* How a ready answer is sent, if it is. */
enum { NOT_READY, AS_KEPT, COUNTED_DOWN };

/* The ready answer for one datagram (borrowed references: the dicts are not changed while
 * this call runs) and how to send it; fills *scope with the client's scope and, for an
 * answer whose TTLs must be counted down, *age with the whole seconds since it was stored
 * and *places with where its TTLs sit. */
static int
ready_for(PyObject *clients, PyObject *raw, const char *data, Py_ssize_t length, double wall,
          double mono, PyObject **ready_out, PyObject **scope, long *age, PyObject **places)
{
    PyObject *client = PyDict_GetItemWithError(clients, raw);
    if (client == NULL || !PyTuple_CheckExact(client) || PyTuple_GET_SIZE(client) != 3)
        return NOT_READY;
    PyObject *until = PyTuple_GET_ITEM(client, 0);
    PyObject *replies = PyTuple_GET_ITEM(client, 1);
    if (!PyFloat_CheckExact(until) || !(wall < PyFloat_AS_DOUBLE(until)) ||
        !PyDict_CheckExact(replies))
        return NOT_READY;
    PyObject *key = PyBytes_FromStringAndSize(data + ID_OCTETS, length - ID_OCTETS);
    if (key == NULL)
        return NOT_READY;
    PyObject *ready = PyDict_GetItemWithError(replies, key);
    Py_DECREF(key);
    if (ready == NULL || !PyTuple_CheckExact(ready) || PyTuple_GET_SIZE(ready) < 7)
        return NOT_READY;
    PyObject *records_until = PyTuple_GET_ITEM(ready, 0);
    PyObject *tail = PyTuple_GET_ITEM(ready, 1);
    PyObject *notes = PyTuple_GET_ITEM(ready, 2);
    PyObject *steady = PyTuple_GET_ITEM(ready, 5);
    if (!PyFloat_CheckExact(records_until) || !PyFloat_CheckExact(steady) ||
        !(wall < PyFloat_AS_DOUBLE(steady)) || !PyBytes_CheckExact(tail) ||
        !PyTuple_CheckExact(notes))
        return NOT_READY;
    *ready_out = ready;
    *scope = PyTuple_GET_ITEM(client, 2);
    if (mono < PyFloat_AS_DOUBLE(records_until))
        return AS_KEPT;
    PyObject *countdown = PyTuple_GET_ITEM(ready, 6);
    if (!PyTuple_CheckExact(countdown) || PyTuple_GET_SIZE(countdown) != 3)
        return NOT_READY;
    PyObject *stored = PyTuple_GET_ITEM(countdown, 0);
    PyObject *expires = PyTuple_GET_ITEM(countdown, 1);
    *places = PyTuple_GET_ITEM(countdown, 2);
    if (!PyFloat_CheckExact(stored) || !PyFloat_CheckExact(expires) ||
        !(mono < PyFloat_AS_DOUBLE(expires)) || !PyBytes_CheckExact(*places))
        return NOT_READY;
    *age = (long)(mono - PyFloat_AS_DOUBLE(stored)); /* int() in Python: towards zero */
    return COUNTED_DOWN;
}

/* A copy of ``tail`` with each TTL reduced by ``age`` seconds (0 at least). */
static PyObject *
counted_down(PyObject *tail, long age, PyObject *places)
{
    PyObject *copy = PyBytes_FromStringAndSize(PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail));
    if (copy == NULL || age <= 0)
        return copy;
    unsigned char *octets = (unsigned char *)PyBytes_AS_STRING(copy);
    Py_ssize_t size = PyBytes_GET_SIZE(copy);
    const uint32_t *pairs = (const uint32_t *)PyBytes_AS_STRING(places);
    Py_ssize_t count = PyBytes_GET_SIZE(places) / 8;
    for (Py_ssize_t i = 0; i < count; i++) {
        uint32_t place = pairs[2 * i], ttl = pairs[2 * i + 1];
        if ((Py_ssize_t)place + 4 > size)
            continue;
        uint32_t left = (long)ttl > age ? ttl - (uint32_t)age : 0;
        uint32_t wire = htonl(left);
        memcpy(octets + place, &wire, 4);
    }
    return copy;
}

/* Append (reply, address) to the list: a reply the kernel could not take yet. */
static int
keep_unsent(PyObject *unsent, struct mmsghdr *reply)
{
    struct iovec *iov = reply->msg_hdr.msg_iov;
    PyObject *octets = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(iov[0].iov_len + iov[1].iov_len));
    if (octets == NULL)
        return -1;
    memcpy(PyBytes_AS_STRING(octets), iov[0].iov_base, iov[0].iov_len);
    memcpy(PyBytes_AS_STRING(octets) + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
    PyObject *address = address_tuple((struct sockaddr_storage *)reply->msg_hdr.msg_name);
    PyObject *item = address == NULL ? NULL : PyTuple_Pack(2, octets, address);
    Py_DECREF(octets);
    Py_XDECREF(address);
    if (item == NULL)
        return -1;
    int failed = PyList_Append(unsent, item);
    Py_DECREF(item);
    return failed;
}

/* Send the batch's replies; what the kernel cannot take now goes to ``unsent``. Returns
 * the replies lost to other send errors (an ICMP error for an earlier reply, say). */
static Py_ssize_t
send_replies(UdpFastPath *self, int count, PyObject *unsent, int *failed)
{
    Py_ssize_t lost = 0;
    int next = 0;
    while (next < count) {
        int sent = sendmmsg(self->fd, self->replies + next, (unsigned int)(count - next), 0);
        if (sent > 0) {
            next += sent;
            continue;
        }
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            for (; next < count; next++)
                if (keep_unsent(unsent, &self->replies[next]) < 0) {
                    *failed = 1;
                    break;
                }
            break;
        }
        lost++; /* this reply cannot be sent; the others can */
        next++;
    }
    for (int i = 0; i < count; i++)
        Py_CLEAR(self->tails[i]);
    return lost;
}

PyDoc_STRVAR(UdpFastPath_serve_doc,
"serve(clients, log, limit) -> (others, unsent, answered, blocked, lost)\n\n"
"Read up to ``limit`` datagrams; answer the ready ones (logging them in ``log``, a\n"
"LogBuffer, or not at all when None). ``others``: [(datagram, address, raw address)]\n"
"for Python to answer; ``unsent``: [(reply, address)] the kernel could not take yet;\n"
"``lost``: replies a send error lost.");

static PyObject *
UdpFastPath_serve(UdpFastPath *self, PyObject *args)
{
    PyObject *clients, *log;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!On", &PyDict_Type, &clients, &log, &limit))
        return NULL;
    if (log != Py_None && !PyObject_TypeCheck(log, &LogBufferType)) {
        PyErr_SetString(PyExc_TypeError, "log must be a LogBuffer or None");
        return NULL;
    }
    LogBuffer *buffer = log == Py_None ? NULL : (LogBuffer *)log;
    PyObject *others = PyList_New(0);
    PyObject *unsent = PyList_New(0);
    if (others == NULL || unsent == NULL)
        goto fail;
    Py_ssize_t seen = 0, answered = 0, blocked = 0, lost = 0;
    int failed = 0;
    while (seen < limit && !failed) {
        int want = limit - seen < BATCH ? (int)(limit - seen) : BATCH;
        for (int i = 0; i < want; i++) {
            struct msghdr *header = &self->received[i].msg_hdr;
            memset(header, 0, sizeof(*header));
            header->msg_name = &self->addresses[i];
            header->msg_namelen = sizeof(self->addresses[i]);
            header->msg_iov = &self->receive_iov[i];
            header->msg_iovlen = 1;
        }
        int count = recvmmsg(self->fd, self->received, (unsigned int)want, MSG_DONTWAIT, NULL);
        if (count < 0) {
            if (errno == EINTR)
                continue;
            /* Drained (EAGAIN), or an ICMP error for an earlier reply (nothing to do, as
             * in the Python path): the loop calls again while the socket is readable. */
            break;
        }
        seen += count;
        /* One reading of the clocks a batch: the datagrams in it arrived together. */
        double wall = clock_seconds(CLOCK_REALTIME), mono = clock_seconds(CLOCK_MONOTONIC);
        int replies = 0;
        for (int i = 0; i < count && !failed; i++) {
            const char *data = self->receive_iov[i].iov_base;
            Py_ssize_t length = (Py_ssize_t)self->received[i].msg_len;
            struct sockaddr_storage *address = &self->addresses[i];
            PyObject *raw = NULL, *ready = NULL, *scope = NULL, *places = NULL;
            long age = 0;
            int how = NOT_READY;
            if (address->ss_family == AF_INET || address->ss_family == AF_INET6) {
                raw = raw_address(address);
                if (raw == NULL) {
                    failed = 1;
                    break;
                }
                if (length >= HEADER_OCTETS)
                    how = ready_for(clients, raw, data, length, wall, mono, &ready, &scope, &age,
                                    &places);
                if (how == NOT_READY && PyErr_Occurred()) {
                    Py_DECREF(raw);
                    failed = 1;
                    break;
                }
            }
            if (how == NOT_READY) {
                PyObject *datagram = PyBytes_FromStringAndSize(data, length);
                PyObject *where = datagram == NULL ? NULL : address_tuple(address);
                PyObject *item = where == NULL ? NULL
                                               : PyTuple_Pack(3, datagram, where,
                                                              raw != NULL ? raw : Py_None);
                if (item == NULL || PyList_Append(others, item) < 0)
                    failed = 1;
                Py_XDECREF(datagram);
                Py_XDECREF(where);
                Py_XDECREF(item);
                Py_XDECREF(raw);
                continue;
            }
            Py_DECREF(raw);
            PyObject *tail = PyTuple_GET_ITEM(ready, 1);
            PyObject *notes = PyTuple_GET_ITEM(ready, 2);
            if (how == COUNTED_DOWN) {
                tail = counted_down(tail, age, places);
                if (tail == NULL) {
                    failed = 1;
                    break;
                }
            } else {
                Py_INCREF(tail);
            }
            self->tails[replies] = tail;
            struct iovec *iov = self->reply_iov[replies];
            iov[0].iov_base = (void *)data; /* the question's own ID */
            iov[0].iov_len = ID_OCTETS;
            iov[1].iov_base = PyBytes_AS_STRING(tail);
            iov[1].iov_len = (size_t)PyBytes_GET_SIZE(tail);
            struct msghdr *header = &self->replies[replies].msg_hdr;
            memset(header, 0, sizeof(*header));
            header->msg_name = address;
            header->msg_namelen = self->received[i].msg_hdr.msg_namelen;
            header->msg_iov = iov;
            header->msg_iovlen = 2;
            replies++;
            answered++;
            if (PyTuple_GET_ITEM(ready, 3) == Py_True)
                blocked++;
            if (buffer != NULL)
                for (Py_ssize_t n = 0; n < PyTuple_GET_SIZE(notes); n++)
                    LogBuffer_add(buffer, wall, scope, PyTuple_GET_ITEM(notes, n));
        }
        lost += send_replies(self, replies, unsent, &failed);
        if (count < want)
            break; /* drained */
    }
    if (failed)
        goto fail;
    return Py_BuildValue("(NNnnn)", others, unsent, answered, blocked, lost);
fail:
    Py_XDECREF(others);
    Py_XDECREF(unsent);
    return NULL;
}

static PyMethodDef UdpFastPath_methods[] = {
    {"serve", (PyCFunction)UdpFastPath_serve, METH_VARARGS, UdpFastPath_serve_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject UdpFastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "esafety.filtering.dns._ready.UdpFastPath",
    .tp_doc = PyDoc_STR("UdpFastPath(fd, message_size): answers ready questions on a UDP socket"),
    .tp_basicsize = sizeof(UdpFastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)UdpFastPath_init,
    .tp_dealloc = (destructor)UdpFastPath_dealloc,
    .tp_methods = UdpFastPath_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ready",
    "The DNS filter's UDP fast path for ready answers (see _ready.c).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__ready(void)
{
    if (PyType_Ready(&LogBufferType) < 0 || PyType_Ready(&UdpFastPathType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "BATCH", BATCH) < 0 ||
        PyModule_AddObjectRef(m, "LogBuffer", (PyObject *)&LogBufferType) < 0 ||
        PyModule_AddObjectRef(m, "UdpFastPath", (PyObject *)&UdpFastPathType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
