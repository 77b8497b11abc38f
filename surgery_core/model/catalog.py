"""The CLIP checkpoints remote-sensing researchers use, by one short name each (``surgery models``).

One :class:`CatalogEntry` per model: the open_clip architecture, QuickGELU or not, input size and normalisation,
where its weights live (a Hugging Face hub repository, file and revision, or a URL), the file's size and sha256
where they are published, the licence and the citation. Every fact carries its source in a comment; a fact that
could not be confirmed is ``None`` (size, sha256) or says "unconfirmed", never a guess.

This module is data only (no torch, no network): the run configuration validates ``model.name`` against it.
Where a model's file lies on this machine, user-registered models and downloads are in
:mod:`surgery_core.model.local_models` and :mod:`surgery_core.model.pull`.

QuickGELU: open_clip 2.29 and later no longer switch OpenAI-initialised weights to QuickGELU by themselves
(open_clip issue 771); a model built without it runs and gives subtly wrong maps. Every model fine-tuned from
OpenAI's CLIP (RemoteCLIP, GeoRSCLIP B/L, SkyCLIP L-14) needs it, which ``init == "openai"`` records; the catalog
test checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass

#: open_clip's defaults for OpenAI and OpenCLIP weights (``OPENAI_DATASET_MEAN/STD`` in open_clip/constants.py,
#: used by ``_pcfg`` in open_clip/pretrained.py, open_clip_torch 3.3.0 as pinned in requirements.txt).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

#: What an entry's weights were initialised from. "openai": fine-tuned from (or equal to) OpenAI CLIP, so
#: QuickGELU; "laion": OpenCLIP weights trained on LAION, GELU.
INITS = ("openai", "laion", "user")


@dataclass(frozen=True)
class CatalogEntry:
    """One model. ``repo``/``file``/``revision``: a Hugging Face hub file; ``url``: a plain HTTPS download
    (``archive="zip"``: the checkpoint is the one weights file inside the zip). ``size`` in bytes and ``sha256``
    (hex) of the checkpoint file as published; None where unconfirmed."""

    name: str
    title: str
    arch: str
    quickgelu: bool
    init: str
    input_size: int
    licence: str
    citation: str
    repo: str | None = None
    file: str | None = None
    revision: str | None = None
    url: str | None = None
    archive: str | None = None
    size: int | None = None
    sha256: str | None = None
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    note: str = ""
    checkpoint: str | None = None  # a registered model's own file (``surgery models add``); None in the catalog

    @property
    def registered(self) -> bool:
        """A user's own checkpoint registered under a name, not a catalog entry."""
        return self.checkpoint is not None

    @property
    def source(self) -> str:
        """Where the weights come from, in one line (a hub file or the URL)."""
        if self.repo:
            return f"hf://{self.repo}/{self.file}@{(self.revision or 'main')[:12]}"
        return self.url or self.checkpoint or "a local file"

    @property
    def download_url(self) -> str | None:
        """The URL a browser or curl fetches (``$HF_ENDPOINT`` is applied by :mod:`pull` for hub files)."""
        if self.repo:
            return f"https://huggingface.co/{self.repo}/resolve/{self.revision or 'main'}/{self.file}"
        return self.url

    @property
    def local_name(self) -> str:
        """The file name under ``<models folder>/<name>/``: the hub or URL file's own name; for a zip, the
        checkpoint extracted from it, as ``<name>.pt``."""
        if self.archive:
            return f"{self.name}.pt"
        tail = (self.file or self.url or self.name).rsplit("/", 1)[-1]
        return tail


# Citations: RemoteCLIP's README bibtex (ChenDelong1999/RemoteCLIP at 04873e7); RS5M's README bibtex
# (om-ai-lab/RS5M at 03a6e1984589523bd23f0a9538087eb5bc2c8337); SkyScript's README bibtex (wangzhecheng/SkyScript
# at 15d5986); OpenAI CLIP: the arXiv id the timm hub cards tag (arxiv:2103.00020); LAION: the OpenCLIP scaling-laws
# paper (arXiv id from memory of LAION's model cards: unconfirmed here).
_REMOTECLIP_CITE = ("Liu, Chen, Guan, Zhou, Zhu, Zhou. RemoteCLIP: A Vision Language Foundation Model for Remote "
                    "Sensing. CoRR abs/2306.11029, 2023")
