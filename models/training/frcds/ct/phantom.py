"""3D thoracolumbar CT phantom: the patient's anatomy (truth), voxelised on any regular grid.

The anatomy is analytic (``Anatomy``: millimetres in DICOM patient coordinates, LPS: +x left, +y posterior,
+z superior), so the same patient can be voxelised at any pixel spacing / slice thickness by
:mod:`frcds.ct.acquisition`, and later projected into a lateral spine radiograph (a DRR needs only the volume and
its geometry). Nothing here depends on the scanner: noise, blur, contrast phase and field of view are acquisition.

Contents: vertebrae T10–L5 (cortical shell, trabecular core, superior/inferior end plates, a simplified posterior
arch with pedicles, spinous and transverse processes around the spinal canal), intervertebral discs, ribs on
T10–T12 (T12 is the last rib-bearing level: the cue a reader uses to label L1), a simplified abdomen (subcutaneous
fat, abdominal wall muscle, paraspinal and psoas muscles, visceral soft tissue, lung bases above the diaphragm,
aorta and IVC) and a table.

L1 trabecular attenuation from the bone state (``l1_hu_from_t``)::

    HU_L1 = 199 + 30 · T + 40 · ε,   ε ~ N(0, 1),   floored at 15 HU

where T is the simulated DXA T-score (``BoneState.bmd_t``). The intercept and scatter were fitted by simulation on
the site-A population (``tests/test_ct_phantom.py`` re-checks it) so that, as in Pickhardt et al. (Ann Intern Med
2013), "L1 ≤ 160 HU" is ≈ 90 % sensitive and "L1 ≤ 110 HU" ≈ 90 % specific for T ≤ −2.5; the large scatter is real:
femoral-neck T and spinal trabecular attenuation correlate only moderately. Other levels follow a smooth trend
around L1 (``LEVEL_TREND``, an assumed trend: thoracic bodies denser, lower lumbar slightly less dense; not fitted
to level-wise reference data) with ±4 HU per-level jitter.

Prevalent compression fractures: per patient ``P(any) = logistic(−2.2 + 0.06·(age−70) − 0.55·(T+1.5))``, at the
thoracolumbar junction most often (``FRACTURE_LEVEL_P``), a second one with probability 0.3. Morphology wedge
(anterior height lost), biconcave (middle) or crush (all three); Genant grade 1 (20–25 % loss), 2 (25–40 %),
3 (40–55 %) of the smallest height against the unfractured height; mild ones commonest, the mix shifting to
severe at low T. The TRUE anterior / middle / posterior heights are stored.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
RIB_LEVELS = ("T10", "T11", "T12")
# trabecular HU relative to L1 (thoracic denser, lower lumbar a little less dense)
LEVEL_TREND = {"T10": 1.10, "T11": 1.07, "T12": 1.03, "L1": 1.00, "L2": 0.98, "L3": 0.96, "L4": 0.95, "L5": 0.95}
# body height (mm) and half-widths (lateral, AP; mm) of a standard-size adult, scaled per patient
BODY_H = {"T10": 21.0, "T11": 22.0, "T12": 23.5, "L1": 25.0, "L2": 26.5, "L3": 27.5, "L4": 27.5, "L5": 27.0}
BODY_AX = {"T10": 17.0, "T11": 18.0, "T12": 19.5, "L1": 21.0, "L2": 22.0, "L3": 23.0, "L4": 24.0, "L5": 25.0}
BODY_AY = {"T10": 14.0, "T11": 14.5, "T12": 15.0, "L1": 15.5, "L2": 16.0, "L3": 16.5, "L4": 17.0, "L5": 17.0}
DISC_H = {"T10": 6.0, "T11": 6.5, "T12": 7.5, "L1": 8.5, "L2": 9.5, "L3": 10.5, "L4": 11.0}  # disc BELOW level
FRACTURE_LEVEL_P = {"T10": 0.07, "T11": 0.14, "T12": 0.25, "L1": 0.24, "L2": 0.13, "L3": 0.09, "L4": 0.05,
                    "L5": 0.03}
GENANT_LOSS = {1: (0.20, 0.25), 2: (0.25, 0.40), 3: (0.40, 0.55)}
L1_HU_INTERCEPT, L1_HU_PER_T, L1_HU_SD, L1_HU_FLOOR = 199.0, 30.0, 40.0, 15.0

HU = {"air": -1000.0, "fat": -100.0, "muscle": 50.0, "soft": 38.0, "lung": -850.0, "blood": 42.0, "disc": 85.0,
      "canal": 20.0, "table": 250.0}


def l1_hu_from_t(t: np.ndarray | float, eps: np.ndarray | float) -> np.ndarray:
    """L1 trabecular HU (non-contrast) from the DXA T-score and a standard-normal scatter draw."""
    return np.maximum(L1_HU_INTERCEPT + L1_HU_PER_T * np.asarray(t, float) + L1_HU_SD * np.asarray(eps, float),
                      L1_HU_FLOOR)


@dataclass
class Vertebra:
    label: str
    z_mid: float            # mm, centre of the body at mid-height
    x_c: float              # mm, centre (scoliosis moves it laterally)
    y_c: float
    ax: float               # lateral half-width of the body
    ay: float               # AP half-depth of the body
    h_normal: float         # unfractured height
    h_ant: float            # TRUE anterior / middle / posterior heights (mm)
    h_mid: float
    h_post: float
    trab_hu: float          # non-contrast trabecular HU
    cort_hu: float
    grade: int = 0          # Genant 0..3
    morphology: str = "normal"   # normal | wedge | biconcave | crush

    def heights(self, u: np.ndarray) -> np.ndarray:
        """Body height at normalised AP position u (−1 anterior, 0 middle, +1 posterior): the quadratic through
        the three true heights, so the stored heights are exactly the geometry's."""
        a, m, p = self.h_ant, self.h_mid, self.h_post
        return m + 0.5 * (p - a) * u + 0.5 * (p + a - 2 * m) * u * u


