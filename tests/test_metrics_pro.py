"""Pixel AUROC, reference AU-PRO (hand-worked cases + a slow reference) and the study's PRO."""

import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from adloc.metrics import au_pro, au_pro_study, pixel_auroc, pixel_metrics, pro_curve

# ----------------------------------------------------------------------------- helpers


def _slow_reference_au_pro(masks, maps, limit, connectivity=8):
    """Obviously-correct AU-PRO: loop over every distinct score as a threshold."""
    structure = np.ones((3, 3)) if connectivity == 8 else None
    regions = []  # score arrays, one per region
    normals = []
    for m, a in zip(masks, maps):
        lab, n = ndimage.label(m, structure=structure)
        regions += [a[lab == k] for k in range(1, n + 1)]
        normals.append(a[~m])
    normals = np.concatenate(normals)
    xs, ys = [0.0], [0.0]
    for t in sorted(set(np.concatenate([a.ravel() for a in maps]).tolist()), reverse=True):
        xs.append(float(np.mean(normals >= t)))
        ys.append(float(np.mean([np.mean(r >= t) for r in regions])))
    area = 0.0
    for i in range(1, len(xs)):
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            if x0 < limit:  # the segment crossing the limit: interpolate PRO at the limit
                y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
                area += (limit - x0) * (y0 + y_lim) / 2
            break
    return area / limit, np.array(xs), np.array(ys)


def _random_case(seed, n_img=4, size=9, levels=6):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_img, size, size), dtype=bool)
    for i in range(n_img - 1):  # the last image stays good
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, size, 2)
            h, w = rng.integers(1, 4, 2)
            masks[i, y : y + h, x : x + w] = True
    maps = np.round(rng.random(masks.shape) * levels) / levels + masks * rng.uniform(0, 0.6)
    maps = np.round(maps, 2)  # plenty of ties within and across classes
    return masks, maps


# ----------------------------------------------------------------------------- pixel AUROC


@pytest.mark.parametrize("seed", range(10))
def test_pixel_auroc_matches_sklearn_with_ties(seed):
    masks, maps = _random_case(seed)
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)
    # float32 maps, list input, numeric masks: same pixels, same answer
    m32 = maps.astype(np.float32)
    assert pixel_auroc(list(masks.astype(np.uint8) * 255), list(m32)) == pytest.approx(
        roc_auc_score(masks.ravel(), m32.ravel()), abs=1e-12
    )


def test_pixel_auroc_subsampled_is_close():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 64, 64)) < 0.2
    maps = rng.normal(size=masks.shape) + masks
    exact = pixel_auroc(masks, maps)
    approx = pixel_auroc(masks, maps, max_pixels=8000, seed=1)
    assert approx != exact and abs(approx - exact) < 0.03
    assert pixel_auroc(masks, maps, max_pixels=8000, seed=1) == approx  # seeded
    assert pixel_auroc(masks, maps, max_pixels=10**9) == exact  # no subsampling needed


def test_pixel_metrics_nan_without_both_classes():
    maps = np.random.default_rng(0).random((2, 4, 4))
    none = np.zeros((2, 4, 4), dtype=bool)
    assert math.isnan(pixel_auroc(none, maps)) and math.isnan(pixel_auroc(~none, maps))
    assert math.isnan(au_pro(none, maps)) and math.isnan(au_pro(~none, maps))
    assert math.isnan(au_pro_study(none, maps))


