"""The graph I/O contract: the names, dtypes and shapes of an exported graph's inputs, and its output names.

Every fusion graph takes the same four inputs, whatever its strategy (a missing modality is a
``presence`` of False, never an absent input, so one engine serves every request):

===================  =======  =========================  ============================================
input                dtype    shape                      meaning
===================  =======  =========================  ============================================
``input_ids``        int64    (batch, text_length)       token ids from ``tokenizer.json``, padded
``attention_mask``   int64    (batch, text_length)       1 for real tokens, 0 for padding
``image``            float32  (batch, 3, size, size)     RGB, scaled to [0, 1], normalised (NCHW)
``presence``         bool     (batch, 2)                 (text, image) present; optional, all True
===================  =======  =========================  ============================================

and returns a ``score`` (and ``logits`` with class outputs) per prediction it makes: the fused one,
and for decision fusion each branch's own (``score_text``, ``logits_image``, ...). Names are built
by :func:`output_name` and read back by :func:`output_role`, never spelled or parsed elsewhere. The
exporter, the model, the Session, feed checking, branch splitting and calibration all use this module.

Example:
    >>> output_name(SCORE, TEXT)
    'score_text'
    >>> output_role("logits_image")
    OutputRole(kind='logits', branch='image')
    >>> MODALITY_INPUTS[TEXT]
    ('input_ids', 'attention_mask')
"""

from __future__ import annotations

from dataclasses import dataclass

from .bundle import TensorSpec

#: The dynamic axis of every input and output.
BATCH = "batch"

#: The modalities, in the order of ``presence``'s columns; each names one backbone branch.
TEXT = "text"
IMAGE = "image"
MODALITIES = (TEXT, IMAGE)

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
PIXELS = "image"  # the image input; its name is the modality's
PRESENCE = "presence"
#: The graph's inputs, in the forward's argument order.
INPUT_NAMES = (INPUT_IDS, ATTENTION_MASK, PIXELS, PRESENCE)
#: The inputs each modality's backbone reads; ``presence`` belongs to neither.
MODALITY_INPUTS = {TEXT: (INPUT_IDS, ATTENTION_MASK), IMAGE: (PIXELS,)}
#: Inputs a caller may leave out, and the value they take (every modality present).
OPTIONAL_INPUTS = {PRESENCE: True}

#: What a prediction outputs: a sentiment score, and class logits when the model has classes.
SCORE = "score"
LOGITS = "logits"
OUTPUT_KINDS = (SCORE, LOGITS)


def input_specs(text_length: int, image_size: int) -> dict[str, TensorSpec]:
    """The manifest's ``inputs``: dtype, shape (:data:`BATCH` is the dynamic axis) and meaning of each input.

    Example:
        >>> input_specs(16, 32)[PIXELS].shape
        ['batch', 3, 32, 32]
    """
    return {
        INPUT_IDS: TensorSpec("int64", [BATCH, text_length], "token ids from tokenizer.json, padded to max_length"),
        ATTENTION_MASK: TensorSpec("int64", [BATCH, text_length], "1 for real tokens, 0 for padding"),
        PIXELS: TensorSpec(
            "float32", [BATCH, 3, image_size, image_size], "RGB, scaled to [0, 1], normalised with image.mean/std"
        ),
        PRESENCE: TensorSpec(
            "bool", [BATCH, len(MODALITIES)], "(text, image) present; False replaces it by a learned placeholder"
        ),
    }


def output_name(kind: str, branch: str | None = None) -> str:
    """The graph output of ``kind`` (:data:`SCORE`, :data:`LOGITS`) for the fused prediction (``branch``
    None) or one modality's branch: ``output_name(SCORE) == "score"``, ``output_name(LOGITS, IMAGE) ==
    "logits_image"``."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"output kind is {kind!r}, expected one of {list(OUTPUT_KINDS)}")
    if branch is None:
        return kind
    if branch not in MODALITIES:
        raise ValueError(f"output branch is {branch!r}, expected None (fused) or one of {list(MODALITIES)}")
    return f"{kind}_{branch}"


@dataclass(frozen=True)
class OutputRole:
    """What a graph output is: its ``kind`` and the ``branch`` that predicts it (None: the fused prediction)."""

    kind: str
    branch: str | None = None

    @property
    def description(self) -> str:
        """The manifest's description of an output in this role."""
        what = "sentiment score in output.score_range" if self.kind == SCORE else "class logits"
        return what if self.branch is None else f"{what} of the {self.branch} branch alone"


#: Every output name a graph may have -> its role (the reverse of :func:`output_name`).
OUTPUT_ROLES = {
    output_name(kind, branch): OutputRole(kind, branch) for kind in OUTPUT_KINDS for branch in (None, *MODALITIES)
}


def output_role(name: str) -> OutputRole:
    """The role of graph output ``name``; ValueError for a name the contract does not define."""
    try:
        return OUTPUT_ROLES[name]
    except KeyError:
        raise ValueError(
            f"graph output {name!r} is not in the I/O contract, expected one of {list(OUTPUT_ROLES)}"
        ) from None