@dataclass
class Anatomy:
    """A patient's thoracolumbar anatomy in mm (LPS), independent of any scanner."""
    vertebrae: list[Vertebra]
    body_a: float           # abdomen half-width (lateral), mm
    body_b: float           # abdomen half-depth (AP), mm
    body_y: float           # abdomen centre y
    fat_mm: float           # subcutaneous fat thickness
    z_diaphragm: float      # dome top (lungs above it, posteriorly deeper)
    table_y: float          # top surface of the table
    scoliosis_mm: float
    t_score: float
    l1_trab_hu: float
    age: float
    sex: str
    hardware_level: str | None = None   # pedicle screws through this level (metal)
    extra: dict = field(default_factory=dict)

    def level(self, label: str) -> Vertebra:
        return next(v for v in self.vertebrae if v.label == label)

    @property
    def z_top(self) -> float:
        v = self.vertebrae[0]
        return v.z_mid + v.h_normal / 2 + 8.0

    @property
    def z_bottom(self) -> float:
        v = self.vertebrae[-1]
        return v.z_mid - v.h_normal / 2 - 10.0

    def truth(self) -> dict:
        return {"t_score": self.t_score, "l1_trab_hu": self.l1_trab_hu, "age": self.age, "sex": self.sex,
                "scoliosis_mm": self.scoliosis_mm, "hardware_level": self.hardware_level,
                "vertebrae": [asdict(v) for v in self.vertebrae]}


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sample_anatomy(rng: np.random.Generator, *, t_score: float, age: float, sex: str, bmi: float = 27.0,
                   hardware_p: float = 0.04, scoliosis_p: float = 0.15) -> Anatomy:
    """Draws one patient's anatomy from the bone state (T-score), age, sex and BMI."""
    size = (1.0 if sex == "male" else 0.92) * float(np.clip(rng.normal(1.0, 0.04), 0.88, 1.12))
    l1 = float(l1_hu_from_t(t_score, rng.normal()))
    # fractures
    p_any = _sig(-2.2 + 0.06 * (age - 70.0) - 0.55 * (t_score + 1.5))
    frac: dict[str, tuple[int, str]] = {}
    if rng.random() < p_any:
        labels = list(FRACTURE_LEVEL_P)
        pl = np.array([FRACTURE_LEVEL_P[k] for k in labels])
        n = 2 if rng.random() < 0.3 else 1
        for lab in rng.choice(labels, size=n, replace=False, p=pl / pl.sum()):
            severe = _sig(-1.0 - 0.6 * (t_score + 2.5))
            # mild (grade 1) fractures are the commonest; moderate/severe ones more so at low T
            g = 1 + int(rng.random() < 0.3 + 0.3 * severe) + int(rng.random() < severe * 0.4)
            frac[str(lab)] = (min(g, 3), str(rng.choice(["wedge", "biconcave", "crush"], p=[0.55, 0.3, 0.15])))
    verts: list[Vertebra] = []
    y_c = 0.0
    scol = float(rng.normal(0, 8.0)) if rng.random() < scoliosis_p else 0.0
    z = 0.0  # L1 mid-height at z = 0 before the stack is laid out; the stack is laid out downwards from T10
    heights = {k: BODY_H[k] * size * float(rng.normal(1.0, 0.02)) for k in LEVELS}
    tops: dict[str, float] = {}
    z = 0.0
    for k in LEVELS:  # top of T10 at 0, going inferior
        tops[k] = z
        z -= heights[k] + (DISC_H[k] * size if k in DISC_H else 0.0)
    l1_mid = tops["L1"] - heights["L1"] / 2
    span = tops["T10"] - (tops["L5"] - heights["L5"])
    for k in LEVELS:
        h = heights[k]
        zm = tops[k] - h / 2 - l1_mid  # L1 mid-height at z = 0
        x_c = scol * math.sin(math.pi * (tops[k] - h / 2 - tops["L5"] + heights["L5"]) / span)
        trab = float(max(l1 * LEVEL_TREND[k] + rng.normal(0, 4.0), L1_HU_FLOOR))
        cort = float(np.clip(650.0 + 2.0 * (trab - 150.0) + rng.normal(0, 30), 350.0, 1100.0))
        ha = hm = hp = h
        grade, morph = frac.get(k, (0, "normal"))
        if grade:
            lo, hi = GENANT_LOSS[grade]
            loss = float(rng.uniform(lo, hi))
            # the smallest of the three heights is exactly (1 − loss) × the expected (unfractured) height, the
            # quantity Genant's grade is read from (against the neighbours for a crush, within the body otherwise)
            low = h * (1 - loss)
            if morph == "wedge":
                ha, hp = low, h * float(rng.uniform(0.95, 1.0))
                hm = 0.5 * (ha + hp)
            elif morph == "biconcave":
                ha, hp, hm = h * float(rng.uniform(0.93, 1.0)), h * float(rng.uniform(0.93, 1.0)), low
            else:
                hp = low
                ha = low * float(rng.uniform(1.0, 1.06))
                hm = 0.5 * (ha + hp)
        verts.append(Vertebra(k, zm, x_c, y_c, BODY_AX[k] * size, BODY_AY[k] * size, h, ha, hm, hp, trab, cort,
                              grade, morph))
    fat = float(np.clip(12.0 + 2.2 * (bmi - 25.0) + rng.normal(0, 4), 5.0, 60.0))
    body_a = float(np.clip(150.0 * size + 3.0 * (bmi - 27.0) + rng.normal(0, 6), 110.0, 220.0))
    body_b = float(np.clip(110.0 * size + 2.5 * (bmi - 27.0) + rng.normal(0, 5), 80.0, 170.0))
    # the spine sits in the posterior third: skin lies behind the spinous processes, paraspinal muscles and fat
    body_y = y_c + 72.0 * size + 0.6 * fat - body_b
    t12 = next(v for v in verts if v.label == "T12")
    hw = None
    if rng.random() < hardware_p:
        hw = str(rng.choice(["T12", "L1", "L2", "L3", "L4", "L5"]))
    return Anatomy(verts, body_a, body_b, body_y, fat, t12.z_mid + float(rng.normal(10, 8)),
                   body_y + body_b + float(rng.uniform(2, 15)), scol, float(t_score), l1, float(age), sex, hw)


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid in patient coordinates (axial slices; rows along +y, columns along +x)."""
    x0: float
    y0: float
    dx: float               # column spacing (mm)
    dy: float               # row spacing (mm)
    nx: int
    ny: int
    z: np.ndarray           # slice centres (mm), any order

    def xy(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.x0 + self.dx * np.arange(self.nx, dtype=np.float32),
                self.y0 + self.dy * np.arange(self.ny, dtype=np.float32))


def _rot(xx: np.ndarray, yy: np.ndarray, deg: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """Patient rotation on the table (about the z axis through the spine)."""
    if not deg:
        return xx, yy
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    dx, dy = xx - cx, yy - cy
    return (cx + c * dx + s * dy).astype(np.float32), (cy - s * dx + c * dy).astype(np.float32)


def _box(lo: float, hi: float, axis: np.ndarray) -> slice:
    """Index range of ``axis`` (ascending) inside [lo, hi]."""
    i0 = int(np.searchsorted(axis, lo, "left"))
    i1 = int(np.searchsorted(axis, hi, "right"))
    return slice(i0, max(i0, i1))


def render(an: Anatomy, grid: Grid, *, rotation_deg: float = 0.0, vessel_hu: float = 0.0,
           trab_enhance_hu: float = 0.0, metal_hu: float = 3500.0) -> np.ndarray:
    """Voxelise ``an`` on ``grid``: float32 HU volume of shape (len(z), ny, nx), noise-free, point-sampled.

    ``vessel_hu`` / ``trab_enhance_hu`` add contrast enhancement (portal-venous phase) to the aorta/IVC and the
    trabecular bone; ``rotation_deg`` rotates the patient about the spine's long axis."""
    xs, ys = grid.xy()
    X, Y = np.meshgrid(xs, ys)  # (ny, nx)
    Xr, Yr = _rot(X, Y, rotation_deg, 0.0, 0.0)
    zs = np.asarray(grid.z, np.float32)
    out = np.empty((zs.size, grid.ny, grid.nx), np.float32)
    # soft tissue is a z-invariant 2-D map with a slowly varying scale; build it per slice
    r_out = np.sqrt((Xr / an.body_a) ** 2 + ((Yr - an.body_y) / an.body_b) ** 2)
    inner_a, inner_b = an.body_a - an.fat_mm, an.body_b - an.fat_mm
    r_in = np.sqrt((Xr / inner_a) ** 2 + ((Yr - an.body_y) / inner_b) ** 2)
    r_cav = np.sqrt((Xr / (inner_a - 12)) ** 2 + ((Yr - an.body_y) / (inner_b - 12)) ** 2)
    l1 = an.level("L1")
    vy = l1.y_c
    para = (((np.abs(Xr) - 32.0) / 24.0) ** 2 + ((Yr - (vy + 55.0)) / 22.0) ** 2) <= 1.0
    aorta = ((Xr - 15.0) ** 2 + (Yr - (vy - l1.ay - 14.0)) ** 2) <= 11.0 ** 2
    ivc = (((Xr + 22.0) / 13.0) ** 2 + ((Yr - (vy - l1.ay - 12.0)) / 9.0) ** 2) <= 1.0
    table = (Yr >= an.table_y) & (Yr <= an.table_y + 8.0) & (np.abs(Xr) < 230.0)
    psoas_top = an.level("T12").z_mid
    for i, z in enumerate(zs):
        s = 1.0 + 0.0012 * abs(float(z))  # the trunk widens slightly away from the waist at L1
        sl = out[i]
        sl.fill(HU["air"])
        sl[r_out <= s] = HU["fat"]
        sl[r_in <= s] = HU["muscle"]
        sl[r_cav <= s] = HU["soft"]
        if z > an.z_diaphragm - 40.0:
            # lung bases: posterolateral recesses, deeper posteriorly (the dome is anterior-higher)
            dome = an.z_diaphragm - 40.0 * np.clip((Yr - an.body_y) / an.body_b + 0.2, 0, 1)
            lung = (r_cav <= s * 0.97) & (np.abs(Xr) > 45.0) & (z > dome)
            sl[lung] = HU["lung"]
        sl[para & (r_in <= s)] = HU["muscle"]
        if z < psoas_top:
            w = min((psoas_top - float(z)) / 90.0, 1.0)
            psoas = (((np.abs(Xr) - (l1.ax + 8 + 10 * w)) / (6 + 16 * w)) ** 2
                     + ((Yr - (vy + 4)) / (6 + 12 * w)) ** 2) <= 1.0
            sl[psoas] = HU["muscle"]
        sl[aorta | ivc] = HU["blood"] + vessel_hu
        sl[table] = HU["table"]
    order = np.argsort(zs)
    zsorted = zs[order]
    for k, v in enumerate(an.vertebrae):
        _vertebra(out, order, zsorted, xs, ys, Xr, Yr, v, an, trab_enhance_hu, rotation_deg, metal_hu)
        if v.label in RIB_LEVELS:
            _ribs(out, order, zsorted, Xr, Yr, v, an, trab_enhance_hu)
        if k + 1 < len(an.vertebrae):
            _disc(out, order, zsorted, Xr, Yr, v, an.vertebrae[k + 1])
    return out


