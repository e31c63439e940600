/* learnflux.kernels._lfk: the Python entry points of the compiled kernels.
 *
 * Arrays arrive through the CPython buffer protocol (C-contiguous, checked for size here; the
 * Python side, kernels/compiled.py, allocates them and checks dtypes); sizes arrive as ints. Each
 * call releases the GIL around the kernel. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <unistd.h>
#include <sched.h>
#include "lfk.h"

void lf_im2col(int f64, const void *x, void *cols, const struct conv_geom *g);
void lf_col2im(int f64, void *cols, void *dx, const struct conv_geom *g);
int lf_dconv_fwd(int f64, const void *x, const void *w, const void *bias, void *out, const struct dconv_geom *g,
                 int relu, void *mask);
int lf_dconv_wgrad(int f64, const void *x, const void *d, void *gw, void *db, const struct dconv_geom *g);
const char *lf_dconv_isa(const char *want);
const char *lf_pool2_isa(const char *want);
int lf_wino_fwd(const float *x, const float *w, const float *bias, float *out, const struct dconv_geom *g, int relu,
                unsigned char *mask);
const char *lf_wino_isa(const char *want);
int lf_wino_wgrad(const float *x, const float *d, float *gw, float *db, const struct dconv_geom *g);
const char *lf_winowg_isa(const char *want);
int lf_thin_fwd(int f64, const void *x, const void *w, const void *bias, void *out, const struct dconv_geom *g,
                int relu, void *mask);
int lf_thin_wgrad(int f64, const void *x, const void *d, void *gw, void *db, const struct dconv_geom *g);
const char *lf_thin_isa(const char *want);
void lf_bias_nchw(int f64, const void *prod, const void *bias, void *out, idx_t O, idx_t N, idx_t L, int relu);
void lf_nchw_mat(int f64, const void *d, void *mat, void *db, idx_t O, idx_t N, idx_t L);
void lf_maxpool_fwd(int f64, const void *x, void *out, void *idx, int idx32, const struct pool_geom *g);
void lf_maxpool_bwd(int f64, const void *d, void *dx, const void *idx, int idx32, const unsigned char *mask,
                    const struct pool_geom *g);
void lf_relu_fwd(int f64, const void *x, void *out, void *mask, idx_t n);
void lf_relu_bwd(int f64, const void *d, const void *mask, void *out, idx_t n);
void lf_gelu_fwd(int f64, const void *x, void *out, void *keep, idx_t n, int tanh_approx);
void lf_gelu_bwd(int f64, const void *d, const void *x, const void *aux, void *out, idx_t n, int tanh_approx);
void lf_dense_out(int f64, const void *prod, const void *bias, void *out, void *mask, idx_t O, idx_t N, int relu);
void lf_dense_rows(int f64, const void *bias, void *prod, idx_t O, idx_t N, int relu);
int lf_all_finite(int f64, const void *x, idx_t n);
void lf_dense_relu_bwd(int f64, const void *d, const void *mask, void *dz, void *db, idx_t N, idx_t O);
void lf_sub_scaled(int f64, void *w, const void *u, double c, int wide, idx_t n);
void lf_bn_fwd(int f64, const void *x, void *out, void *xh, const void *gamma, const void *beta, void *mean,
               void *var, void *inv_std, double eps, idx_t N, idx_t C, idx_t L, void *mask);
void lf_bn_bwd(int f64, const void *d, const void *xhat, const void *gain, void *dx, void *sum_d, void *sum_dx,
               int need_dx, idx_t N, idx_t C, idx_t L, const void *mask);

/* ------------------------------------------------------------------ buffers */
#define MAXBUF 10
struct bufs {
    Py_buffer b[MAXBUF];
    int n;
};

static void release(struct bufs *s) {
    for (int k = 0; k < s->n; k++) PyBuffer_Release(&s->b[k]);
    s->n = 0;
}

/* The data pointer of obj (NULL for None when optional), checked to hold `count` items of `item`
 * bytes; on error sets an exception and returns (void *)-1. */
static void *get(struct bufs *s, PyObject *obj, int writable, int optional, idx_t count, idx_t item,
                 const char *name) {
    if (obj == Py_None && optional) return NULL;
    Py_buffer *b = &s->b[s->n];
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return (void *)-1;
    s->n++;
    if (count < 0 || b->len < count * item) {
        PyErr_Format(PyExc_ValueError, "_lfk: buffer '%s' holds %zd bytes, need %zd", name, b->len,
                     (Py_ssize_t)(count * item));
        return (void *)-1;
    }
    return b->buf;
}