def test_nan_maps_and_shape_mismatch_raise():
    m = np.zeros((1, 3, 3), dtype=bool)
    m[0, 0, 0] = True
    a = np.zeros((1, 3, 3))
    a[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pixel_auroc(m, a)
    with pytest.raises(ValueError, match="shape"):
        au_pro(m, np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="fpr_limit"):
        au_pro(m, np.zeros((1, 3, 3)), fpr_limit=0)


# ----------------------------------------------------------------------------- AU-PRO by hand


def test_au_pro_one_region():
    # one image 1x6, region = first two pixels (scores .9 and .5), normals .8 .6 .4 .3 (N = 4)
    # curve (FPR, PRO) per distinct score, descending:
    #   (0,0) start | .9:(0, 1/2) | .8:(1/4, 1/2) | .6:(2/4, 1/2) | .5:(2/4, 1) | .4:(3/4, 1) | .3:(1, 1)
    # limit 1.0: .25*.5 + .25*.5 + 0 (vertical) + .25*1 + .25*1 = .75  -> .75 / 1 = .75
    # limit 0.5: .25*.5 + .25*.5 = .25                                   -> .25 / .5 = .5
    m = np.array([[[1, 1, 0, 0, 0, 0]]], dtype=bool)
    a = np.array([[[0.9, 0.5, 0.8, 0.6, 0.4, 0.3]]])
    assert au_pro(m, a, fpr_limit=1.0) == pytest.approx(0.75)
    assert au_pro(m, a, fpr_limit=0.5) == pytest.approx(0.5)
    fpr, pro = pro_curve(m, a)
    np.testing.assert_allclose(fpr, [0, 0, 0.25, 0.5, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0])


def test_au_pro_regions_of_very_different_sizes():
    # 4x4 image: region A = 6 pixels (top-left 2x3), region B = 1 pixel (bottom-right)
    # A: three pixels .7, three .2 ; B: .9 ; 9 normals .8 .6 .5 .4 .3 .15 .1 .05 0
    # PRO is the mean over REGIONS (A and B weigh 1/2 each), not over pixels:
    #   t=.9: FPR 0,   PRO (0 + 1)/2       = .5
    #   t=.8: FPR 1/9, PRO .5
    #   t=.7: FPR 1/9, PRO (3/6 + 1)/2     = .75
    #   t=.6: FPR 2/9, PRO .75 ; t=.5: FPR 3/9 = .333 > .3, PRO .75 (flat, so interpolation gives .75)
    # area to .3 = (1/9)*.5 + (.3 - 1/9)*.75 = .0555.. + .141666.. = .197222..
    # au_pro = .197222.. / .3 = .657407..
    m = np.zeros((1, 4, 4), dtype=bool)
    m[0, :2, :3] = True
    m[0, 3, 3] = True
    a = np.zeros((1, 4, 4))
    a[0, 0, :3] = 0.7
    a[0, 1, :3] = 0.2
    a[0, 3, 3] = 0.9
    normals = [0.8, 0.6, 0.5, 0.4, 0.3, 0.15, 0.1, 0.05, 0.0]
    a[0][~m[0]] = normals
    expected = ((1 / 9) * 0.5 + (0.3 - 1 / 9) * 0.75) / 0.3
    assert au_pro(m, a) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.657407407, abs=1e-9)


def test_au_pro_tied_scores_are_merged_and_limit_is_interpolated():
    # 1x4 image: region = pixels 0,1 with scores .5, .9 ; normals .5, .1 (N = 2)
    # the score .5 is shared by a region pixel and a normal pixel: ONE vertex, a diagonal segment
    #   (0,0) | .9:(0, 1/2) | .5:(1/2, 1) | .1:(1, 1)
    # limit 1: .5*(.5+1)/2 + .5*1 = .375 + .5 = .875
    #   (unmerged ties would give .75 or 1.0 depending on the order inside the tie)
    # limit .25 lies inside the diagonal: PRO(.25) = .5 + (1 - .5)*(.25/.5) = .75
    #   area = .25*(.5 + .75)/2 = .15625 -> / .25 = .625
    m = np.array([[[1, 1, 0, 0]]], dtype=bool)
    a = np.array([[[0.5, 0.9, 0.5, 0.1]]])
    assert au_pro(m, a, fpr_limit=1.0) == pytest.approx(0.875)
    assert au_pro(m, a, fpr_limit=0.25) == pytest.approx(0.625)
    fpr, pro = pro_curve(m, a)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1.0])
    np.testing.assert_allclose(pro, [0, 0.5, 1.0, 1.0])