def _vertebra(out, order, zsorted, xs, ys, Xr, Yr, v: Vertebra, an: Anatomy, enh: float, rot: float,
              metal_hu: float) -> None:
    zs = _box(v.z_mid - v.h_normal / 2 - 1, v.z_mid + v.h_normal / 2 + 1, zsorted)
    if zs.start >= zs.stop:
        return
    # in-plane bounding box (generous, covers rotation)
    reach = max(v.ax, v.ay) + 80.0
    ix = _box(v.x_c - reach, v.x_c + reach, xs)
    iy = _box(v.y_c - reach, v.y_c + reach, ys)
    X = Xr[iy, ix] - v.x_c
    Y = Yr[iy, ix] - v.y_c
    u = np.clip(Y / v.ay, -1.0, 1.0)
    h = v.heights(u)
    rr = (X / v.ax) ** 2 + (Y / v.ay) ** 2
    tc = 1.2
    core_rr = (X / (v.ax - tc)) ** 2 + (Y / (v.ay - tc)) ** 2
    te = 1.0  # end-plate thickness
    # posterior arch: ring around the canal, pedicles, spinous and transverse processes
    cy = v.ay + 10.0
    canal = ((X / 10.0) ** 2 + ((Y - cy) / 8.0) ** 2) <= 1.0
    ring = ((X / 16.0) ** 2 + ((Y - cy) / 14.0) ** 2 <= 1.0) & ~canal & (Y > v.ay - 3)
    spinous = (np.abs(X) < 3.5) & (Y > cy + 10) & (Y < cy + 40)
    trans = (np.abs(Y - cy) < 5.0) & (np.abs(X) < v.ax + 22.0) & (np.abs(X) > 8.0)
    arch = (ring | spinous | trans) & (rr > 1.0)   # the arch never overwrites the body it joins
    post_hu = 0.5 * (v.trab_hu + enh) + 0.5 * v.cort_hu
    for j in range(zs.start, zs.stop):
        zi = order[j]
        dz = float(zsorted[j]) - v.z_mid
        sl = out[zi, iy, ix]
        body = (rr <= 1.0) & (np.abs(dz) <= h / 2)
        core = (core_rr <= 1.0) & (np.abs(dz) <= h / 2 - te)
        sl[body] = v.cort_hu
        sl[core] = v.trab_hu + enh
        band = abs(dz - 0.1 * v.h_normal) <= 0.35 * v.h_normal
        if band:
            sl[arch] = post_hu
            sl[canal] = HU["canal"]
        if an.hardware_level == v.label and abs(dz) <= 3.5:
            # two pedicle screws, 6.5 mm, from the posterior arch into the body
            for sx in (-1.0, 1.0):
                dxs = X - sx * (8.0 - 0.25 * (Y - v.ay))
                sl[(np.abs(dxs) < 3.25) & (Y > -v.ay * 0.6) & (Y < cy + 18)] = metal_hu
        out[zi, iy, ix] = sl