#define BAD(p) ((p) == (void *)-1)
#define ITEM(f64) ((f64) ? 8 : 4)

/* ------------------------------------------------------------------ convolution */
static int parse_geom(PyObject *t, struct conv_geom *g) {
    return PyArg_ParseTuple(t, "nnnnnnnnnnnnnn", &g->N, &g->C, &g->H, &g->W, &g->kh, &g->kw, &g->sh, &g->sw,
                            &g->dh, &g->dw, &g->pt, &g->pl, &g->Ho, &g->Wo);
}

static PyObject *py_im2col(PyObject *self, PyObject *args) {
    PyObject *ox, *oc, *og;
    int f64;
    struct conv_geom g;
    if (!PyArg_ParseTuple(args, "OOpO!", &ox, &oc, &f64, &PyTuple_Type, &og) || !parse_geom(og, &g)) return NULL;
    struct bufs s = {.n = 0};
    void *x = get(&s, ox, 0, 0, g.N * g.C * g.H * g.W, ITEM(f64), "x");
    void *cols = BAD(x) ? x : get(&s, oc, 1, 0, g.C * g.kh * g.kw * g.N * g.Ho * g.Wo, ITEM(f64), "cols");
    if (BAD(x) || BAD(cols)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_im2col(f64, x, cols, &g);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_col2im(PyObject *self, PyObject *args) {
    PyObject *oc, *od, *og;
    int f64;
    struct conv_geom g;
    if (!PyArg_ParseTuple(args, "OOpO!", &oc, &od, &f64, &PyTuple_Type, &og) || !parse_geom(og, &g)) return NULL;
    struct bufs s = {.n = 0};
    void *cols = get(&s, oc, 1, 0, g.C * g.kh * g.kw * g.N * g.Ho * g.Wo, ITEM(f64), "cols");
    void *dx = BAD(cols) ? cols : get(&s, od, 1, 0, g.N * g.C * g.H * g.W, ITEM(f64), "dx");
    if (BAD(cols) || BAD(dx)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_col2im(f64, cols, dx, &g);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

/* direct convolution (dconv.c) */
static int parse_dgeom(PyObject *t, struct dconv_geom *g) {
    return PyArg_ParseTuple(t, "nnnnnnnnnnnnn", &g->N, &g->C, &g->H, &g->W, &g->O, &g->Ho, &g->Wo, &g->kh, &g->kw,
                            &g->dh, &g->dw, &g->pt, &g->pl);
}

typedef int (*conv_fwd_fn)(int, const void *, const void *, const void *, void *, const struct dconv_geom *, int,
                           void *);
typedef int (*conv_wgrad_fn)(int, const void *, const void *, void *, void *, const struct dconv_geom *);

/* the arguments of dconv_fwd and thin_fwd (the same), then the kernel `fn` without the GIL */
static PyObject *conv_fwd_call(PyObject *args, conv_fwd_fn fn) {
    PyObject *ox, *ow, *ob, *oo, *og, *om = Py_None;
    int f64, relu;
    struct dconv_geom g;
    if (!PyArg_ParseTuple(args, "OOOOpO!p|O", &ox, &ow, &ob, &oo, &f64, &PyTuple_Type, &og, &relu, &om) ||
        !parse_dgeom(og, &g))
        return NULL;
    struct bufs s = {.n = 0};
    idx_t it = ITEM(f64);
    void *x = get(&s, ox, 0, 0, g.N * g.C * g.H * g.W, it, "x");
    void *w = BAD(x) ? x : get(&s, ow, 0, 0, g.O * g.C * g.kh * g.kw, it, "weight");
    void *b = BAD(w) ? w : get(&s, ob, 0, 1, g.O, it, "bias");
    void *out = BAD(b) ? b : get(&s, oo, 1, 0, g.N * g.O * g.Ho * g.Wo, it, "out");
    void *m = BAD(out) ? out : get(&s, om, 1, 1, g.N * g.O * g.Ho * g.Wo, 1, "mask");
    if (BAD(m)) { release(&s); return NULL; }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = fn(f64, x, w, b, out, &g, relu, m);
    Py_END_ALLOW_THREADS
    release(&s);
    if (!ok) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_dconv_fwd(PyObject *self, PyObject *args) { return conv_fwd_call(args, lf_dconv_fwd); }
static PyObject *py_thin_fwd(PyObject *self, PyObject *args) { return conv_fwd_call(args, lf_thin_fwd); }

/* the arguments of dconv_wgrad and thin_wgrad (the same), then the kernel `fn` without the GIL */
static PyObject *conv_wgrad_call(PyObject *args, conv_wgrad_fn fn) {
    PyObject *ox, *od, *ogw, *odb, *og;
    int f64;
    struct dconv_geom g;
    if (!PyArg_ParseTuple(args, "OOOOpO!", &ox, &od, &ogw, &odb, &f64, &PyTuple_Type, &og) || !parse_dgeom(og, &g))
        return NULL;
    struct bufs s = {.n = 0};
    idx_t it = ITEM(f64);
    void *x = get(&s, ox, 0, 0, g.N * g.C * g.H * g.W, it, "x");
    void *d = BAD(x) ? x : get(&s, od, 0, 0, g.N * g.O * g.Ho * g.Wo, it, "delta");
    void *gw = BAD(d) ? d : get(&s, ogw, 1, 0, g.O * g.C * g.kh * g.kw, it, "gw");
    void *db = BAD(gw) ? gw : get(&s, odb, 1, 1, g.O, it, "db");
    if (BAD(db)) { release(&s); return NULL; }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = fn(f64, x, d, gw, db, &g);
    Py_END_ALLOW_THREADS
    release(&s);
    if (!ok) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* Winograd F(2×2, 3×3) (wino.c): float32, 3×3, stride 1, padding 1 */
static PyObject *py_wino_fwd(PyObject *self, PyObject *args) {
    PyObject *ox, *ow, *ob, *oo, *og, *om = Py_None;
    int relu;
    struct dconv_geom g;
    if (!PyArg_ParseTuple(args, "OOOOO!p|O", &ox, &ow, &ob, &oo, &PyTuple_Type, &og, &relu, &om) ||
        !parse_dgeom(og, &g))
        return NULL;
    struct bufs s = {.n = 0};
    void *x = get(&s, ox, 0, 0, g.N * g.C * g.H * g.W, 4, "x");
    void *w = BAD(x) ? x : get(&s, ow, 0, 0, g.O * g.C * g.kh * g.kw, 4, "weight");
    void *b = BAD(w) ? w : get(&s, ob, 0, 1, g.O, 4, "bias");
    void *out = BAD(b) ? b : get(&s, oo, 1, 0, g.N * g.O * g.Ho * g.Wo, 4, "out");
    void *m = BAD(out) ? out : get(&s, om, 1, 1, g.N * g.O * g.Ho * g.Wo, 1, "mask");
    if (BAD(m)) { release(&s); return NULL; }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = lf_wino_fwd(x, w, b, out, &g, relu, m);
    Py_END_ALLOW_THREADS
    release(&s);
    if (ok < 0) return PyErr_Format(PyExc_ValueError, "_lfk.wino_fwd: not a 3x3, stride 1, padding 1 convolution with input channels");
    if (!ok) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_dconv_wgrad(PyObject *self, PyObject *args) { return conv_wgrad_call(args, lf_dconv_wgrad); }
static PyObject *py_thin_wgrad(PyObject *self, PyObject *args) { return conv_wgrad_call(args, lf_thin_wgrad); }

/* the direct, thin and Winograd convolutions' micro-kernels, chosen together */
static const char *conv_isa(const char *want) {
    const char *got = lf_dconv_isa(want);
    if (got) {
        lf_thin_isa(got);
        lf_wino_isa(got);
        lf_winowg_isa(got);
    }
    return got;
}

/* Winograd F(2×2, 3×3) weight gradient (winowg.c): float32, 3×3, stride 1, padding 1 */
static PyObject *py_wino_wgrad(PyObject *self, PyObject *args) {
    PyObject *ox, *od, *ogw, *odb, *og;
    struct dconv_geom g;
    if (!PyArg_ParseTuple(args, "OOOOO!", &ox, &od, &ogw, &odb, &PyTuple_Type, &og) || !parse_dgeom(og, &g))
        return NULL;
    struct bufs s = {.n = 0};
    void *x = get(&s, ox, 0, 0, g.N * g.C * g.H * g.W, 4, "x");
    void *d = BAD(x) ? x : get(&s, od, 0, 0, g.N * g.O * g.Ho * g.Wo, 4, "delta");
    void *gw = BAD(d) ? d : get(&s, ogw, 1, 0, g.O * g.C * g.kh * g.kw, 4, "gw");
    void *db = BAD(gw) ? gw : get(&s, odb, 1, 1, g.O, 4, "db");
    if (BAD(db)) { release(&s); return NULL; }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = lf_wino_wgrad(x, d, gw, db, &g);
    Py_END_ALLOW_THREADS
    release(&s);
    if (ok < 0) return PyErr_Format(PyExc_ValueError, "_lfk.wino_wgrad: not a 3x3, stride 1, padding 1 convolution with input channels");
    if (!ok) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_dconv_isa(PyObject *self, PyObject *args) {
    const char *want;
    if (!PyArg_ParseTuple(args, "s", &want)) return NULL;
    const char *got = conv_isa(want); /* Winograd follows too (conv_isa) */
    if (!got) return PyErr_Format(PyExc_ValueError, "_lfk: direct-convolution kernels '%s' not available here", want);
    return PyUnicode_FromString(got);
}

static PyObject *py_pool2_isa(PyObject *self, PyObject *args) {
    const char *want;
    if (!PyArg_ParseTuple(args, "s", &want)) return NULL;
    const char *got = lf_pool2_isa(want);
    if (!got) return PyErr_Format(PyExc_ValueError, "_lfk: 2x2 max-pooling kernels '%s' not available here", want);
    return PyUnicode_FromString(got);
}

static PyObject *py_bias_nchw(PyObject *self, PyObject *args) {
    PyObject *op, *ob, *oo;
    int f64, relu;
    idx_t O, N, L;
    if (!PyArg_ParseTuple(args, "OOOpnnnp", &op, &ob, &oo, &f64, &O, &N, &L, &relu)) return NULL;
    struct bufs s = {.n = 0};
    void *prod = get(&s, op, 0, 0, O * N * L, ITEM(f64), "prod");
    void *bias = BAD(prod) ? prod : get(&s, ob, 0, 1, O, ITEM(f64), "bias");
    void *out = BAD(bias) ? (void *)bias : get(&s, oo, 1, 0, O * N * L, ITEM(f64), "out");
    if (BAD(out)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_bias_nchw(f64, prod, bias, out, O, N, L, relu);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ dense layer, optimizer */
static PyObject *py_dense_out(PyObject *self, PyObject *args) {
    PyObject *op, *ob, *oo, *om;
    int f64, relu;
    idx_t O, N;
    if (!PyArg_ParseTuple(args, "OOOOpnnp", &op, &ob, &oo, &om, &f64, &O, &N, &relu)) return NULL;
    struct bufs s = {.n = 0};
    void *prod = get(&s, op, 0, 0, O * N, ITEM(f64), "prod");
    void *bias = BAD(prod) ? prod : get(&s, ob, 0, 1, O, ITEM(f64), "bias");
    void *out = BAD(bias) ? (void *)bias : get(&s, oo, 1, 0, O * N, ITEM(f64), "out");
    void *mask = BAD(out) ? out : get(&s, om, 1, 1, O * N, 1, "mask");
    if (BAD(mask)) { release(&s); return NULL; }
    if (out == prod) {
        release(&s);
        PyErr_SetString(PyExc_ValueError, "_lfk.dense_out: out must not be prod (the pass transposes)");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    lf_dense_out(f64, prod, bias, out, mask, O, N, relu);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_dense_rows(PyObject *self, PyObject *args) {
    PyObject *ob, *op;
    int f64, relu;
    idx_t O, N;
    if (!PyArg_ParseTuple(args, "OOpnnp", &ob, &op, &f64, &O, &N, &relu)) return NULL;
    struct bufs s = {.n = 0};
    void *bias = get(&s, ob, 0, 1, O, ITEM(f64), "bias");
    void *prod = BAD(bias) ? bias : get(&s, op, 1, 0, O * N, ITEM(f64), "prod");
    if (BAD(prod)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_dense_rows(f64, bias, prod, O, N, relu);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_all_finite(PyObject *self, PyObject *args) {
    PyObject *ox;
    int f64, ok;
    idx_t n;
    if (!PyArg_ParseTuple(args, "Opn", &ox, &f64, &n)) return NULL;
    struct bufs s = {.n = 0};
    void *x = get(&s, ox, 0, 0, n, ITEM(f64), "x");
    if (BAD(x)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    ok = lf_all_finite(f64, x, n);
    Py_END_ALLOW_THREADS
    release(&s);
    return PyBool_FromLong(ok);
}

static PyObject *py_dense_relu_bwd(PyObject *self, PyObject *args) {
    PyObject *od, *om, *oz, *ob;
    int f64;
    idx_t N, O;
    if (!PyArg_ParseTuple(args, "OOOOpnn", &od, &om, &oz, &ob, &f64, &N, &O)) return NULL;
    struct bufs s = {.n = 0};
    void *d = get(&s, od, 0, 0, N * O, ITEM(f64), "delta");
    void *m = BAD(d) ? d : get(&s, om, 0, 0, N * O, 1, "mask");
    void *dz = BAD(m) ? m : get(&s, oz, 1, 0, N * O, ITEM(f64), "dz");
    void *db = BAD(dz) ? dz : get(&s, ob, 1, 1, O, ITEM(f64), "db");
    if (BAD(db)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_dense_relu_bwd(f64, d, m, dz, db, N, O);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_sub_scaled(PyObject *self, PyObject *args) {
    PyObject *ow, *ou;
    int f64, wide;
    double c;
    idx_t n;
    if (!PyArg_ParseTuple(args, "OOdppn", &ow, &ou, &c, &wide, &f64, &n)) return NULL;
    struct bufs s = {.n = 0};
    void *w = get(&s, ow, 1, 0, n, ITEM(f64), "w");
    void *u = BAD(w) ? w : get(&s, ou, 0, 0, n, ITEM(f64), "u");
    if (BAD(u)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_sub_scaled(f64, w, u, c, wide, n);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_nchw_mat(PyObject *self, PyObject *args) {
    PyObject *od, *om, *ob;
    int f64;
    idx_t O, N, L;
    if (!PyArg_ParseTuple(args, "OOOpnnn", &od, &om, &ob, &f64, &O, &N, &L)) return NULL;
    struct bufs s = {.n = 0};
    void *d = get(&s, od, 0, 0, O * N * L, ITEM(f64), "delta");
    void *mat = BAD(d) ? (void *)d : get(&s, om, 1, 0, O * N * L, ITEM(f64), "mat");
    void *db = BAD(mat) ? mat : get(&s, ob, 1, 1, O, ITEM(f64), "db");
    if (BAD(db)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_nchw_mat(f64, d, mat, db, O, N, L);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ pooling */
static int parse_pool(PyObject *t, struct pool_geom *g) {
    return PyArg_ParseTuple(t, "nnnnnnnnnnn", &g->planes, &g->H, &g->W, &g->kh, &g->kw, &g->sh, &g->sw, &g->ph,
                            &g->pw, &g->Ho, &g->Wo);
}

static PyObject *py_maxpool_fwd(PyObject *self, PyObject *args) {
    PyObject *ox, *oo, *oi, *og;
    int f64, idx32;
    struct pool_geom g;
    if (!PyArg_ParseTuple(args, "OOOppO!", &ox, &oo, &oi, &idx32, &f64, &PyTuple_Type, &og) || !parse_pool(og, &g))
        return NULL;
    struct bufs s = {.n = 0};
    idx_t P = g.planes * g.Ho * g.Wo;
    void *x = get(&s, ox, 0, 0, g.planes * g.H * g.W, ITEM(f64), "x");
    void *out = BAD(x) ? (void *)x : get(&s, oo, 1, 0, P, ITEM(f64), "out");
    void *idx = BAD(out) ? out : get(&s, oi, 1, 1, P, idx32 ? 4 : 1, "idx");
    if (BAD(idx)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_maxpool_fwd(f64, x, out, idx, idx32, &g);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_maxpool_bwd(PyObject *self, PyObject *args) {
    PyObject *od, *oi, *ox, *og, *om = Py_None;
    int f64, idx32;
    struct pool_geom g;
    if (!PyArg_ParseTuple(args, "OOOppO!|O", &od, &oi, &ox, &idx32, &f64, &PyTuple_Type, &og, &om) ||
        !parse_pool(og, &g))
        return NULL;
    struct bufs s = {.n = 0};
    idx_t P = g.planes * g.Ho * g.Wo;
    void *d = get(&s, od, 0, 0, P, ITEM(f64), "delta");
    void *idx = BAD(d) ? d : get(&s, oi, 0, 0, P, idx32 ? 4 : 1, "idx");
    void *dx = BAD(idx) ? (void *)idx : get(&s, ox, 1, 0, g.planes * g.H * g.W, ITEM(f64), "dx");
    void *mask = BAD(dx) ? dx : get(&s, om, 0, 1, g.planes * g.H * g.W, 1, "relu_mask");
    if (BAD(mask)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_maxpool_bwd(f64, d, dx, idx, idx32, mask, &g);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ element-wise */
static PyObject *py_relu_fwd(PyObject *self, PyObject *args) {
    PyObject *ox, *oo, *om;
    int f64;
    idx_t n;
    if (!PyArg_ParseTuple(args, "OOOpn", &ox, &oo, &om, &f64, &n)) return NULL;
    struct bufs s = {.n = 0};
    void *x = get(&s, ox, 0, 0, n, ITEM(f64), "x");
    void *out = BAD(x) ? (void *)x : get(&s, oo, 1, 0, n, ITEM(f64), "out");
    void *mask = BAD(out) ? out : get(&s, om, 1, 1, n, 1, "mask");
    if (BAD(mask)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_relu_fwd(f64, x, out, mask, n);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_relu_bwd(PyObject *self, PyObject *args) {
    PyObject *od, *om, *oo;
    int f64;
    idx_t n;
    if (!PyArg_ParseTuple(args, "OOOpn", &od, &om, &oo, &f64, &n)) return NULL;
    struct bufs s = {.n = 0};
    void *d = get(&s, od, 0, 0, n, ITEM(f64), "delta");
    void *mask = BAD(d) ? d : get(&s, om, 0, 0, n, 1, "mask");
    void *out = BAD(mask) ? (void *)mask : get(&s, oo, 1, 0, n, ITEM(f64), "out");
    if (BAD(out)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_relu_bwd(f64, d, mask, out, n);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_gelu_fwd(PyObject *self, PyObject *args) {
    PyObject *ox, *oo, *ok;
    int f64, th;
    idx_t n;
    if (!PyArg_ParseTuple(args, "OOOpnp", &ox, &oo, &ok, &f64, &n, &th)) return NULL;
    struct bufs s = {.n = 0};
    void *x = get(&s, ox, 0, 0, n, ITEM(f64), "x");
    void *out = BAD(x) ? (void *)x : get(&s, oo, 1, 0, n, ITEM(f64), "out");
    void *keep = BAD(out) ? out : get(&s, ok, 1, 1, n, ITEM(f64), "aux");
    if (BAD(keep)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_gelu_fwd(f64, x, out, keep, n, th);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_gelu_bwd(PyObject *self, PyObject *args) {
    PyObject *od, *ox, *oa, *oo;
    int f64, th;
    idx_t n;
    if (!PyArg_ParseTuple(args, "OOOOpnp", &od, &ox, &oa, &oo, &f64, &n, &th)) return NULL;
    struct bufs s = {.n = 0};
    void *d = get(&s, od, 0, 0, n, ITEM(f64), "delta");
    void *x = BAD(d) ? d : get(&s, ox, 0, 0, n, ITEM(f64), "x");
    void *aux = BAD(x) ? x : get(&s, oa, 0, 0, n, ITEM(f64), "aux");
    void *out = BAD(aux) ? aux : get(&s, oo, 1, 0, n, ITEM(f64), "out");
    if (BAD(out)) { release(&s); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    lf_gelu_bwd(f64, d, x, aux, out, n, th);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ batch norm */
static PyObject *py_bn_fwd(PyObject *self, PyObject *args) {
    PyObject *ox, *oo, *oh, *og, *ob, *om, *ov, *oi, *omask = Py_None;
    double eps;
    int f64;
    idx_t N, C, L;
    if (!PyArg_ParseTuple(args, "OOOOOOOOdpnnn|O", &ox, &oo, &oh, &og, &ob, &om, &ov, &oi, &eps, &f64, &N, &C, &L,
                          &omask))
        return NULL;
    struct bufs s = {.n = 0};
    idx_t total = N * C * L, it = ITEM(f64);
    void *p[9];
    p[0] = get(&s, ox, 0, 0, total, it, "x");
    p[1] = BAD(p[0]) ? p[0] : get(&s, oo, 1, 1, total, it, "out");
    p[2] = BAD(p[1]) ? p[1] : get(&s, oh, 1, 0, total, it, "xhat");
    p[3] = BAD(p[2]) ? p[2] : get(&s, og, 0, 1, C, it, "gamma");
    p[4] = BAD(p[3]) ? p[3] : get(&s, ob, 0, 1, C, it, "beta");
    p[5] = BAD(p[4]) ? p[4] : get(&s, om, 1, 0, C, it, "mean");
    p[6] = BAD(p[5]) ? p[5] : get(&s, ov, 1, 0, C, it, "var");
    p[7] = BAD(p[6]) ? p[6] : get(&s, oi, 1, 0, C, it, "inv_std");
    p[8] = BAD(p[7]) ? p[7] : get(&s, omask, 1, 1, total, 1, "mask");
    if (BAD(p[8])) { release(&s); return NULL; }
    if (p[8] && !p[1]) {
        release(&s);
        PyErr_SetString(PyExc_ValueError, "bn_fwd: a ReLU mask needs an output array");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    lf_bn_fwd(f64, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], eps, N, C, L, p[8]);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_bn_bwd(PyObject *self, PyObject *args) {
    PyObject *od, *oh, *og, *ox, *os, *osx, *omask = Py_None;
    int f64;
    idx_t N, C, L;
    if (!PyArg_ParseTuple(args, "OOOOOOpnnn|O", &od, &oh, &og, &ox, &os, &osx, &f64, &N, &C, &L, &omask))
        return NULL;
    struct bufs s = {.n = 0};
    idx_t total = N * C * L, it = ITEM(f64);
    void *p[7];
    p[0] = get(&s, od, 0, 0, total, it, "delta");
    p[1] = BAD(p[0]) ? p[0] : get(&s, oh, 0, 0, total, it, "xhat");
    p[2] = BAD(p[1]) ? p[1] : get(&s, og, 0, 0, C, it, "gain");
    p[3] = BAD(p[2]) ? p[2] : get(&s, ox, 1, 1, total, it, "dx");
    p[4] = BAD(p[3]) ? p[3] : get(&s, os, 1, 0, C, it, "sum_d");
    p[5] = BAD(p[4]) ? p[4] : get(&s, osx, 1, 0, C, it, "sum_dx");
    p[6] = BAD(p[5]) ? p[5] : get(&s, omask, 0, 1, total, 1, "mask");
    if (BAD(p[6])) { release(&s); return NULL; }
    int need_dx = p[3] != NULL;
    Py_BEGIN_ALLOW_THREADS
    lf_bn_bwd(f64, p[0], p[1], p[2], p[3], p[4], p[5], need_dx, N, C, L, p[6]);
    Py_END_ALLOW_THREADS
    release(&s);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ threads and build info */
static PyObject *py_set_threads(PyObject *self, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    lf_set_threads(n);
    return PyLong_FromLong(lf_get_threads());
}

static PyObject *py_get_threads(PyObject *self, PyObject *noargs) { return PyLong_FromLong(lf_get_threads()); }

static int cpu_count(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static PyMethodDef methods[] = {
    {"im2col", py_im2col, METH_VARARGS, "im2col(x, cols, f64, geom): NCHW → X_col[(c,i,j),(n,a,b)]"},
    {"col2im", py_col2im, METH_VARARGS, "col2im(cols, dx, f64, geom): X_col δ added back into NCHW δx (cols is scratch: may be modified)"},
    {"dconv_fwd", py_dconv_fwd, METH_VARARGS,
     "dconv_fwd(x, w, bias, out, f64, geom, relu, mask=None): stride-1 direct convolution (geom: "
     "N,C,H,W,O,Ho,Wo,kh,kw,dh,dw,pt,pl); relu: ReLU fused into the output pass, mask: its [pre-activation >= 0]"},
    {"dconv_wgrad", py_dconv_wgrad, METH_VARARGS, "dconv_wgrad(x, delta, gw, db, f64, geom): δW and δb of dconv_fwd"},
    {"dconv_isa", py_dconv_isa, METH_VARARGS,
     "dconv_isa(name) -> name: the direct (and thin and Winograd) convolutions' micro-kernels, 'auto', 'avx512', "
     "'avx2' or 'baseline'"},
    {"pool2_isa", py_pool2_isa, METH_VARARGS,
     "pool2_isa(name) -> name: the 2x2 / stride 2 max-pooling kernels, 'auto', 'avx512', 'avx2' or 'baseline'"},
    {"wino_fwd", py_wino_fwd, METH_VARARGS,
     "wino_fwd(x, w, bias, out, geom, relu, mask=None): float32 Winograd F(2x2, 3x3) convolution, 3x3, stride 1, "
     "padding 1 (geom as dconv_fwd); relu and mask as dconv_fwd"},
    {"wino_wgrad", py_wino_wgrad, METH_VARARGS,
     "wino_wgrad(x, delta, gw, db, geom): float32 Winograd F(2x2, 3x3) weight gradient and bias gradient (db may be "
     "None) of wino_fwd's convolution (geom as dconv_fwd)"},
    {"thin_fwd", py_thin_fwd, METH_VARARGS,
     "thin_fwd(x, w, bias, out, f64, geom, relu, mask=None): dconv_fwd for a small C·kh·kw (_c/thinconv.c)"},
    {"thin_wgrad", py_thin_wgrad, METH_VARARGS, "thin_wgrad(x, delta, gw, db, f64, geom): δW and δb of thin_fwd"},
    {"bias_nchw", py_bias_nchw, METH_VARARGS, "bias_nchw(prod, bias, out, f64, O, N, L, relu)"},
    {"dense_out", py_dense_out, METH_VARARGS,
     "dense_out(prod, bias, out, mask, f64, O, N, relu): out[n, o] = act(prod[o, n] + bias[o]), mask = [... >= 0]"},
    {"dense_rows", py_dense_rows, METH_VARARGS, "dense_rows(bias, prod, f64, O, N, relu): prod[o, n] = act(prod[o, n] + bias[o]) in place"},
    {"all_finite", py_all_finite, METH_VARARGS, "all_finite(x, f64, n): no NaN and no infinity among the n values"},
    {"dense_relu_bwd", py_dense_relu_bwd, METH_VARARGS,
     "dense_relu_bwd(delta, mask, dz, db, f64, N, O): dz = delta * mask, db = column sums of dz (or None)"},
    {"sub_scaled", py_sub_scaled, METH_VARARGS, "sub_scaled(w, u, c, wide, f64, n): w -= c * u (NumPy's roundings)"},
    {"nchw_mat", py_nchw_mat, METH_VARARGS, "nchw_mat(delta, mat, db, f64, O, N, L)"},
    {"maxpool_fwd", py_maxpool_fwd, METH_VARARGS, "maxpool_fwd(x, out, idx, idx32, f64, geom)"},
    {"maxpool_bwd", py_maxpool_bwd, METH_VARARGS, 
     "maxpool_bwd(delta, idx, dx, idx32, f64, geom, relu_mask=None): dx, times relu_mask (bool, dx's shape) if given"},
    {"relu_fwd", py_relu_fwd, METH_VARARGS, "relu_fwd(x, out, mask, f64, n)"},
    {"relu_bwd", py_relu_bwd, METH_VARARGS, "relu_bwd(delta, mask, out, f64, n)"},
    {"gelu_fwd", py_gelu_fwd, METH_VARARGS,
     "gelu_fwd(x, out, aux, f64, n, tanh): GELU; aux (or None): Phi(x), or tanh u with tanh set"},
    {"gelu_bwd", py_gelu_bwd, METH_VARARGS, "gelu_bwd(delta, x, aux, out, f64, n, tanh)"},
    {"bn_fwd", py_bn_fwd, METH_VARARGS, "bn_fwd(x, out, xhat, gamma, beta, mean, var, inv_std, eps, f64, N, C, L, mask=None): mask: ReLU fused "
     "into the output pass, its [gamma*xhat + beta >= 0] written there"},
    {"bn_bwd", py_bn_bwd, METH_VARARGS, "bn_bwd(delta, xhat, gain, dx, sum_d, sum_dx, f64, N, C, L, mask=None): mask: read delta*mask (a fused ReLU's)"},
    {"set_threads", py_set_threads, METH_VARARGS, "set_threads(n) -> threads used from now on"},
    {"get_threads", py_get_threads, METH_NOARGS, "threads a large kernel call uses"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_lfk", "learnflux's compiled kernels", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lfk(void) {
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    lf_set_threads(cpu_count());
    PyModule_AddStringConstant(m, "DCONV_ISA", conv_isa("auto"));
    PyModule_AddStringConstant(m, "POOL2_ISA", lf_pool2_isa("auto"));
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__) && !defined(LFK_NO_CLONES)
    PyModule_AddStringConstant(m, "VECTOR", "target clones: avx512f, avx2, baseline (chosen at load time)");
#else
    PyModule_AddStringConstant(m, "VECTOR", "baseline (no target clones on this platform)");
#endif
#ifdef __VERSION__
    PyModule_AddStringConstant(m, "COMPILER", __VERSION__);
#endif
    return m;
}