def test_au_pro_good_image_changes_fpr_only():
    # the one-region image above plus a good 1x6 image with normals .85 0 0 0 0 0 -> N = 10
    #   .9:(0, .5) | .85:(.1, .5) | .8:(.2, .5) | .6:(.3, .5) | .5:(.3, 1) | .4:(.4, 1) | .3:(.5, 1) | 0:(1, 1)
    # limit .3: .3*.5 = .15 -> .5 ; limit .5: .15 + .2*1 = .35 -> .7  (without it, limit .5 gave .5)
    m1 = np.array([[1, 1, 0, 0, 0, 0]], dtype=bool)
    a1 = np.array([[0.9, 0.5, 0.8, 0.6, 0.4, 0.3]])
    m2 = np.zeros((1, 6), dtype=bool)
    a2 = np.array([[0.85, 0, 0, 0, 0, 0]])
    assert au_pro([m1, m2], [a1, a2], fpr_limit=0.3) == pytest.approx(0.5)
    assert au_pro([m1, m2], [a1, a2], fpr_limit=0.5) == pytest.approx(0.7)
    assert au_pro([m1], [a1], fpr_limit=0.5) == pytest.approx(0.5)
    # the study ignores good images entirely
    assert au_pro_study([m1, m2], [a1, a2]) == au_pro_study([m1], [a1])


def _diagonal_case():
    # a = (0,0) is only diagonally adjacent to b = (1,1); b and c = (1,2) are 4-adjacent
    #   8-connectivity: ONE region {a, b, c}; 4-connectivity: {a} and {b, c}
    # a scores .9, b = c = .1 (below every normal); normals .8 .7 .6 .4 .3 .2 (N = 6)
    # up to FPR .3 only `a` is detected: PRO = 1/3 (8-conn) vs (1 + 0)/2 = 1/2 (4-conn),
    # constant on [0, .3], so au_pro = 1/3 vs 1/2
    m = np.zeros((1, 3, 3), dtype=bool)
    m[0, 0, 0] = m[0, 1, 1] = m[0, 1, 2] = True
    a = np.zeros((1, 3, 3))
    a[0, 0, 0] = 0.9
    a[0, 1, 1] = a[0, 1, 2] = 0.1
    a[0][~m[0]] = [0.8, 0.7, 0.6, 0.4, 0.3, 0.2]
    return m, a


def test_au_pro_8_vs_4_connectivity():
    m, a = _diagonal_case()
    assert au_pro(m, a) == pytest.approx(1 / 3)
    assert au_pro(m, a, connectivity=4) == pytest.approx(1 / 2)


@pytest.mark.parametrize("seed", range(12))
def test_au_pro_matches_slow_reference(seed):
    masks, maps = _random_case(seed)
    rng = np.random.default_rng(seed)
    _, xs, _ = _slow_reference_au_pro(masks, maps, 1.0)
    vertex = float(xs[(xs > 0) & (xs < 1)][0]) if ((xs > 0) & (xs < 1)).any() else 0.5
    for limit in (0.3, 1.0, 0.05, float(rng.uniform(0.01, 1)), vertex):  # vertex: limit ON a vertex
        expected, _, _ = _slow_reference_au_pro(masks, maps, limit)
        assert au_pro(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=1e-12)
    expected4, _, _ = _slow_reference_au_pro(masks, maps, 0.3, connectivity=4)
    assert au_pro(masks, maps, connectivity=4) == pytest.approx(expected4, abs=1e-12)
    both = pixel_metrics(masks, maps)
    assert both["au_pro"] == au_pro(masks, maps) and both["pixel_auroc"] == pixel_auroc(masks, maps)


@pytest.mark.parametrize("seed", range(4))
def test_pro_curve_matches_slow_reference(seed):
    masks, maps = _random_case(seed)
    _, xs, ys = _slow_reference_au_pro(masks, maps, 1.0)
    fpr, pro = pro_curve(masks, maps)
    np.testing.assert_allclose(fpr, xs, atol=1e-12)
    np.testing.assert_allclose(pro, ys, atol=1e-12)


def test_au_pro_float32_equals_float64_on_representable_values():
    masks, maps = _random_case(3)
    maps = maps.astype(np.float32)
    assert au_pro(masks, maps) == pytest.approx(au_pro(masks, maps.astype(np.float64)), abs=1e-12)