_GEORSCLIP_CITE = ("Zhang, Zhao, Guo, Yin. RS5M: A Large Scale Vision-Language Dataset for Remote Sensing "
                   "Vision-Language Foundation Model. arXiv:2306.11300, 2023")
_SKYCLIP_CITE = ("Wang, Prabha, Huang, Wu, Rajagopal. SkyScript: A Large and Semantically Diverse Vision-Language "
                 "Dataset for Remote Sensing. arXiv:2312.12856, 2023 (AAAI 2024)")
_OPENAI_CITE = ("Radford et al. Learning Transferable Visual Models From Natural Language Supervision. "
                "arXiv:2103.00020, 2021")
_LAION_CITE = ("Cherti et al. Reproducible scaling laws for contrastive language-image learning. CVPR 2023 "
               "(arXiv:2212.07143; unconfirmed here)")

# Hub commits cited below (full hashes as the hub's commit pages give them):
#   chendelong/RemoteCLIP bf1d8a3ccf2ddbf7c875705e46373bfe542bce38 "Upload 3 files": the LFS pointers of
#     RemoteCLIP-ViT-B-32.pt and -ViT-L-14.pt (oid sha256 + size) in its diff.
#   Zilun/GeoRSCLIP 4920188e6eba4e711ef9848cfd7cb77e874ee33f: the repository's head as crawled (17 commits), which
#     holds ckpt/RS5M_ViT-{B-32,H-14,L-14,L-14-336}.pt; commit 0b7b13838d11b8ab43ca72706fd03d5177e3ffa9 "Upload
#     2 files" has the LFS pointers of the two L-14 files.
#   timm/vit_base_patch32_clip_224.openai ab5b8ef490e86faa07d3523926b842c765de1de5 "Add model": adds
#     open_clip_model.safetensors and open_clip_config.json ("quick_gelu": true).
_REMOTECLIP_REV = "bf1d8a3ccf2ddbf7c875705e46373bfe542bce38"
_GEORSCLIP_REV = "4920188e6eba4e711ef9848cfd7cb77e874ee33f"

CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    # RemoteCLIP: ChenDelong1999/RemoteCLIP README (commit 04873e742ecad47b7cd32b890912583ee449e600, "Load
    # RemoteCLIP"): open_clip format, hub repo chendelong/RemoteCLIP, `create_model_and_transforms(model_name)`
    # with model_name ViT-B-32 / ViT-L-14. Fine-tuned from OpenAI CLIP, hence QuickGELU: as issue #25 and this
    # project's README state (the paper's wording was not read here).
    CatalogEntry(
        name="remoteclip-b32", title="RemoteCLIP ViT-B/32", arch="ViT-B-32", quickgelu=True, init="openai",
        input_size=224,
        repo="chendelong/RemoteCLIP", file="RemoteCLIP-ViT-B-32.pt", revision=_REMOTECLIP_REV,
        size=605208421,  # LFS pointer at bf1d8a3 ("size 605208421"); also issue #25
        sha256="60014e395d930a3f2963d1d89c8522bf4ad56775571e4356e866864789af85c4",  # LFS pointer at bf1d8a3
        # No licence file in ChenDelong1999/RemoteCLIP (its file list) and none on the hub repo's card: unconfirmed.
        licence="unconfirmed (no licence in the repository or on the hub card)",
        citation=_REMOTECLIP_CITE),
    CatalogEntry(
        name="remoteclip-l14", title="RemoteCLIP ViT-L/14", arch="ViT-L-14", quickgelu=True, init="openai",
        input_size=224,
        repo="chendelong/RemoteCLIP", file="RemoteCLIP-ViT-L-14.pt", revision=_REMOTECLIP_REV,
        size=1710613765,  # LFS pointer at bf1d8a3
        sha256="fcc2a7e21e171f4ffcb7a9c0206b8b74ac0c9eb83c67b576958b7a4ed6c8cecb",  # LFS pointer at bf1d8a3
        licence="unconfirmed (no licence in the repository or on the hub card)",
        citation=_REMOTECLIP_CITE),
    # GeoRSCLIP: hub card of Zilun/GeoRSCLIP (README at 4920188): the B-32 is loaded with
    # `open_clip.create_model_and_transforms("ViT-B/32", pretrained="openai")` then the RS5M state dict, i.e.
    # fine-tuned from OpenAI CLIP: QuickGELU. Licence: the card's front matter says `license: cc-by-4.0` (commit
    # 76302bb4d3f881a109cdc42adb693fc5cbcc8be2); the hub page now shows "cc".
    CatalogEntry(
        name="georsclip-b32", title="GeoRSCLIP ViT-B/32 (RS5M)", arch="ViT-B-32", quickgelu=True, init="openai",
        input_size=224,
        repo="Zilun/GeoRSCLIP", file="ckpt/RS5M_ViT-B-32.pt", revision=_GEORSCLIP_REV,
        size=None, sha256=None,  # its LFS pointer (commit b0c0186 "Upload 8 files") was not readable: unconfirmed
        licence="CC-BY-4.0 (hub card front matter, commit 76302bb)", citation=_GEORSCLIP_CITE),
    CatalogEntry(
        name="georsclip-l14", title="GeoRSCLIP ViT-L/14 (RS5M)", arch="ViT-L-14", quickgelu=True, init="openai",
        input_size=224,
        repo="Zilun/GeoRSCLIP", file="ckpt/RS5M_ViT-L-14.pt", revision=_GEORSCLIP_REV,
        size=1710635010,  # LFS pointer, commit 0b7b138
        sha256="9119b7731c17dd66fae13619203f33900946fe0660095ed54d8e6c7cfe8d03c0",  # LFS pointer, commit 0b7b138
        licence="CC-BY-4.0 (hub card front matter, commit 76302bb)", citation=_GEORSCLIP_CITE,
        note="OpenAI initialisation: the card shows it for the B-32; for the L-14 files it is unconfirmed"),
    CatalogEntry(
        name="georsclip-l14-336", title="GeoRSCLIP ViT-L/14 336 px (RS5M)", arch="ViT-L-14-336", quickgelu=True,
        init="openai", input_size=336,
        repo="Zilun/GeoRSCLIP", file="ckpt/RS5M_ViT-L-14-336.pt", revision=_GEORSCLIP_REV,
        size=1711947530,  # LFS pointer, commit 0b7b138
        sha256="b0c2c660e917a7235f7aec346556d2696cbf419249cf75bcd8c17b822b76428c",  # LFS pointer, commit 0b7b138
        licence="CC-BY-4.0 (hub card front matter, commit 76302bb)", citation=_GEORSCLIP_CITE,
        note="OpenAI initialisation: the card shows it for the B-32; for the L-14 files it is unconfirmed"),
    # The H-14 is LAION-initialised (issue #25; the card's second loading example builds ViT-H-14, whose only
    # open_clip weights are LAION's): GELU, no QuickGELU.
    CatalogEntry(
        name="georsclip-h14", title="GeoRSCLIP ViT-H/14 (RS5M)", arch="ViT-H-14", quickgelu=False, init="laion",
        input_size=224,
        repo="Zilun/GeoRSCLIP", file="ckpt/RS5M_ViT-H-14.pt", revision=_GEORSCLIP_REV,
        size=None, sha256=None,  # LFS pointer (commit 9f65c2e "Upload RS5M_ViT-H-14.pt") not readable: unconfirmed
        licence="CC-BY-4.0 (hub card front matter, commit 76302bb)", citation=_GEORSCLIP_CITE),
    # SkyCLIP: wangzhecheng/SkyScript README (commit 15d59866ca2d0ddeabee082b8edf74c639f0d575, "Download model
    # checkpoints"): zip archives on S3; "$PRETRAINED ... we used `openai` for ViT-L-14 and `laion2b_e16` for
    # ViT-B-32" (Training). Licence: the repository's LICENSE is MIT (commit c05981076dbeb1db389a6a41225ced9654f99fd5);
    # the checkpoints carry no licence of their own. Neither sizes nor hashes are published, nor the name of the
    # file inside each zip.
    CatalogEntry(
        name="skyclip-l14", title="SkyCLIP ViT-L/14 (SkyScript top 30%)", arch="ViT-L-14", quickgelu=True,
        init="openai", input_size=224,
        url="https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/SkyCLIP_ViT_L14_top30pct.zip",
        archive="zip", licence="MIT (SkyScript repository LICENSE; checkpoints not separately licensed)",
        citation=_SKYCLIP_CITE),
    CatalogEntry(
        name="skyclip-b32", title="SkyCLIP ViT-B/32 (SkyScript top 50%)", arch="ViT-B-32", quickgelu=False,
        init="laion", input_size=224,
        url="https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt/SkyCLIP_ViT_B32_top50pct.zip",
        archive="zip", licence="MIT (SkyScript repository LICENSE; checkpoints not separately licensed)",
        citation=_SKYCLIP_CITE),
    # OpenAI CLIP through open_clip's own hub ids (open_clip/pretrained.py, open_clip_torch 3.3.0: `openai=_pcfg(
    # hf_hub="timm/vit_..._clip_....openai/", quick_gelu=True)`; open_clip downloads `open_clip_model.safetensors`
    # when the repo has it, else `open_clip_pytorch_model.bin` (HF_WEIGHTS_NAME, open_clip/constants.py)).
    CatalogEntry(
        name="openai-b32", title="OpenAI CLIP ViT-B/32", arch="ViT-B-32", quickgelu=True, init="openai",
        input_size=224,
        repo="timm/vit_base_patch32_clip_224.openai", file="open_clip_model.safetensors",
        revision="ab5b8ef490e86faa07d3523926b842c765de1de5",  # the commit that added the file (tree at ab5b8ef)
        size=None, sha256=None,  # shown as "605 MB" only: unconfirmed
        licence="Apache-2.0 (hub card metadata of timm/vit_base_patch32_clip_224.openai)", citation=_OPENAI_CITE),
    CatalogEntry(
        name="openai-b16", title="OpenAI CLIP ViT-B/16", arch="ViT-B-16", quickgelu=True, init="openai",
        input_size=224,
        repo="timm/vit_base_patch16_clip_224.openai", file="open_clip_pytorch_model.bin", revision="main",
        licence="unconfirmed (timm publishes the B/32 under Apache-2.0)", citation=_OPENAI_CITE,
        note="file name is open_clip's default (HF_WEIGHTS_NAME); its presence in this repo is unconfirmed"),
    CatalogEntry(
        name="openai-l14", title="OpenAI CLIP ViT-L/14", arch="ViT-L-14", quickgelu=True, init="openai",
        input_size=224,
        repo="timm/vit_large_patch14_clip_224.openai", file="open_clip_pytorch_model.bin", revision="main",
        licence="unconfirmed (timm publishes the B/32 under Apache-2.0)", citation=_OPENAI_CITE,
        note="file name is open_clip's default (HF_WEIGHTS_NAME); its presence in this repo is unconfirmed"),
    CatalogEntry(
        name="openai-l14-336", title="OpenAI CLIP ViT-L/14 336 px", arch="ViT-L-14-336", quickgelu=True,
        init="openai", input_size=336,
        repo="timm/vit_large_patch14_clip_336.openai", file="open_clip_pytorch_model.bin", revision="main",
        licence="unconfirmed (timm publishes the B/32 under Apache-2.0)", citation=_OPENAI_CITE,
        note="file name is open_clip's default (HF_WEIGHTS_NAME); its presence in this repo is unconfirmed"),
    # LAION-2B ViT-B/32: open_clip/pretrained.py (3.3.0) `laion2b_s34b_b79k=_pcfg(hf_hub='laion/CLIP-ViT-B-32-
    # laion2B-s34B-b79K/')`, no quick_gelu: GELU.
    CatalogEntry(
        name="laion2b-b32", title="OpenCLIP ViT-B/32 LAION-2B (s34B b79K)", arch="ViT-B-32", quickgelu=False,
        init="laion", input_size=224,
        repo="laion/CLIP-ViT-B-32-laion2B-s34B-b79K", file="open_clip_pytorch_model.bin", revision="main",
        licence="MIT (LAION's OpenCLIP model cards; unconfirmed for this repository)", citation=_LAION_CITE),
)}


def catalog_entry(name: str) -> CatalogEntry | None:
    """The catalog's entry of that name, or None."""
    return CATALOG.get(name)
