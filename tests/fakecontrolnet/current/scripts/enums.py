"""Fake of scripts/enums.py: the transformer numbering the IP-Adapter hook walks, and the control model types."""

from enum import Enum
from typing import NamedTuple

SDXL_INPUT_DEPTHS = {4: 2, 5: 2, 7: 10, 8: 10}
SDXL_OUTPUT_DEPTHS = {0: 10, 1: 10, 2: 10, 3: 2, 4: 2, 5: 2}
SDXL_MIDDLE_DEPTH = 10
SD1_INPUT_BLOCKS = (1, 2, 4, 5, 7, 8)
SD1_OUTPUT_BLOCKS = (3, 4, 5, 6, 7, 8, 9, 10, 11)


class UnetBlockType(Enum):
    INPUT = "input"
    OUTPUT = "output"
    MIDDLE = "middle"


class TransformerID(NamedTuple):
    block_type: UnetBlockType
    block_id: int
    block_index: int
    transformer_index: int


class TransformerIDResult(NamedTuple):
    input_ids: list
    output_ids: list
    middle_ids: list


class StableDiffusionVersion(Enum):
    UNKNOWN = 0
    SD1x = 1
    SD2x = 2
    SDXL = 3

    @property
    def transformer_block_num(self) -> int:
        return 11 if self is StableDiffusionVersion.SDXL else 16

    @property
    def transformer_ids(self) -> TransformerIDResult:
        """Real: SDXL's depths hard-coded (2 at input 4/5 and output 3-5, 10 elsewhere and in the middle block);
        `transformer_index` counts blocks (input, then middle, then output)."""
        if self is StableDiffusionVersion.SDXL:
            return _sdxl_ids()
        return _sd1_ids()


def _sdxl_ids() -> TransformerIDResult:
    inputs = [
        TransformerID(UnetBlockType.INPUT, block, index, number)
        for number, (block, depth) in enumerate(SDXL_INPUT_DEPTHS.items())
        for index in range(depth)
    ]
    middle_number = len(SDXL_INPUT_DEPTHS)
    middle = [TransformerID(UnetBlockType.MIDDLE, 0, index, middle_number) for index in range(SDXL_MIDDLE_DEPTH)]
    outputs = [
        TransformerID(UnetBlockType.OUTPUT, block, index, middle_number + 1 + number)
        for number, (block, depth) in enumerate(SDXL_OUTPUT_DEPTHS.items())
        for index in range(depth)
    ]
    return TransformerIDResult(inputs, outputs, middle)


def _sd1_ids() -> TransformerIDResult:
    inputs = [TransformerID(UnetBlockType.INPUT, block, 0, n) for n, block in enumerate(SD1_INPUT_BLOCKS)]
    middle = [TransformerID(UnetBlockType.MIDDLE, 0, 0, len(inputs))]
    outputs = [
        TransformerID(UnetBlockType.OUTPUT, block, 0, len(inputs) + 1 + n) for n, block in enumerate(SD1_OUTPUT_BLOCKS)
    ]
    return TransformerIDResult(inputs, outputs, middle)


class ControlModelType(Enum):
    ControlNet = "ControlNet, Lvmin Zhang"
    T2I_Adapter = "T2I_Adapter, Chong Mou"
    AttentionInjection = "AttentionInjection, Lvmin Zhang"
    ControlLoRA = "ControlLoRA, Wu Hecong"
    IPAdapter = "IPAdapter, Hu Ye"
    Controlllite = "Controlllite, Kohya"
    InstantID = "InstantID, Qixun Wang"
    ControlNetUnion = "ControlNetUnion, xinsir6"

    @property
    def is_controlnet(self) -> bool:
        return self in (
            ControlModelType.ControlNet,
            ControlModelType.ControlLoRA,
            ControlModelType.InstantID,
            ControlModelType.ControlNetUnion,
        )