# ----------------------------------------------------------------------------- the study's PRO


def _study_case():
    # anomalous 2x3 image, region = left column (4-connected), scores:
    #   [[1.0, .5, 0], [.25, .25, 0]]  -> region pixels 1.0, .25 ; normals .5, 0, .25, 0 (N = 4)
    m = np.array([[[1, 0, 0], [1, 0, 0]]], dtype=bool)
    a = np.array([[[1.0, 0.5, 0.0], [0.25, 0.25, 0.0]]])
    return m, a


def test_study_pro_by_hand():
    # 5 thresholds linspace(0, 1, 5) = 0, .25, .5, .75, 1 over the anomalous image's scores
    #   t=0   : FPR 4/4 = 1,  PRO 2/2 = 1
    #   t=.25 : FPR 2/4 = .5, PRO 1
    #   t=.5  : FPR 1/4 = .25, PRO 1/2
    #   t=.75 : FPR 0, PRO 1/2 ; t=1: FPR 0, PRO 1/2 (tie in FPR, same PRO)
    # sorted + deduplicated: (0,.5) (.25,.5) (.5,1) (1,1); FPR <= .3 keeps (0,.5) (.25,.5)
    # trapezoid .25*.5 = .125, NO interpolation up to .3 -> .125/.3 = .41666..
    m, a = _study_case()
    assert au_pro_study(m, a, n_thresholds=5) == pytest.approx(0.125 / 0.3)
    # the reference on the same data: vertices (0,.5) (.25,.5) (.5,1) (1,1) [.25 tie -> diagonal]
    # interpolated PRO at .3 = .5 + .5*(.05/.25) = .6 -> area .125 + .05*(.5+.6)/2 = .1525 -> .508333
    assert au_pro(m, a) == pytest.approx(0.1525 / 0.3)
    # limit .1: only (0, .5) is left -> fewer than 2 points -> their mean PRO, .5
    assert au_pro_study(m, a, n_thresholds=5, fpr_limit=0.1) == pytest.approx(0.5)


def test_study_pro_pools_regions_across_images():
    # image 1 (1x3): region r1 = {1.0}, normals 0, 0
    # image 2 (1x5): mask [1,0,1,0,0] -> 4-connected regions r2 = {0.0}, r3 = {1.0}; normals 0, .5, 0
    # thresholds linspace(0, 1, 3) = 0, .5, 1 ; N = 5 normals
    #   t=0: (1, 1) ; t=.5: FPR 1/5, PRO (1 + 0 + 1)/3 = 2/3 ; t=1: FPR 0, PRO 2/3
    # limit 1: .2*(2/3) + .8*(2/3 + 1)/2 = .13333 + .66667 = .8
    #   (averaging per image instead, 1 and 1/2 -> .75, would give .85)
    m = [np.array([[1, 0, 0]], dtype=bool), np.array([[1, 0, 1, 0, 0]], dtype=bool)]
    a = [np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 1.0, 0.5, 0.0]])]
    assert au_pro_study(m, a, n_thresholds=3, fpr_limit=1.0) == pytest.approx(0.8)


def test_study_pro_uses_4_connectivity():
    # diagonal case: 4-connectivity -> regions {a} and {b, c}; thresholds linspace(.1, .9, 3) = .1, .5, .9
    #   t=.1: (1, 1) ; t=.5: FPR 3/6 (.8 .7 .6), PRO (1 + 0)/2 = .5 ; t=.9: FPR 0, PRO .5
    # FPR <= .3 keeps only (0, .5) -> mean .5.  With 8-connectivity: 1/3.
    m, a = _diagonal_case()
    assert au_pro_study(m, a, n_thresholds=3) == pytest.approx(0.5)
    assert au_pro_study(m, a, n_thresholds=3, connectivity=8) == pytest.approx(1 / 3)


