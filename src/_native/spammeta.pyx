# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""SpamAssassin meta rules run as one program, interpreted in C (twin:
postier._pure.spammeta, where the API and semantics are documented).

Every value is a double with a kind (int, float, or "error": a division by
zero on the way).  `&&`, `||` and `?:` short-circuit as Perl (and the
twin's Python) do: the postfix code is rewritten once into code with jumps
(JAND/JOR: keep the left operand and jump past the right one when it
decides; JCOND/JMP: run one branch), so an operand that is not picked is
not evaluated and its error does not count.  (A meta too deeply nested for
the rewrite keeps its postfix code, where AND/OR/COND evaluate every
operand and pick the same one.)  A meta whose value is
an error is 0, as in the twin.  Results go back into the dict as int or
float, as the twin's would.  A value that is not an int or float (never
seen: rule values are hit counts and eval results) makes run() use the
twin's function for that message, and so does an int beyond 2**53; the
arithmetic of int values is exact while they stay below 2**53 (rule
values are counts: far below).  Only the metas that read a value set on
the message (a rule in the dict, or a meta whose value differs from the
one it has on a message without values) are interpreted; the others take
that value, worked out once when the program is built (most of the ~900
metas of the stock rules read nothing a given message sets); nor is a
meta `... && G && ...` whose rule or meta G still has the value 0 it has
on a message without values: it is 0.
Reads no main.cf parameters.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

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
    JAND = 19
    JOR = 20
    JCOND = 21
    JMP = 22


def _jump_code(list code):
    """The postfix code rewritten with jumps (JAND t / JOR t: the left
    operand decides, jump to t keeping it, else pop it; JCOND e t: an error
    condition jumps to t as the result, else pop it and run on, or jump to
    e when false; JMP t), where each meta starts in it, and the rules each
    meta is a conjunction of (the slots G of `G && ...`, `... && G`: the
    meta is 0 when one of them is).  A meta nested too deeply to rewrite
    keeps its postfix code."""
    cdef list out = [], starts = [], conj = [], stack, todo, gs
    cdef Py_ssize_t i = 0, n = len(code), begin = 0, mark
    cdef int op
    while i < n:
        stack = []
        begin = i
        while True:
            op = code[i]
            if op == SLOT or op == CONST:
                stack.append((op, code[i + 1]))
                i += 2
            elif op == END:
                break
            elif op == NOT or op == NEG:
                stack.append((op, stack.pop()))
                i += 1
            elif op == COND:
                c = stack.pop()
                b = stack.pop()
                stack.append((op, stack.pop(), b, c))
                i += 1
            else:
                b = stack.pop()
                stack.append((op, stack.pop(), b))
                i += 1
        starts.append(len(out))
        gs = []
        todo = [stack[0]]
        while todo:
            node = todo.pop()
            if node[0] == AND:
                todo += node[1:]
            elif node[0] == SLOT:
                gs.append(node[1])
        conj.append(gs)
        mark = len(out)
        try:
            _emit(stack[0], out, 0)
        except RecursionError:
            del out[mark:]
            out.extend(code[begin:i])
        out.append(END)
        out.append(code[i + 1])
        i += 2
    return out, starts, conj


