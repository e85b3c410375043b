# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""SpamAssassin meta rules run as one program, interpreted in C (twin:
postier._pure.spammeta, where the API and semantics are documented).

Every value is a double with a kind (int, float, or "error": a division by
zero on the way).  All operands are evaluated; `&&`, `||` and `?:` then
pick the operand Perl (and the twin's Python) would return, and an error
counts only where Python would have evaluated it: in the condition or the
left operand of `&&`/`||`, or in the operand picked.  A meta whose value is
an error is 0, as in the twin.  Results go back into the dict as int or
float, as the twin's would.  A value that is not an int or float (never
seen: rule values are hit counts and eval results) makes run() use the
twin's function for that message, and so does an int beyond 2**53; the
arithmetic of int values is exact while they stay below 2**53 (rule
values are counts: far below).  Reads no main.cf parameters.
"""

from libc.stdlib cimport free, malloc

from cpython.dict cimport PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromDouble
from cpython.long cimport PyLong_FromLongLong
from cpython.ref cimport PyObject

from postier._pure import spammeta as _pure

cdef enum:
    K_INT = 0
    K_FLOAT = 1
    K_ERR = 2
    SLOT = 0
    CONST = 1
    NOT = 2
    NEG = 3
    AND = 4
    OR = 5
    COND = 6
    ADD = 7
    SUB = 8
    MUL = 9
    DIV = 10
    XOR = 11
    LT = 12
    GT = 13
    LE = 14
    GE = 15
    EQ = 16
    NE = 17
    END = 18


cdef class MetaProgram:
    cdef int *code
    cdef Py_ssize_t ncode
    cdef double *cval
    cdef char *ckind
    cdef double *sval
    cdef char *skind
    cdef Py_ssize_t nslots
    cdef double *stv
    cdef char *stk
    cdef Py_ssize_t depth
    cdef dict slot_of
    cdef list names
    cdef object fallback

    def __cinit__(self):
        self.code = NULL
        self.cval = NULL
        self.ckind = NULL
        self.sval = NULL
        self.skind = NULL
        self.stv = NULL
        self.stk = NULL

    def __init__(self, list names, list code, list consts):
        cdef Py_ssize_t i, d = 0, mx = 1, n = len(code)
        cdef int op
        self.names = list(names)
        self.slot_of = {nm: i for i, nm in enumerate(self.names)}
        self.nslots = len(self.names)
        self.ncode = n
        self.code = <int *>malloc((n + 1) * sizeof(int))
        self.cval = <double *>malloc((len(consts) + 1) * sizeof(double))
        self.ckind = <char *>malloc(len(consts) + 1)
        self.sval = <double *>malloc((self.nslots + 1) * sizeof(double))
        self.skind = <char *>malloc(self.nslots + 1)
        if not (self.code and self.cval and self.ckind and self.sval and self.skind):
            raise MemoryError()
        for i in range(n):
            self.code[i] = code[i]
        for i, c in enumerate(consts):
            self.ckind[i] = K_FLOAT if isinstance(c, float) else K_INT
            self.cval[i] = float(c)
        # the deepest stack the code needs; operands checked once here
        i = 0
        while i < n:
            op = self.code[i]
            if op == SLOT or op == CONST:
                if op == SLOT and not 0 <= self.code[i + 1] < self.nslots:
                    raise ValueError("bad slot")
                if op == CONST and not 0 <= self.code[i + 1] < len(consts):
                    raise ValueError("bad constant")
                d += 1
                i += 2
            elif op == END:
                if d != 1 or not 0 <= self.code[i + 1] < self.nslots:
                    raise ValueError("bad meta end")
                d = 0
                i += 2
            elif op == NOT or op == NEG:
                if d < 1:
                    raise ValueError("stack underflow")
                i += 1
            elif op == COND:
                if d < 3:
                    raise ValueError("stack underflow")
                d -= 2
                i += 1
            elif AND <= op <= NE:
                if d < 2:
                    raise ValueError("stack underflow")
                d -= 1
                i += 1
            else:
                raise ValueError(f"bad opcode {op}")
            if d > mx:
                mx = d
        if d != 0:
            raise ValueError("unterminated meta")
        self.depth = mx
        self.stv = <double *>malloc((mx + 1) * sizeof(double))
        self.stk = <char *>malloc(mx + 1)
        if not (self.stv and self.stk):
            raise MemoryError()
        self.fallback = _pure.MetaProgram(names, code, consts).run

    def __dealloc__(self):
        free(self.code)
        free(self.cval)
        free(self.ckind)
        free(self.sval)
        free(self.skind)
        free(self.stv)
        free(self.stk)

    def run(self, dict v):
        cdef Py_ssize_t pos = 0, i, s
        cdef PyObject *key
        cdef PyObject *val
        cdef double *sv = self.sval
        cdef char *sk = self.skind
        cdef double *tv = self.stv
        cdef char *tk = self.stk
        cdef int *code = self.code
        cdef Py_ssize_t n = self.ncode, sp = 0
        cdef int op
        cdef double a, b, x
        cdef char ka, kb, kc, kx
        cdef object o, idx
        cdef dict slot_of = self.slot_of
        for i in range(self.nslots):
            sv[i] = 0.0
            sk[i] = K_INT
        while PyDict_Next(v, &pos, &key, &val):
            idx = slot_of.get(<object>key)
            if idx is None:
                continue
            s = <Py_ssize_t>idx
            o = <object>val
            if type(o) is int:
                if not -9007199254740992 <= o <= 9007199254740992:
                    self.fallback(v)        # not exact as a double
                    return
                sv[s] = <double>(<long long>o)
                sk[s] = K_INT
            elif type(o) is float:
                sv[s] = PyFloat_AS_DOUBLE(o)
                sk[s] = K_FLOAT
            else:
                self.fallback(v)
                return
        i = 0
        while i < n:
            op = code[i]
            if op == SLOT:
                s = code[i + 1]
                tv[sp] = sv[s]
                tk[sp] = sk[s]
                sp += 1
                i += 2
                continue
            if op == CONST:
                s = code[i + 1]
                tv[sp] = self.cval[s]
                tk[sp] = self.ckind[s]
                sp += 1
                i += 2
                continue
            if op == END:
                sp -= 1
                x = tv[sp]
                kx = tk[sp]
                if kx != K_ERR and x != 0.0:
                    s = code[i + 1]
                    if x > 0:
                        sv[s] = x
                        sk[s] = kx
                        v[self.names[s]] = PyFloat_FromDouble(x) if kx == K_FLOAT \
                            else PyLong_FromLongLong(<long long>x)
                    else:
                        sv[s] = 1.0
                        sk[s] = K_INT
                        v[self.names[s]] = 1
                i += 2
                continue
            i += 1
            if op == NOT:
                if tk[sp - 1] != K_ERR:
                    tv[sp - 1] = 0.0 if tv[sp - 1] != 0.0 else 1.0
                    tk[sp - 1] = K_INT
                continue
            if op == NEG:
                if tk[sp - 1] != K_ERR:
                    tv[sp - 1] = -tv[sp - 1]
                continue
            if op == COND:
                sp -= 2
                kc = tk[sp - 1]
                if kc == K_ERR:
                    continue
                if tv[sp - 1] != 0.0:
                    tv[sp - 1] = tv[sp]
                    tk[sp - 1] = tk[sp]
                else:
                    tv[sp - 1] = tv[sp + 1]
                    tk[sp - 1] = tk[sp + 1]
                continue
            sp -= 1
            a = tv[sp - 1]
            ka = tk[sp - 1]
            b = tv[sp]
            kb = tk[sp]
            if op == AND:
                if ka != K_ERR and a != 0.0:
                    tv[sp - 1] = b
                    tk[sp - 1] = kb
                continue
            if op == OR:
                if ka != K_ERR and a == 0.0:
                    tv[sp - 1] = b
                    tk[sp - 1] = kb
                continue
            if ka == K_ERR or kb == K_ERR:
                tk[sp - 1] = K_ERR
                continue
            if op == ADD:
                tv[sp - 1] = a + b
                tk[sp - 1] = K_FLOAT if (ka == K_FLOAT or kb == K_FLOAT) else K_INT
            elif op == SUB:
                tv[sp - 1] = a - b
                tk[sp - 1] = K_FLOAT if (ka == K_FLOAT or kb == K_FLOAT) else K_INT
            elif op == MUL:
                tv[sp - 1] = a * b
                tk[sp - 1] = K_FLOAT if (ka == K_FLOAT or kb == K_FLOAT) else K_INT
            elif op == DIV:
                if b == 0.0:
                    tk[sp - 1] = K_ERR
                else:
                    tv[sp - 1] = a / b
                    tk[sp - 1] = K_FLOAT
            elif op == XOR:
                tv[sp - 1] = <double>((<long long>a) ^ (<long long>b))
                tk[sp - 1] = K_INT
            else:
                if op == LT:
                    x = 1.0 if a < b else 0.0
                elif op == GT:
                    x = 1.0 if a > b else 0.0
                elif op == LE:
                    x = 1.0 if a <= b else 0.0
                elif op == GE:
                    x = 1.0 if a >= b else 0.0
                elif op == EQ:
                    x = 1.0 if a == b else 0.0
                else:
                    x = 1.0 if a != b else 0.0
                tv[sp - 1] = x
                tk[sp - 1] = K_INT