def test_study_pro_fpr_ties_keep_one_point():
    # region pixels 1.0 and .75, normals .5 0 0 0 ; thresholds 0 .25 .5 .75 1
    #   t=.75: FPR 0, PRO 1 ; t=1: FPR 0, PRO .5  -> a tie in FPR with different PRO
    #   t=.5: FPR .25, PRO 1 ; t=.25: FPR .25, PRO 1 ; t=0: (1, 1)
    # stable sort keeps the lowest threshold of the tie: (0, 1), (.25, 1) -> .25 / .3
    # numpy's default sort (the study's call) may keep either: (0, .5) gives .25*.75/.3
    m = np.array([[[1, 1, 0], [0, 0, 0]]], dtype=bool)
    a = np.array([[[1.0, 0.75, 0.5], [0.0, 0.0, 0.0]]])
    assert au_pro_study(m, a, n_thresholds=5, argsort_kind="stable") == pytest.approx(0.25 / 0.3)
    default = au_pro_study(m, a, n_thresholds=5)
    assert default == pytest.approx(0.25 / 0.3) or default == pytest.approx(0.25 * 0.75 / 0.3)


def _study_reference(masks, maps, n_thr=200, limit=0.3):
    """The study's PRO written out with loops (stable sort)."""
    keep = [i for i in range(len(masks)) if masks[i].any()]
    ms = [masks[i] for i in keep]
    As = [maps[i] for i in keep]
    allv = np.concatenate([a.ravel() for a in As])
    normals = np.concatenate([a[~m] for m, a in zip(ms, As)])
    regions = []
    for m, a in zip(ms, As):
        lab, n = ndimage.label(m)  # scipy default structure: 4-connectivity
        regions += [a[lab == k] for k in range(1, n + 1)]
    pts = []
    for t in np.linspace(allv.min(), allv.max(), n_thr):
        pts.append((float(np.mean(normals >= t)), float(np.mean([np.mean(r >= t) for r in regions]))))
    pts.sort(key=lambda p: p[0])  # stable: keeps threshold order inside FPR ties
    fpr, pro = [], []
    for f, p in pts:
        if not fpr or f != fpr[-1]:
            fpr.append(f)
            pro.append(p)
    sel = [(f, p) for f, p in zip(fpr, pro) if f <= limit]
    if len(sel) < 2:
        return float(np.mean([p for _, p in sel])) if sel else 0.0
    return sum((sel[i][0] - sel[i - 1][0]) * (sel[i][1] + sel[i - 1][1]) / 2 for i in range(1, len(sel))) / limit


@pytest.mark.parametrize("seed", range(6))
def test_study_pro_matches_written_out_algorithm(seed):
    masks, maps = _random_case(seed, size=12)
    for n_thr, limit in ((200, 0.3), (17, 0.5)):
        got = au_pro_study(masks, maps, n_thresholds=n_thr, fpr_limit=limit, argsort_kind="stable")
        assert got == pytest.approx(_study_reference(masks, maps, n_thr, limit), abs=1e-12)


def test_none_mask_means_good_image():
    m1 = np.array([[1, 1, 0, 0, 0, 0]], dtype=bool)
    a1 = np.array([[0.9, 0.5, 0.8, 0.6, 0.4, 0.3]])
    a2 = np.array([[0.85, 0, 0, 0, 0, 0]])
    assert au_pro([m1, None], [a1, a2], fpr_limit=0.5) == au_pro([m1, np.zeros((1, 6), bool)], [a1, a2], fpr_limit=0.5)
    assert pixel_auroc([m1, None], [a1, a2]) == pytest.approx(
        roc_auc_score(np.r_[m1.ravel(), np.zeros(6)], np.r_[a1.ravel(), a2.ravel()])
    )


def test_chunked_counting_gives_the_same_answer(monkeypatch):
    import adloc.metrics.pixel as pixel

    masks, maps = _random_case(5, size=16)
    expected = (pixel_auroc(masks, maps), au_pro(masks, maps))
    monkeypatch.setattr(pixel, "_CHUNK", 7)  # many chunks over the anomalous pixels
    assert pixel_auroc(masks, maps) == expected[0]
    assert au_pro(masks, maps) == pytest.approx(expected[1], abs=1e-12)
    assert au_pro(masks, maps) == pytest.approx(_slow_reference_au_pro(masks, maps, 0.3)[0], abs=1e-12)
