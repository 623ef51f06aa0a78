"""Small raster helpers shared by the hip phantom and the non-hip images.

Hand-written rather than scipy.ndimage/OpenCV because the renderer must make a full-size (about 2300 x 2300)
radiograph in about a tenth of a second on one core: the geometry is analytic (projected chords of tubes), so we
evaluate it only inside each part's bounding box on a grid a factor coarser than the detector, and resample with an
exact factor-2 linear interpolation that costs a few array passes (scipy.ndimage.zoom costs ten times more).
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32


class Frame:
    """Affine map between patient millimetres (x to the viewer's right for a canonical right hip, y down) and a
    raster grid (col, row). ``s`` grid pixels per patient mm, in-plane rotation ``theta`` (radians), mirror
    ``fx`` (+1 or -1, for left hips), and the grid position (cc, rc) of the patient origin."""

    def __init__(self, s: float, theta: float, fx: float, cc: float, rc: float, shape: tuple[int, int]):
        self.s, self.theta, self.fx, self.cc, self.rc = s, theta, fx, cc, rc
        self.shape = shape
        c, sn = math.cos(theta), math.sin(theta)
        # forward: col = cc + s*(c*fx*x - sn*y); row = rc + s*(sn*fx*x + c*y)
        self.fwd = np.array([[s * c * fx, -s * sn, cc], [s * sn * fx, s * c, rc]])
        # inverse: x = fx*(c*du + sn*dv)/s ; y = (-sn*du + c*dv)/s with du = col-cc, dv = row-rc
        a1, b1 = fx * c / s, fx * sn / s
        a2, b2 = -sn / s, c / s
        self.inv = np.array([[a1, b1, -(a1 * cc + b1 * rc)], [a2, b2, -(a2 * cc + b2 * rc)]])

    def scaled(self, k: int) -> "Frame":
        """The same map on a grid k times coarser (grid point i of the coarse grid sits on fine point k*i)."""
        h = (self.shape[0] + k - 1) // k
        w = (self.shape[1] + k - 1) // k
        return Frame(self.s / k, self.theta, self.fx, self.cc / k, self.rc / k, (h, w))

    def to_grid(self, pts: np.ndarray) -> np.ndarray:
        """(n, 2) patient mm -> (n, 2) grid (col, row)."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        return pts @ self.fwd[:, :2].T + self.fwd[:, 2]

    def box(self, pts: np.ndarray, margin_mm: float) -> tuple[int, int, int, int] | None:
        """Grid bounding box (r0, r1, c0, c1) of patient points plus a margin, clipped; None if empty."""
        g = self.to_grid(pts)
        m = margin_mm * self.s
        c0 = max(int(math.floor(g[:, 0].min() - m)), 0)
        c1 = min(int(math.ceil(g[:, 0].max() + m)) + 1, self.shape[1])
        r0 = max(int(math.floor(g[:, 1].min() - m)), 0)
        r1 = min(int(math.ceil(g[:, 1].max() + m)) + 1, self.shape[0])
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1

    def coords(self, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Patient x, y (float32) of every grid point in the box."""
        r0, r1, c0, c1 = box
        cols = np.arange(c0, c1, dtype=np.float64)
        rows = np.arange(r0, r1, dtype=np.float64)[:, None]
        iv = self.inv
        x = (iv[0, 0] * cols + iv[0, 2]).astype(F32) + (iv[0, 1] * rows).astype(F32)
        y = (iv[1, 0] * cols + iv[1, 2]).astype(F32) + (iv[1, 1] * rows).astype(F32)
        return x, y


def up2(a: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Factor-2 linear upsampling: fine point (2i, 2j) = coarse (i, j); odd points average their neighbours.
    Cropped to ``shape`` if given."""
    h, w = a.shape
    tmp = np.empty((h, 2, w), F32)
    tmp[:, 0] = a
    np.add(a[:-1], a[1:], out=tmp[:-1, 1])
    tmp[:-1, 1] *= 0.5
    tmp[-1, 1] = a[-1]
    out = np.empty((h, 2, w, 2), F32)
    out[:, :, :, 0] = tmp
    np.add(tmp[:, :, :-1], tmp[:, :, 1:], out=out[:, :, :-1, 1])
    out[:, :, :-1, 1] *= 0.5
    out[:, :, -1, 1] = tmp[:, :, -1]
    out = out.reshape(2 * h, 2 * w)
    if shape is not None:
        out = out[: shape[0], : shape[1]]
    return out


def up_nearest(a: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    h, w = a.shape
    out = np.empty((h, k, w, k), a.dtype)
    out[:] = a[:, None, :, None]
    return out.reshape(h * k, w * k)[: shape[0], : shape[1]]


def blur_sep(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable convolution with a short symmetric kernel, edges replicated (float32, in a new array)."""
    k = len(kernel) // 2
    if k == 0:
        return a.copy()
    p = np.pad(a, ((k, k), (0, 0)), mode="edge")
    t = kernel[k] * p[k:-k]
    for i in range(1, k + 1):
        t += kernel[k + i] * (p[k + i: p.shape[0] - k + i] + p[k - i: p.shape[0] - k - i])
    p = np.pad(t, ((0, 0), (k, k)), mode="edge")
    out = kernel[k] * p[:, k:-k]
    for i in range(1, k + 1):
        out += kernel[k + i] * (p[:, k + i: p.shape[1] - k + i] + p[:, k - i: p.shape[1] - k - i])
    return out.astype(F32, copy=False)


def gauss_kernel(sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return np.ones(1, F32)
    k = max(1, int(math.ceil(2.5 * sigma)))
    x = np.arange(-k, k + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).astype(F32)


def box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window via cumulative sums (edges replicated)."""
    if r <= 0:
        return a.copy()
    n = 2 * r + 1
    p = np.pad(a, ((r + 1, r), (0, 0)), mode="edge").astype(np.float64)
    p[0] = 0.0
    c = np.cumsum(p, axis=0)
    t = c[n:] - c[:-n]
    p = np.pad(t, ((0, 0), (r + 1, r)), mode="edge")
    p[:, 0] = 0.0
    c = np.cumsum(p, axis=1)
    return ((c[:, n:] - c[:, :-n]) / (n * n)).astype(F32)


def tube(x: np.ndarray, y: np.ndarray, a: tuple[float, float], b: tuple[float, float], ra: float, rb: float,
         k: float, cort: tuple[float, float] | None = None, off: tuple[float, float] = (0.0, 0.0)
         ) -> tuple[np.ndarray, np.ndarray | None]:
    """Projected path length through a tube (a cone-capsule from a to b with radius ra..rb whose cross-section is
    an ellipse k times as deep as it is wide): chord = 2k*sqrt(r^2 - d^2). With ``cort`` = (cortex at a, at b) also
    the chord through the medullary cavity, whose axis is shifted by ``off`` (thicker cortex on one side)."""
    ax, ay = a
    dxab, dyab = b[0] - ax, b[1] - ay
    l2 = dxab * dxab + dyab * dyab
    dx = x - F32(ax)
    dy = y - F32(ay)
    if l2 > 1e-9:
        t = (dx * F32(dxab / l2) + dy * F32(dyab / l2))
        np.maximum(t, 0.0, out=t)
        np.minimum(t, 1.0, out=t)
        dx -= t * F32(dxab)
        dy -= t * F32(dyab)
        r = F32(ra) + t * F32(rb - ra)
    else:
        t = None
        r = F32(ra)
    d2 = dx * dx + dy * dy
    out = r * r - d2
    np.maximum(out, 0.0, out=out)
    np.sqrt(out, out=out)
    out *= F32(2.0 * k)
    if cort is None:
        return out, None
    if t is not None:
        ri = r - (F32(cort[0]) + t * F32(cort[1] - cort[0]))
    else:
        ri = F32(ra - cort[0])
    if off != (0.0, 0.0):
        dx -= F32(off[0])
        dy -= F32(off[1])
        d2 = dx * dx + dy * dy
    inn = np.maximum(ri, 0.0) ** 2 - d2
    np.maximum(inn, 0.0, out=inn)
    np.sqrt(inn, out=inn)
    inn *= F32(2.0 * k)
    return out, inn


# 5 x 7 bitmap glyphs for the lead side markers and the occasional label on non-hip images
GLYPHS = {
    "R": ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
    "L": ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
    "A": ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
    "P": ["11110", "10001", "10001", "11110", "10000", "10000", "10000"],
}


def glyph(ch: str, px: int) -> np.ndarray:
    """Boolean glyph ``px`` pixels tall (nearest-neighbour scaled 5x7 bitmap, with stroke weight)."""
    g = np.array([[c == "1" for c in row] for row in GLYPHS[ch]], dtype=bool)
    k = max(1, px // 7)
    return np.kron(g, np.ones((k, k), dtype=bool))


def poly_inside(x: np.ndarray, y: np.ndarray, poly: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd point-in-polygon test for every grid point (patient coordinates)."""
    inside = np.zeros(x.shape, bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if y1 == y2:
            continue
        cond = (y > F32(y1)) != (y > F32(y2))
        xint = F32(x1) + (y - F32(y1)) * F32((x2 - x1) / (y2 - y1))
        inside ^= cond & (x < xint)
    return inside


def up2_region(a: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Values of up2(a) inside the fine-grid box (r0, r1, c0, c1) without upsampling the whole array."""
    r0, r1, c0, c1 = box
    h, w = a.shape
    R0, C0 = r0 // 2, c0 // 2
    R1, C1 = min((r1 + 1) // 2 + 1, h), min((c1 + 1) // 2 + 1, w)
    u = up2(a[R0:R1, C0:C1])
    return u[r0 - 2 * R0: r1 - 2 * R0, c0 - 2 * C0: c1 - 2 * C0]


def row_intervals(nrows: int, ncols: int, inset: tuple[float, float, float, float], angle_deg: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Exposed field of a collimator rectangle (inset top, bottom, left, right in pixels, rotated by angle about
    the image centre) as one [start, stop) column interval per row (stop <= start: row not exposed)."""
    t, b, l, r = inset
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    rows = np.arange(nrows, dtype=np.float64) - (nrows - 1) / 2.0
    hc, hr = (ncols - 1) / 2.0, (nrows - 1) / 2.0
    # u = ca*c + sa*r in [-hc + l, hc - r];  v = -sa*c + ca*r in [-hr + t, hr - b]   (c, r centred)
    lo = np.full(nrows, -np.inf)
    hi = np.full(nrows, np.inf)
    def bound(coef: float, const: np.ndarray, vmin: float, vmax: float) -> None:
        nonlocal lo, hi
        if abs(coef) < 1e-12:
            bad = (const < vmin) | (const > vmax)
            lo = np.where(bad, np.inf, lo)
            return
        c_a, c_b = (vmin - const) / coef, (vmax - const) / coef
        lo = np.maximum(lo, np.minimum(c_a, c_b))
        hi = np.minimum(hi, np.maximum(c_a, c_b))
    bound(ca, sa * rows, -hc + l, hc - r)
    bound(-sa, ca * rows, -hr + t, hr - b)
    start = np.clip(np.ceil(lo + hc), 0, ncols).astype(np.int64)
    stop = np.clip(np.floor(hi + hc) + 1, 0, ncols).astype(np.int64)
    stop = np.maximum(stop, start)
    return start, stop


def fill_outside(a: np.ndarray, start: np.ndarray, stop: np.ndarray, value: float) -> None:
    """Set every pixel outside the per-row intervals to ``value`` (row slices: cheaper than a boolean mask)."""
    full = start >= stop
    a[full] = value
    live = np.flatnonzero(~full)
    if live.size and (start[live] == start[live[0]]).all() and (stop[live] == stop[live[0]]).all():
        s0, s1 = start[live[0]], stop[live[0]]
        r0, r1 = live[0], live[-1] + 1
        if s0 > 0:
            a[r0:r1, :s0] = value
        if s1 < a.shape[1]:
            a[r0:r1, s1:] = value
        return
    for r in np.flatnonzero(~full):
        s0, s1 = start[r], stop[r]
        if s0 > 0:
            a[r, :s0] = value
        if s1 < a.shape[1]:
            a[r, s1:] = value


class SmoothUnion:
    """Smooth union of cone-capsules seen in projection, with a cortical shell.

    Each part contributes its inside depth e = r - d (d: distance to its axis segment, r: its radius there); the
    union keeps a polynomial smooth maximum of e (blend radius ``blend`` mm), so junctions get the concave fillets
    that real bone has (head-neck, calcar, trochanters). Radius, depth factor and cortical thickness are blended by
    weights that favour the part a point lies deepest in. The projected chord of the union is then
    2k*sqrt(E*(2R - E)) (exact for a single circular tube) and the cavity's chord uses E - c and R - c."""

    def __init__(self, shape: tuple[int, int], blend: float):
        self.E = np.full(shape, -1e3, F32)
        self.wsum = np.zeros(shape, F32)
        self.wr = np.zeros(shape, F32)
        self.wk = np.zeros(shape, F32)
        self.wc = np.zeros(shape, F32)
        self.omax = np.zeros(shape, F32)
        self.imax = np.zeros(shape, F32)
        self.b = F32(blend)

    def add(self, x: np.ndarray, y: np.ndarray, sl: tuple[slice, slice], a: tuple[float, float],
            b: tuple[float, float], ra: float, rb: float, k: float, ca: float, cb: float,
            asym: tuple[float, float, float] | None = None, floor: bool = True) -> None:
        """Add a part over the sub-box ``sl`` (x, y: its patient coordinates). ``asym`` = (nx, ny, amount):
        cortex thicker by ``amount`` mm on the side opposite to the unit normal (nx, ny)."""
        ax, ay = a
        dxab, dyab = b[0] - ax, b[1] - ay
        l2 = dxab * dxab + dyab * dyab
        dx = x - F32(ax)
        dy = y - F32(ay)
        if l2 > 1e-9:
            t = dx * F32(dxab / l2) + dy * F32(dyab / l2)
            np.maximum(t, 0.0, out=t)
            np.minimum(t, 1.0, out=t)
            dx -= t * F32(dxab)
            dy -= t * F32(dyab)
            r = F32(ra) + t * F32(rb - ra)
            c = F32(ca) + t * F32(cb - ca)
        else:
            r = np.full(x.shape, ra, F32)
            c = np.full(x.shape, ca, F32)
        d = np.sqrt(dx * dx + dy * dy)
        if asym is not None:
            nx, ny, amt = asym
            c = c - F32(amt) * (dx * F32(nx) + dy * F32(ny)) / np.maximum(d, F32(1e-3)) * np.minimum(d / r, 1.0)
        e = r - d
        if floor:
            self._floor(sl, r, c, d, k)
        E = self.E[sl]
        hh = np.maximum(self.b - np.abs(E - e), 0.0) * F32(1.0 / float(self.b))
        np.maximum(E, e, out=E)
        E += hh * hh * F32(float(self.b) / 4.0)
        w = np.maximum(e + F32(3.0), 0.0)
        w *= w
        self.wsum[sl] += w
        self.wr[sl] += w * r
        self.wk[sl] += w * F32(k)
        self.wc[sl] += w * c

    def _floor(self, sl: tuple[slice, slice], r: np.ndarray, c: np.ndarray, d: np.ndarray, k: float) -> None:
        """Plain union of the part's own chords as a floor: blending must never hollow out a small part."""
        oo = np.maximum(r * r - d * d, 0.0)
        np.sqrt(oo, out=oo)
        oo *= F32(2.0 * k)
        np.maximum(self.omax[sl], oo, out=self.omax[sl])
        ri = np.maximum(r - c, 0.0)
        ii = np.maximum(ri * ri - d * d, 0.0)
        np.sqrt(ii, out=ii)
        ii *= F32(2.0 * k)
        np.maximum(self.imax[sl], ii, out=self.imax[sl])

    def chords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(outer chord, cavity chord, outer depth E) in mm."""
        ws = np.maximum(self.wsum, F32(1e-6))
        R = self.wr / ws
        k = self.wk / ws
        c = self.wc / ws
        E = np.minimum(self.E, R)
        o = E * (F32(2.0) * R - E)
        np.maximum(o, 0.0, out=o)
        np.sqrt(o, out=o)
        o *= F32(2.0) * k
        Ri = np.maximum(R - c, 0.0)
        Ei = np.minimum(E - c, Ri)
        i = Ei * (F32(2.0) * Ri - Ei)
        np.maximum(i, 0.0, out=i)
        np.sqrt(i, out=i)
        i *= F32(2.0) * k
        np.maximum(o, self.omax, out=o)
        np.maximum(i, self.imax, out=i)
        return o, i, self.E
