"""The public datasets ``dataset.source`` names: archive URL, published sha256, layout, licence.

Where each value comes from (never guessed):

- ``mvtec_ad``, ``visa``: the dataset authors' archives, the values anomalib's ``MVTecAD`` and
  ``Visa`` datamodules check.
- ``mvtec_ad2``: anomalib ``src/anomalib/data/datamodules/image/mvtecad2.py`` (``DOWNLOAD_INFO``,
  open-edge-platform/anomalib), MVTec's share of ``mvtec_ad_2.tar.gz``.
- ``btad``: anomalib ``src/anomalib/data/datamodules/image/btech.py`` (``DOWNLOAD_INFO``): the
  authors' ``btad.zip`` at the University of Udine.
- ``mpdd``: anomalib ``src/anomalib/data/datamodules/image/mpdd.py`` publishes no archive and no
  checksum, only the authors' OneDrive folder (manual download). adloc therefore has no default
  URL or sha256 for MPDD: give both (``dataset.url`` and ``dataset.sha256`` of the archive you
  host), or unpack MPDD at ``dataset.root`` yourself (read as a plain folder).
- ``real_iad``: gated on Hugging Face (access approved by the authors), anomalib
  ``realiad.py``: a manual download, converted by :mod:`adloc.data.realiad`.

``dataset.mirrors`` adds URLs tried in order after the first; every one is checked against
the same sha256.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DatasetError

CC_BY_NC_SA = (
    "CC BY-NC-SA 4.0 (https://creativecommons.org/licenses/by-nc-sa/4.0/): non-commercial use "
    "only, attribution, share alike"
)
LICENCE = CC_BY_NC_SA  # every source adloc fetches is licensed so (kept for old imports)


class FetchError(DatasetError):
    """A dataset archive could not be downloaded, verified or extracted."""


@dataclass(frozen=True)
class Archive:
    """One published dataset archive (``url`` empty: none is published, see ``manual``)."""

    name: str
    url: str
    sha256: str
    layout: str  # mvtec | visa | mvtec_ad2 | btad | real_iad (converted after extraction)
    homepage: str
    citation: str
    licence: str = CC_BY_NC_SA
    mirrors: tuple[str, ...] = field(default=())
    manual: str = ""  # the page to download from by hand when there is no archive URL

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0] if self.url else ""

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(u for u in (self.url, *self.mirrors) if u)


ARCHIVES: dict[str, Archive] = {
    "mvtec_ad": Archive(
        name="MVTec AD",
        url="https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/"
        "420938113-1629952094/mvtec_anomaly_detection.tar.xz",
        sha256="cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
        layout="mvtec",
        homepage="https://www.mvtec.com/company/research/datasets/mvtec-ad",
        citation="Bergmann et al., The MVTec Anomaly Detection Dataset, IJCV 129(4), 2021",
    ),
    "visa": Archive(
        name="VisA",
        url="https://amazon-visual-anomaly.s3.us-west-2.amazonaws.com/VisA_20220922.tar",
        sha256="2eb8690c803ab37de0324772964100169ec8ba1fa3f7e94291c9ca673f40f362",
        layout="visa",
        homepage="https://github.com/amazon-science/spot-diff",
        citation="Zou et al., SPot-the-Difference Self-supervised Pre-training for Anomaly "
        "Detection and Segmentation, ECCV 2022",
    ),
    "mvtec_ad2": Archive(
        name="MVTec AD 2",
        url="https://www.mydrive.ch/shares/121573/7f68fe2c4f7c2ceaa08f463aaeb2f414/download/"
        "466712769-1743422799/mvtec_ad_2.tar.gz",
        sha256="c0ded99ef32bfc8e352d52beb44515e5b292b8598cb963aadfa91ca0763505e4",
        layout="mvtec_ad2",
        homepage="https://www.mvtec.com/company/research/datasets/mvtec-ad-2",
        citation="Heckler-Kram et al., The MVTec AD 2 Dataset: Advanced Scenarios for "
        "Unsupervised Anomaly Detection, arXiv:2503.21622, 2025",
    ),
    "btad": Archive(
        name="BTAD",
        url="https://avires.dimi.uniud.it/papers/btad/btad.zip",
        sha256="461c9387e515bfed41ecaae07c50cf6b10def647b36c9e31d239ab2736b10d2a",
        layout="btad",
        homepage="https://avires.dimi.uniud.it/papers/btad/",
        citation="Mishra et al., VT-ADL: A Vision Transformer Network for Image Anomaly "
        "Detection and Localization, ICIP 2021",
    ),
    "mpdd": Archive(
        name="MPDD",
        url="",
        sha256="",
        layout="mvtec",
        homepage="https://github.com/stepanje/MPDD",
        citation="Jezek et al., Deep learning-based defect detection of metal parts: evaluating "
        "current methods in complex conditions, ICUMT 2021",
        manual="https://vutbr-my.sharepoint.com/:f:/g/personal/xjezek16_vutbr_cz/"
        "EhHS_ufVigxDo3MC6Lweau0BVMuoCmhMZj6ddamiQ7-FnA?e=oHKCxI",
    ),
    "real_iad": Archive(
        name="Real-IAD",
        url="",
        sha256="",
        layout="real_iad",
        homepage="https://realiad4ad.github.io/Real-IAD/",
        citation="Wang et al., Real-IAD: A Real-World Multi-View Dataset for Benchmarking "
        "Versatile Industrial Anomaly Detection, CVPR 2024",
        manual="https://huggingface.co/datasets/REAL-IAD/Real-IAD",
    ),
}


def archive_for(source: str, url: str | None = None, sha256: str | None = None, mirrors=()) -> Archive:
    """The archive of ``source`` with an optional ``url`` / ``sha256`` override and ``mirrors``.

    MPDD (no published archive) needs both ``url`` and ``sha256``: FetchError otherwise.
    """
    if source not in ARCHIVES:
        raise FetchError(f"unknown dataset.source {source!r}; allowed: folder, {', '.join(ARCHIVES)}")
    a = ARCHIVES[source]
    if source == "real_iad":
        return a
    url, sha = url or a.url, (sha256 or a.sha256).lower()
    if not url or not sha:
        raise FetchError(
            f"{a.name} has no published archive or checksum (anomalib's datamodule only names the "
            f"authors' folder {a.manual}): set dataset.url and dataset.sha256 to the archive you "
            f"host, or unpack {a.name} at dataset.root with dataset.source: folder"
        )
    mirrors = tuple(m for m in (*a.mirrors, *(mirrors or ())) if m and m != url)
    return Archive(a.name, url, sha, a.layout, a.homepage, a.citation, a.licence, mirrors, a.manual)
