"""Quality on the embedded dataset with EfficientNet-Lite0's shipped ImageNet weights.

Both models must separate defective from good test images well above chance. The bar (0.75) is
far below what they reach (see the note in the issue log / README), so a regression in features,
embedding or scoring fails this test, while normal numeric noise does not.
"""

from __future__ import annotations

import pytest

from adloc.data.mvtec import scan_class
from adloc.data.splits import make_splits, split_entries
from adloc.data.synthetic import generate_class
from adloc.data.transforms import Preprocess, load_split_images
from adloc.features import FeatureExtractor
from adloc.metrics import auroc
from adloc.models import build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    cls = "synth_carpet"
    generate_class(root, cls, counts={"train_good": 20, "test_good": 10, "anomalies": 16}, image_size=128, seed=1)
    splits = make_splits(scan_class(root, cls), val_anomaly_fraction=0.01)
    pre = Preprocess(resize=128, crop=112)
    ext = FeatureExtractor("efficientnet_lite0", "imagenet", ["layer1", "layer2", "layer3"])
    out = {}
    for name in ("train", "test"):
        entries = split_entries(splits, name)
        images, _ = load_split_images(root, entries, pre, with_masks=False)
        out[name] = (ext.extract(images, batch_size=16), [e["label"] for e in entries])
    return out, pre.output_size


@pytest.mark.parametrize(
    "method, params",
    [
        ("patchcore", {"layers": ["layer2", "layer3"], "pretrain_embed_dim": None, "target_embed_dim": None}),
        ("padim", {"layers": ["layer1", "layer2", "layer3"], "n_features": 100}),
    ],
)
def test_models_separate_defects_on_embedded_data(features, method, params):
    feats, size = features
    train, _ = feats["train"]
    test, labels = feats["test"]
    model = build_model(method, {**params, "image_size": size})
    model.fit(train)
    scores, maps = model.predict(test)
    assert maps.shape == (len(labels), size, size)
    value = auroc(labels, scores)
    print(f"{method} image AUROC on embedded synth_carpet: {value:.3f}")
    assert value > 0.75