def _emit(node, list out, int depth):
    cdef int op = node[0]
    cdef Py_ssize_t j, k
    if depth > 400:
        raise RecursionError("meta nested too deeply")
    depth += 1
    if op == SLOT or op == CONST:
        out.append(op)
        out.append(node[1])
    elif op == NOT or op == NEG:
        _emit(node[1], out, depth)
        out.append(op)
    elif op == AND or op == OR:
        _emit(node[1], out, depth)
        out.append(JAND if op == AND else JOR)
        j = len(out)
        out.append(-1)
        _emit(node[2], out, depth)
        out[j] = len(out)
    elif op == COND:
        _emit(node[1], out, depth)
        out.append(JCOND)
        j = len(out)
        out.append(-1)
        out.append(-1)
        _emit(node[2], out, depth)
        out.append(JMP)
        k = len(out)
        out.append(-1)
        out[j] = len(out)           # the false branch
        _emit(node[3], out, depth)
        out[j + 1] = len(out)       # an error condition: the end
        out[k] = len(out)
    else:
        _emit(node[1], out, depth)
        _emit(node[2], out, depth)
        out.append(op)


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
    # the metas (segments of code): where each starts, its slot; the metas
    # that read a slot (rlist[rstart[s]:rstart[s + 1]]), the meta of a slot
    # (mof, -1 for a rule); the values when no rule has a value (zsv/zsk,
    # which sval/skval hold between runs; zobj: what END writes then, or
    # None); per run: the slots that differ from zsv/zsk (dirty, listed in
    # touched) and the metas to interpret (need)
    cdef Py_ssize_t nmeta
    cdef Py_ssize_t *mpos
    cdef Py_ssize_t *mslot
    cdef Py_ssize_t *rstart
    cdef Py_ssize_t *rlist
    cdef Py_ssize_t *mof
    cdef Py_ssize_t *touched
    cdef Py_ssize_t *gstart
    cdef Py_ssize_t *guard
    cdef char *need
    cdef char *zhas
    cdef double *zsv
    cdef char *zsk
    cdef char *dirty
    cdef list zobj
    cdef Py_ssize_t ntouched

    def __cinit__(self):
        self.code = NULL
        self.cval = NULL
        self.ckind = NULL
        self.sval = NULL
        self.skind = NULL
        self.stv = NULL
        self.stk = NULL
        self.mpos = NULL
        self.mslot = NULL
        self.rstart = NULL
        self.rlist = NULL
        self.mof = NULL
        self.touched = NULL
        self.gstart = NULL
        self.guard = NULL
        self.need = NULL
        self.zhas = NULL
        self.zsv = NULL
        self.zsk = NULL
        self.dirty = NULL

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
        # the code run: with jumps (the operands `&&`, `||`, `?:` do not pick are skipped)
        jcode, jstarts, jconj = _jump_code(code)
        free(self.code)
        self.ncode = len(jcode)
        self.code = <int *>malloc((self.ncode + 1) * sizeof(int))
        if not self.code:
            raise MemoryError()
        for i in range(self.ncode):
            self.code[i] = jcode[i]
        self._segments(code, jstarts, jconj)

    cdef _segments(self, list code, list starts, list conj):
        """The metas' segments and their values when nothing they read is
        set (code: the postfix code, read for the slots each meta reads;
        starts: where each meta starts in the code run; conj: the rules
        each meta is a conjunction of, _jump_code's)."""
        cdef Py_ssize_t i = 0, m = 0, k = 0, n = len(code), ns = 0, j
        cdef int op
        cdef list slots = [], ins = [], cur = []
        cdef dict scratch = {}
        while i < n:
            op = code[i]
            if op == SLOT:
                if code[i + 1] not in cur:
                    cur.append(code[i + 1])
                i += 2
            elif op == CONST:
                i += 2
            elif op == END:
                slots.append(code[i + 1])
                ins.append(cur)
                cur = []
                i += 2
            else:
                i += 1
        self.nmeta = len(slots)
        readers = [[] for _ in range(self.nslots)]
        for m, cur in enumerate(ins):
            ns += len(cur)
            for j in cur:
                readers[j].append(m)
        self.mpos = <Py_ssize_t *>malloc((self.nmeta + 1) * sizeof(Py_ssize_t))
        self.mslot = <Py_ssize_t *>malloc((self.nmeta + 1) * sizeof(Py_ssize_t))
        self.rstart = <Py_ssize_t *>malloc((self.nslots + 1) * sizeof(Py_ssize_t))
        self.rlist = <Py_ssize_t *>malloc((ns + 1) * sizeof(Py_ssize_t))
        self.mof = <Py_ssize_t *>malloc((self.nslots + 1) * sizeof(Py_ssize_t))
        self.touched = <Py_ssize_t *>malloc((self.nslots + 1) * sizeof(Py_ssize_t))
        self.need = <char *>malloc(self.nmeta + 1)
        self.zsv = <double *>malloc((self.nslots + 1) * sizeof(double))
        self.zsk = <char *>malloc(self.nslots + 1)
        self.dirty = <char *>malloc(self.nslots + 1)
        if not (self.mpos and self.mslot and self.rstart and self.rlist and self.mof and
                self.touched and self.need and self.zsv and self.zsk and self.dirty):
            raise MemoryError()
        for j in range(self.nslots):
            self.mof[j] = -1
            self.dirty[j] = 0
            self.rstart[j] = k
            for m in readers[j]:
                self.rlist[k] = m
                k += 1
        self.rstart[self.nslots] = k
        for m in range(self.nmeta):
            self.mpos[m] = starts[m]
            self.mslot[m] = slots[m]
            self.mof[slots[m]] = m
        # the state after every meta ran on a message without values
        for j in range(self.nslots):
            self.sval[j] = 0.0
            self.skind[j] = K_INT
        for m in range(self.nmeta):
            self._exec(self.mpos[m], scratch)
        self.zobj = [scratch.get(self.names[self.mslot[m]]) for m in range(self.nmeta)]
        self.zhas = <char *>malloc(self.nmeta + 1)
        if not self.zhas:
            raise MemoryError()
        for m in range(self.nmeta):
            self.zhas[m] = self.zobj[m] is not None
        for j in range(self.nslots):
            self.zsv[j] = self.sval[j]
            self.zsk[j] = self.skind[j]
        # a meta `... && G && ...` (or `G`) whose rule G is 0 without values
        # is 0 while G keeps that value, whatever else it reads (an operand
        # before G that is 0 or an error makes it 0 too): run() skips it
        # then.  The guards of meta m: guard[gstart[m]:gstart[m + 1]].
        gl = [[g for g in conj[m] if self.zsv[g] == 0.0] for m in range(self.nmeta)]
        self.gstart = <Py_ssize_t *>malloc((self.nmeta + 1) * sizeof(Py_ssize_t))
        self.guard = <Py_ssize_t *>malloc((sum(map(len, gl)) + 1) * sizeof(Py_ssize_t))
        if not (self.gstart and self.guard):
            raise MemoryError()
        k = 0
        for m in range(self.nmeta):
            self.gstart[m] = k
            for g in gl[m]:
                self.guard[k] = g
                k += 1
        self.gstart[self.nmeta] = k

    cdef int _exec(self, Py_ssize_t i, dict v) except -1:
        """Run the meta whose code starts at i, up to its END included."""
        cdef double *sv = self.sval
        cdef char *sk = self.skind
        cdef double *tv = self.stv
        cdef char *tk = self.stk
        cdef int *code = self.code
        cdef Py_ssize_t sp = 0, s
        cdef int op
        cdef double a, b, x
        cdef char ka, kb, kc, kx
        while True:
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
                return 0
            if op == JAND:
                # the left operand decides when false (or an error): it is the value
                if tk[sp - 1] == K_ERR or tv[sp - 1] == 0.0:
                    i = code[i + 1]
                else:
                    sp -= 1
                    i += 2
                continue
            if op == JOR:
                if tk[sp - 1] == K_ERR or tv[sp - 1] != 0.0:
                    i = code[i + 1]
                else:
                    sp -= 1
                    i += 2
                continue
            if op == JCOND:
                if tk[sp - 1] == K_ERR:
                    i = code[i + 2]         # the error is the value
                elif tv[sp - 1] != 0.0:
                    sp -= 1
                    i += 3
                else:
                    sp -= 1
                    i = code[i + 1]
                continue
            if op == JMP:
                i = code[i + 1]
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

    def __dealloc__(self):
        free(self.code)
        free(self.cval)
        free(self.ckind)
        free(self.sval)
        free(self.skind)
        free(self.stv)
        free(self.stk)
        free(self.mpos)
        free(self.mslot)
        free(self.rstart)
        free(self.rlist)
        free(self.mof)
        free(self.touched)
        free(self.gstart)
        free(self.guard)
        free(self.need)
        free(self.zhas)
        free(self.zsv)
        free(self.zsk)
        free(self.dirty)

    cdef inline void _mark(self, Py_ssize_t s) noexcept:
        """Slot s differs from its value without values: the metas that
        read it (and the meta it is, when its name is in v) get run."""
        cdef Py_ssize_t k
        if not self.dirty[s]:
            self.dirty[s] = 1
            self.touched[self.ntouched] = s
            self.ntouched += 1
        for k in range(self.rstart[s], self.rstart[s + 1]):
            self.need[self.rlist[k]] = 1

    cdef void _restore(self) noexcept:
        """Back to the values without values (for the next run)."""
        cdef Py_ssize_t i, s
        for i in range(self.ntouched):
            s = self.touched[i]
            self.sval[s] = self.zsv[s]
            self.skind[s] = self.zsk[s]
            self.dirty[s] = 0
        self.ntouched = 0

    def run(self, dict v):
        """Set v[META] for every meta that hits.  Only the metas that read
        a slot differing from its value on a message without values (a
        rule in v, or a meta whose value differs), or whose own name is in
        v, are interpreted; the others have the value worked out once
        (zobj, written to v in its turn: the same order)."""
        cdef Py_ssize_t pos = 0, s, m, k
        cdef PyObject *key
        cdef PyObject *val
        cdef double *sv = self.sval
        cdef char *sk = self.skind
        cdef char *dirty = self.dirty
        cdef char *need = self.need
        cdef char *zhas = self.zhas
        cdef object o, idx
        cdef dict slot_of = self.slot_of
        memset(need, 0, self.nmeta)
        try:
            while PyDict_Next(v, &pos, &key, &val):
                idx = slot_of.get(<object>key)
                if idx is None:
                    continue
                s = <Py_ssize_t>idx
                o = <object>val
                if type(o) is int:
                    if not -9007199254740992 <= o <= 9007199254740992:
                        self._restore()
                        self.fallback(v)        # not exact as a double
                        return
                    sv[s] = <double>(<long long>o)
                    sk[s] = K_INT
                elif type(o) is float:
                    sv[s] = PyFloat_AS_DOUBLE(o)
                    sk[s] = K_FLOAT
                else:
                    self._restore()
                    self.fallback(v)
                    return
                self._mark(s)
                if self.mof[s] >= 0:
                    need[self.mof[s]] = 1
            for m in range(self.nmeta):
                s = self.mslot[m]
                if need[m]:
                    for k in range(self.gstart[m], self.gstart[m + 1]):
                        if not dirty[self.guard[k]]:
                            break               # 0: as without values
                    else:
                        if not dirty[s]:        # (its value in v: the value it keeps on no hit)
                            sv[s] = 0.0
                            sk[s] = K_INT
                        self._exec(self.mpos[m], v)
                        if sv[s] != self.zsv[s] or sk[s] != self.zsk[s]:
                            self._mark(s)
                elif zhas[m]:
                    v[self.names[s]] = self.zobj[m]
        finally:
            self._restore()