def _ribs(out, order, zsorted, Xr, Yr, v: Vertebra, an: Anatomy, enh: float) -> None:
    """A pair of ribs at a thoracic level: 7 mm tubes on an ellipse just inside the body wall, from beside the
    transverse process round to the front (T10), shorter at T11 and T12 (floating ribs), descending anteriorly."""
    a = an.body_a - an.fat_mm - 16.0
    b = an.body_b - an.fat_mm - 16.0
    rho = np.sqrt((Xr / a) ** 2 + ((Yr - an.body_y) / b) ** 2)
    phi = np.arctan2((Yr - an.body_y) / b, np.abs(Xr - v.x_c) / a)   # +pi/2 posterior, 0 lateral, -pi/2 anterior
    c0 = min((v.ax + 25.0) / a, 0.95)
    phi0 = math.acos(c0) if (an.body_y + b * math.sin(math.acos(c0))) > v.y_c + v.ay else math.pi / 2
    span = phi0 + math.pi / 3
    along = (phi0 - phi) / span
    rib_len = {"T10": 1.0, "T11": 0.7, "T12": 0.45}[v.label]
    tube = (np.abs(rho - 1.0) * min(a, b) < 3.5) & (along >= 0) & (along <= rib_len)
    if not tube.any():
        return
    zc = v.z_mid - 25.0 * np.clip(along, 0, 1)     # ribs slope down anteriorly
    hu = 0.5 * (v.trab_hu + enh) + 0.5 * v.cort_hu
    zs = _box(v.z_mid - 25.0 * rib_len - 4.0, v.z_mid + 4.0, zsorted)
    for j in range(zs.start, zs.stop):
        m = tube & (np.abs(float(zsorted[j]) - zc) <= 3.5)
        out[order[j]][m] = hu


def _disc(out, order, zsorted, Xr, Yr, up: Vertebra, down: Vertebra) -> None:
    """Intervertebral disc between the inferior end plate of ``up`` and the superior end plate of ``down``."""
    z_hi = up.z_mid - up.h_normal / 2
    z_lo = down.z_mid + down.h_normal / 2
    zs = _box(z_lo - 2, z_hi + 2, zsorted)
    if zs.start >= zs.stop:
        return
    xc, yc = 0.5 * (up.x_c + down.x_c), 0.5 * (up.y_c + down.y_c)
    ax, ay = 0.5 * (up.ax + down.ax), 0.5 * (up.ay + down.ay)
    d = ((Xr - xc) / ax) ** 2 + ((Yr - yc) / ay) ** 2 <= 1.0
    u = np.clip((Yr - yc) / ay, -1, 1)
    top = up.z_mid - up.heights(u) / 2      # a collapsed end plate leaves the disc bulging into it
    bot = down.z_mid + down.heights(u) / 2
    for j in range(zs.start, zs.stop):
        z = float(zsorted[j])
        m = d & (z < top) & (z > bot)
        out[order[j]][m] = HU["disc"]
